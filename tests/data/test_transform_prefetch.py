"""DataTransformer against a per-record loop reference; mean files; Prefetcher behaviour."""
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from minicaffe import wire
from minicaffe.data import DataTransformer, Prefetcher, read_mean_file, write_mean_file
from minicaffe.errors import DataError


def param(**kw):
    base = dict(scale=1.0, mirror=False, crop_size=0, mean_file="", mean_value=[])
    base.update(kw)
    return SimpleNamespace(**base)


def reference(x, scale, mean, crop, offsets, flips):
    """Caffe's per-datum loop: crop at offsets[n], subtract mean at the source pixel, scale,
    write mirrored columns when flips[n]."""
    n, c, h, w = x.shape
    ch, cw = (crop, crop) if crop else (h, w)
    out = np.zeros((n, c, ch, cw), np.float32)
    for i in range(n):
        h0, w0 = offsets[i]
        for k in range(c):
            for r in range(ch):
                for q in range(cw):
                    src = x[i, k, h0 + r, w0 + q]
                    m = mean[k, h0 + r, w0 + q] if mean.ndim == 3 else mean[k]
                    dst_q = cw - 1 - q if flips[i] else q
                    out[i, k, r, dst_q] = (np.float32(src) - np.float32(m)) * np.float32(scale)
    return out


def test_scale_and_mean_value(rng):
    x = rng.integers(0, 256, size=(3, 2, 4, 5), dtype=np.uint8)
    t = DataTransformer(param(scale=0.00390625, mean_value=[10.0, 20.0]), "TEST")
    y = t(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    exp = reference(x, 0.00390625, np.array([10.0, 20.0]), 0, [(0, 0)] * 3, [False] * 3)
    np.testing.assert_array_equal(y, exp)
    one = DataTransformer(param(mean_value=[5.0]), "TEST")(x)
    np.testing.assert_array_equal(one, x.astype(np.float32) - 5)


def test_center_crop_at_test_with_mean_file(tmp_path, rng):
    x = rng.integers(0, 256, size=(2, 3, 7, 6), dtype=np.uint8)
    mean = rng.uniform(0, 255, size=(3, 7, 6)).astype(np.float32)
    write_mean_file(tmp_path / "mean.binaryproto", mean)
    t = DataTransformer(param(crop_size=4, mean_file=str(tmp_path / "mean.binaryproto"), scale=0.5), "TEST")
    y = t(x)
    exp = reference(x, 0.5, mean, 4, [(1, 1)] * 2, [False, False])
    np.testing.assert_array_equal(y, exp)


def test_random_crop_and_mirror_at_train_match_reference(rng):
    x = rng.integers(0, 256, size=(64, 2, 9, 8), dtype=np.uint8)
    mean = rng.uniform(0, 255, size=(2, 9, 8)).astype(np.float32)
    t = DataTransformer(param(crop_size=5, mirror=True, scale=2.0), "TRAIN", seed=7)
    t.mean_image = mean
    y = t(x)
    # recover each record's offset and flip by exhaustive match, then compare with the loop
    offsets, flips = [], []
    for i in range(64):
        found = [(h0, w0, f) for h0 in range(5) for w0 in range(4) for f in (False, True)
                 if np.array_equal(y[i:i + 1], reference(x[i:i + 1], 2.0, mean, 5, [(h0, w0)], [f]))]
        assert len(found) == 1, f"record {i}: {len(found)} crop/flip candidates match"
        offsets.append(found[0][:2])
        flips.append(found[0][2])
    # the draws cover several offsets and both flip outcomes (random, not constant)
    assert len(set(offsets)) > 5 and 10 < sum(flips) < 54
    # seeded: the same seed gives the same batch
    t2 = DataTransformer(param(crop_size=5, mirror=True, scale=2.0), "TRAIN", seed=7)
    t2.mean_image = mean
    np.testing.assert_array_equal(t2(x), y)


def test_mirror_without_crop(rng):
    x = rng.standard_normal((40, 1, 3, 4)).astype(np.float32)
    y = DataTransformer(param(mirror=True), "TEST", seed=0)(x)
    flipped = [np.array_equal(y[i], x[i, :, :, ::-1]) for i in range(40)]
    same = [np.array_equal(y[i], x[i]) for i in range(40)]
    assert all(a or b for a, b in zip(flipped, same)) and 5 < sum(flipped) < 35


def test_transform_errors(tmp_path, rng):
    x = np.zeros((1, 3, 4, 4), np.uint8)
    with pytest.raises(DataError, match="mean_file or mean_value, not both"):
        DataTransformer(param(mean_file="m", mean_value=[1.0]))
    with pytest.raises(DataError, match="2 mean_value entries for 3 channels"):
        DataTransformer(param(mean_value=[1.0, 2.0]))(x)
    with pytest.raises(DataError, match="crop_size 5 exceeds the image size 4x4"):
        DataTransformer(param(crop_size=5))(x)
    write_mean_file(tmp_path / "m.binaryproto", np.zeros((3, 5, 5)))
    with pytest.raises(DataError, match=r"mean_file image has shape \(3, 5, 5\), the data records \(3, 4, 4\)"):
        DataTransformer(param(mean_file=str(tmp_path / "m.binaryproto")))(x)
    with pytest.raises(DataError, match="cannot read mean file"):
        DataTransformer(param(mean_file=str(tmp_path / "none.binaryproto")))


def test_mean_file_bytes_are_caffe_legacy_blobproto(tmp_path):
    mean = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    write_mean_file(tmp_path / "m.binaryproto", mean)
    raw = (tmp_path / "m.binaryproto").read_bytes()
    # num=1 channels=2 height=2 width=2, then packed float data (field 5)
    assert raw == b"\x08\x01\x10\x02\x18\x02\x20\x02\x2a\x20" + mean.tobytes()
    np.testing.assert_array_equal(read_mean_file(tmp_path / "m.binaryproto"), mean)
    # a mean written with `shape { dim: 1 dim: 2 dim: 2 dim: 2 }` reads the same
    (tmp_path / "s.binaryproto").write_bytes(wire.encode_blob_proto(mean[None]))
    np.testing.assert_array_equal(read_mean_file(tmp_path / "s.binaryproto"), mean)


# -- Prefetcher -------------------------------------------------------------------------------
def test_prefetcher_keeps_order_and_bounds_queue():
    produced = []

    def produce():
        produced.append(len(produced))
        return produced[-1]

    with Prefetcher(produce, depth=2) as p:
        time.sleep(0.1)
        assert len(produced) <= 3          # depth queued + one waiting to be put
        assert [p.get() for _ in range(20)] == list(range(20))
    assert not p.alive


def test_prefetcher_reraises_producer_error():
    calls = []

    def produce():
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("bad record 2")
        return len(calls)

    p = Prefetcher(produce, depth=4)
    assert p.get() == 1 and p.get() == 2
    with pytest.raises(ValueError, match="bad record 2"):
        p.get()
    with pytest.raises(ValueError, match="bad record 2"):
        p.get()
    p.close()
    assert len(calls) == 3


def test_prefetcher_close_while_producer_blocked_on_full_queue():
    p = Prefetcher(lambda: np.zeros(10), depth=1)
    time.sleep(0.05)
    start = time.time()
    p.close()
    assert time.time() - start < 2 and not p.alive
    with pytest.raises(RuntimeError, match="after close"):
        p.get()
    names = [t.name for t in threading.enumerate()]
    assert names.count("prefetch") == 0


def test_a_mean_file_cut_at_any_byte_names_the_file(tmp_path, rng):
    """A corrupt mean file raised bare ValueErrors (negative dims, a reshape) or wire errors
    without the file's name."""
    write_mean_file(tmp_path / "m.binaryproto", rng.standard_normal((3, 4, 5)))
    full = (tmp_path / "m.binaryproto").read_bytes()
    path = tmp_path / "cut.binaryproto"
    for cut in range(len(full)):
        path.write_bytes(full[:cut])
        with pytest.raises(DataError, match=r"cut\.binaryproto"):
            read_mean_file(path)


@pytest.mark.parametrize("blob, words", [
    (wire.Writer().varint(1, 1).varint(2, 2**31 - 1).varint(3, -5).varint(4, 2)
     .packed_floats(5, [1.0]).getvalue(), r"dimension 2 of shape \(1, 2147483647, -5, 2\) is negative"),
    (wire.Writer().message(7, wire.encode_blob_shape([3, 2, 2])).packed_floats(5, [1.0] * 11)
     .getvalue(), r"shape \(3, 2, 2\) needs 12 values, found 11"),
    (wire.Writer().message(7, wire.encode_blob_shape([1, 1, 2, 2]))
     .packed_floats(5, [1.0, np.nan, 2.0, np.inf]).getvalue(),
     r"mean image holds 2 non-finite values \(the first at \(0, 0, 1\)\)"),
    (b"\x0a\x02\xff\xfe", r"expected a varint"),
])
def test_a_corrupt_mean_file_names_the_file_and_the_problem(tmp_path, blob, words):
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(blob)
    with pytest.raises(DataError, match=rf"mean\.binaryproto: .*{words}"):
        read_mean_file(path)
