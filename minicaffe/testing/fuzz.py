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
