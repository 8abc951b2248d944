"""Fuzzing every reader of files (Hypothesis): damaged and hostile bytes end in minicaffe's
errors, never a bare exception or a signal.

Readers: the protobuf wire reader (.caffemodel NetParameter, .binaryproto BlobProto, Datum),
.npz weights, .solverstate, mean files, IDX (plain and gzip), CIFAR-10 batches. Inputs are
random bytes and, mostly, mutations of valid files (minicaffe.testing.fuzz.mutated). The
budgets fit the normal suite; MINICAFFE_FUZZ_SCALE multiplies them (docs/RELIABILITY.md).
Inputs a fuzzer once failed on are kept as explicit regression cases (`@example`).
"""
import gzip
import io
import struct

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from minicaffe import prototxt as P
from minicaffe import weights, wire
from minicaffe.data.cifar import RECORD_BYTES, read_cifar_batch
from minicaffe.data.datum import datum_to_array, decode_datum, encode_datum
from minicaffe.data.idx import read_idx
from minicaffe.data.transform import read_mean_file, write_mean_file
from minicaffe.errors import SolverError
from minicaffe.solver import get_solver
from minicaffe.testing.fuzz import assert_contract, fuzz_settings, mutated

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _rng():
    return np.random.default_rng(5)


# -- seeds: small valid files of every kind ---------------------------------------------------
def _caffemodel_seed():
    r = _rng()
    current = weights.encode_caffemodel(
        [("conv1", "Convolution", [r.standard_normal((2, 1, 3, 3)).astype(np.float32),
                                   r.standard_normal(2).astype(np.float32)]),
         ("relu", "ReLU", []),
         ("ip", "InnerProduct", [r.standard_normal((3, 4))])], "fuzz")
    legacy = bytes([0x08, 1, 0x10, 1, 0x18, 2, 0x20, 2]) + \
        wire.Writer().packed_floats(5, [1, 2, 3, 4]).getvalue()
    v1 = wire.Writer().string(4, "old").varint(5, 14).bytes(6, legacy).getvalue()
    return current + wire.Writer().message(2, v1).getvalue()


CAFFEMODEL = _caffemodel_seed()
BLOBPROTO = wire.encode_blob_proto(np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2),
                                   diff=np.ones((1, 3, 2, 2)))


def _mean_seed(folder):
    write_mean_file(folder / "seed.binaryproto", np.full((3, 4, 4), 0.5, np.float32))
    return (folder / "seed.binaryproto").read_bytes()


def _datum_seeds():
    from PIL import Image
    png = io.BytesIO()
    Image.fromarray(_rng().integers(0, 256, (5, 4, 3), dtype=np.uint8)).save(png, format="PNG")
    return [encode_datum(_rng().integers(0, 256, (3, 4, 5), dtype=np.uint8), 7),
            encode_datum(_rng().standard_normal((2, 3, 3)).astype(np.float32), -3),
            encode_datum(label=1, encoded_bytes=png.getvalue())]


DATUMS = _datum_seeds()


def _idx_seed(array, type_code=0x08):
    array = np.asarray(array)
    return (struct.pack(">HBB", 0, type_code, array.ndim) +
            struct.pack(f">{array.ndim}I", *array.shape) + array.astype(array.dtype.newbyteorder(">")).tobytes())


IDX = [_idx_seed(_rng().integers(0, 256, (4, 5, 6), dtype=np.uint8)),
       _idx_seed(_rng().integers(0, 10, 7, dtype=np.uint8)),
       _idx_seed(_rng().standard_normal((3, 2)).astype(np.float32), 0x0D)]


# -- the wire reader --------------------------------------------------------------------------
def _every_accessor(buf):
    """Parse, then read every field present in every way a reader might (as Caffe's readers
    do on a file whose field types they assume)."""
    fields = wire.parse(buf)
    for number in fields.numbers():
        for read in (fields.int, fields.bool, fields.float, fields.double, fields.bytes,
                     fields.string, fields.message, fields.messages, fields.floats,
                     fields.doubles, fields.ints):
            try:
                read(number)
            except wire.WireError:
                pass
    return fields


@fuzz_settings(400)
@given(st.one_of(st.binary(max_size=300), mutated(CAFFEMODEL), mutated(BLOBPROTO)))
@example(b"\x0a\x02\xff\xfe")                    # a non-UTF-8 string
@example(b"\x3a\x0b\x0a\x09" + b"\xff" * 8 + b"\x7f")   # shape.dim 2^63-1 (no data)
def test_wire_reader_raises_only_wire_errors(buf):
    assert_contract(_every_accessor, buf, what=buf)
    assert_contract(wire.decode_blob_proto, buf, "fuzz", what=buf)


@fuzz_settings(400)
@given(st.one_of(mutated(CAFFEMODEL, max_edits=6), st.binary(max_size=200)))
def test_caffemodel_reader_raises_only_data_errors(buf):
    layers = assert_contract(weights.decode_caffemodel, buf, "fuzz.caffemodel", what=buf)
    for name, type_, arrays in layers or []:
        assert isinstance(name, str) and isinstance(type_, str)
        assert all(isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in arrays)


@fuzz_settings(200)
@given(data=st.data())
def test_mean_file_reader_raises_only_data_errors(folder, data):
    buf = data.draw(mutated(_mean_seed(folder), max_edits=5))
    path = folder / "mean.binaryproto"
    path.write_bytes(buf)
    mean = assert_contract(read_mean_file, str(path), what=buf)
    if mean is not None:
        assert mean.ndim == 3 and mean.size and np.isfinite(mean).all()


# -- Datum ------------------------------------------------------------------------------------
def _datum(buf):
    datum = decode_datum(buf, "fuzz record")
    return datum_to_array(datum, "fuzz record")


@fuzz_settings(300)
@given(st.one_of(*(mutated(d) for d in DATUMS), st.binary(max_size=200)))
def test_datum_reader_raises_only_data_errors(buf):
    array = assert_contract(_datum, buf, what=buf)
    if array is not None:
        assert array.ndim == 3 and array.dtype in (np.uint8, np.float32)


# -- IDX and CIFAR ----------------------------------------------------------------------------
@fuzz_settings(300)
@given(seed=st.sampled_from(IDX), gz=st.booleans(), data=st.data())
@example(seed=struct.pack(">HBBIII", 0, 0x0D, 3, 2**32 - 1, 2**32 - 1, 2**32 - 1), gz=True,
         data=None)                               # dims whose product overflows int64
def test_idx_reader_raises_only_data_errors(folder, seed, gz, data):
    buf = data.draw(mutated(seed)) if data is not None else seed
    path = folder / ("fuzz-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(buf) if gz else buf)
    array = assert_contract(read_idx, str(path), what=buf)
    if array is not None:
        assert array.ndim >= 1


@fuzz_settings(300)
@given(st.one_of(st.binary(max_size=80),
                 st.builds(lambda head, body: struct.pack(">HBB", 0, head[0], head[1]) + body,
                           st.tuples(st.integers(0, 255), st.integers(0, 6)),
                           st.binary(max_size=64))))
def test_idx_reader_on_random_headers(folder, buf):
    path = folder / "random-images-idx3-ubyte"
    path.write_bytes(buf)
    assert_contract(read_idx, str(path), what=buf)


def _cifar_seed():
    r = _rng()
    return b"".join(bytes([int(r.integers(0, 10))]) + r.integers(0, 256, 3072, dtype=np.uint8)
                    .tobytes() for _ in range(2))


CIFAR = _cifar_seed()


@fuzz_settings(150)
@given(mutated(CIFAR))
def test_cifar_reader_raises_only_data_errors(folder, buf):
    path = folder / "data_batch_1.bin"
    path.write_bytes(buf)
    got = assert_contract(read_cifar_batch, str(path), what=len(buf))
    if got is not None:
        images, labels = got
        assert images.shape == (len(buf) // RECORD_BYTES, 3, 32, 32) and (labels < 10).all()


# -- .npz weights -----------------------------------------------------------------------------
def _npz_seed():
    buf = io.BytesIO()
    r = _rng()
    arrays = {"__layers__": np.array(["ip", "relu"]), "__types__": np.array(["InnerProduct", "ReLU"]),
              "ip/0": r.standard_normal((3, 2)).astype(np.float32), "ip/1": np.zeros(3)}
    np.savez(buf, **arrays)
    return buf.getvalue()


NPZ = _npz_seed()


@fuzz_settings(200)
@given(mutated(NPZ, max_edits=3))
def test_npz_weights_reader_raises_only_data_errors(folder, buf):
    path = folder / "w.npz"
    path.write_bytes(buf)
    layers = assert_contract(weights.load, str(path), what=buf)
    for _, _, arrays in layers or []:
        assert all(a.dtype.kind in "fiu" for a in arrays)


# -- .solverstate -----------------------------------------------------------------------------
STATE_NET = """
name: "s"
layer { name: "data" type: "Input" top: "x" top: "t"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


@pytest.fixture(scope="module")
def state_seed(folder):
    """(solver to restore into, bytes of a valid .solverstate, its weights file's name)."""
    sp = P.parse_solver(f'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 snapshot_prefix: '
                        f'"{folder / "seed"}" sparsity_report: false')
    sp.net_param = P.parse_net(STATE_NET)
    solver = get_solver(sp)
    solver.step(2)
    path = solver.snapshot()
    target = get_solver(sp)
    return target, open(path, "rb").read()


@fuzz_settings(200)
@given(data=st.data())
def test_solverstate_reader_raises_only_solver_errors(folder, state_seed, data):
    solver, seed = state_seed
    buf = data.draw(mutated(seed, max_edits=3))
    path = folder / "seed_iter_2.solverstate"      # beside its weights file
    path.write_bytes(buf)
    before = [b.data.copy() for b in solver.net.learnable_params]

    def restore():
        solver.restore(str(path))
        return True

    if assert_contract(restore, allowed=(SolverError,), what=buf) is None:
        for b, w in zip(solver.net.learnable_params, before):
            np.testing.assert_array_equal(b.data, w)     # a failed restore changes nothing
