"""Shared pieces of the fuzz tests (Hypothesis): example budgets, byte mutations, the contract.

The contract every reader of files keeps (docs/RELIABILITY.md): on any input it returns a
result or raises one of minicaffe's errors (`minicaffe.errors.MinicaffeError`), never a bare
Python exception, a signal or super-linear time. `assert_contract(fn, ...)` runs one input and
fails the test with the input's description on anything else.

Budgets: each fuzz test asks for `examples(n)` Hypothesis examples, where `n` fits the normal
suite (all fuzzers together run in about a minute). `MINICAFFE_FUZZ_SCALE=<k>` multiplies every
budget for a long run; the command is in docs/RELIABILITY.md. A failure Hypothesis finds is
shrunk and printed; it then becomes a regression test (an explicit case next to the fuzzer).
"""
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from minicaffe.errors import MinicaffeError

SCALE = float(os.environ.get("MINICAFFE_FUZZ_SCALE", "1") or 1)


def examples(n):
    """The number of examples for a fuzzer whose normal-suite budget is `n`."""
    return max(1, int(n * SCALE))


def fuzz_settings(n):
    """Hypothesis settings for a fuzzer with budget `n`: no deadline (a shared machine's
    timing is noise; linear time has its own tests), fixtures allowed."""
    return settings(max_examples=examples(n), deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.filter_too_much])


@st.composite
def mutated(draw, seed_bytes, max_edits=4):
    """`seed_bytes` with a few random edits: byte flips, truncation, insertions of random or
    repeated bytes, deleted or duplicated slices (what damaged and hostile files look like)."""
    buf = bytearray(seed_bytes)
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "repeat"]))
        n = len(buf)
        at = draw(st.integers(0, n))
        if kind == "flip" and n:
            at = min(at, n - 1)
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and n:
            at = min(at, n - 1)
            buf[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif kind == "truncate":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del buf[at:at + draw(st.integers(1, 32))]
        elif kind == "repeat" and n:
            end = min(n, at + draw(st.integers(1, 64)))
            buf[at:at] = bytes(buf[at:end]) * draw(st.integers(1, 4))
    return bytes(buf)


def assert_contract(fn, *args, allowed=(MinicaffeError,), what=""):
    """Call `fn(*args)`; return its result, or None when it raised one of `allowed`. Anything
    else fails the test naming the exception and `what` (the input)."""
    try:
        return fn(*args)
    except allowed:
        return None
    except Exception as exc:  # noqa: BLE001  (exactly what the fuzzers look for)
        raise AssertionError(f"{getattr(fn, '__name__', fn)} raised {type(exc).__name__}: {exc} "
                             f"(not a minicaffe error) on {what or args!r}"[:3000]) from exc


# -- targets: one reader each, bytes in (shared with the optional atheris driver below) ----------
def _every_accessor(data):
    """Parse protobuf wire bytes, then read each field in every way a reader might."""
    from minicaffe import wire

    fields = wire.parse(data)
    for number in fields.numbers():
        for read in (fields.int, fields.bool, fields.float, fields.double, fields.bytes,
                     fields.string, fields.message, fields.messages, fields.floats,
                     fields.doubles, fields.ints):
            try:
                read(number)
            except wire.WireError:
                pass


def _in_file(suffix, read):
    """A target that writes the bytes to a temporary file named `*suffix` and reads it."""
    def target(data):
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "fuzz" + suffix)
            with open(path, "wb") as f:
                f.write(data)
            return read(path)
    return target


def _prototxt(data):
    from minicaffe.prototxt import parse_net

    return parse_net(data)


def _caffemodel(data):
    from minicaffe import weights

    return weights.decode_caffemodel(data, "fuzz.caffemodel")


def _blobproto(data):
    from minicaffe import wire

    return wire.decode_blob_proto(data, "fuzz.binaryproto")


def _datum(data):
    from minicaffe.data.datum import datum_to_array, decode_datum

    return datum_to_array(decode_datum(data, "fuzz record"), "fuzz record")


def _reader(module, name):
    def read(path):
        import importlib

        return getattr(importlib.import_module(module), name)(path)
    return read


TARGETS = {
    "prototxt": _prototxt,
    "wire": _every_accessor,
    "caffemodel": _caffemodel,
    "binaryproto": _blobproto,
    "datum": _datum,
    "mean": _in_file(".binaryproto", _reader("minicaffe.data.transform", "read_mean_file")),
    "npz": _in_file(".npz", _reader("minicaffe.weights", "load")),
    "idx": _in_file("-images-idx3-ubyte", _reader("minicaffe.data.idx", "read_idx")),
    "idx-gz": _in_file("-images-idx3-ubyte.gz", _reader("minicaffe.data.idx", "read_idx")),
    "cifar": _in_file(".bin", _reader("minicaffe.data.cifar", "read_cifar_batch")),
}


def main(argv=None):
    """`python -m minicaffe.testing.fuzz TARGET [libFuzzer options] [CORPUS_DIR ...]`: coverage-
    guided fuzzing of one reader with atheris (optional: `pip install atheris`). A contract
    violation is reported as a crash and its input saved (crash-<hash>); make it a regression
    test. Example: `python -m minicaffe.testing.fuzz caffemodel -max_total_time=600 corpus/`."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in TARGETS:
        print(f"usage: python -m minicaffe.testing.fuzz {{{','.join(TARGETS)}}} [libFuzzer "
              "options] [corpus dirs]", file=sys.stderr)
        return 2
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (pip install atheris); the Hypothesis fuzzers run with "
              "`python -m pytest -m fuzz` instead", file=sys.stderr)
        return 2
    name = argv.pop(0)
    with atheris.instrument_imports():
        import minicaffe.data.cifar  # noqa: F401
        import minicaffe.data.datum  # noqa: F401
        import minicaffe.data.idx  # noqa: F401
        import minicaffe.data.transform  # noqa: F401
        import minicaffe.prototxt  # noqa: F401
        import minicaffe.weights  # noqa: F401
        import minicaffe.wire  # noqa: F401
    target = TARGETS[name]

    def one_input(data):
        assert_contract(target, data, what=data[:200])

    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
