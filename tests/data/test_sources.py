"""Record sources: exact pixels and labels come back, wrap-around, shuffles are permutations,
and broken files raise DataError naming the file and record."""
import gzip

import numpy as np
import pytest

from minicaffe.data import (CIFARSource, HDF5Source, IDXSource, ImageListSource, LMDBSource,
                            LMDBWriter, encode_datum, labels_path_for, open_source, read_idx)
from minicaffe.errors import DataError


# -- IDX --------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_idx_exact_pixels_labels_and_wrap(tmp_path, helpers, gz):
    path, images, labels = helpers.write_idx_pair(tmp_path, n=10, gz=gz)
    src = IDXSource(str(path))
    assert len(src) == 10 and src.shape == (1, 6, 5)
    data, lab = src.next_batch(4)
    assert data.dtype == np.uint8 and data.shape == (4, 1, 6, 5)
    np.testing.assert_array_equal(data[:, 0], images[:4])
    np.testing.assert_array_equal(lab, labels[:4])
    data, lab = src.next_batch(8)            # records 4..9, then wraps to 0, 1
    np.testing.assert_array_equal(data[:, 0], images[[4, 5, 6, 7, 8, 9, 0, 1]])
    np.testing.assert_array_equal(lab, labels[[4, 5, 6, 7, 8, 9, 0, 1]])


def test_idx_labels_path_convention(tmp_path):
    assert labels_path_for("d/train-images-idx3-ubyte.gz") == "d/train-labels-idx1-ubyte.gz"
    assert labels_path_for("d/t10k-images-idx3-ubyte") == "d/t10k-labels-idx1-ubyte"
    assert labels_path_for("d/train-images.idx3-ubyte") == "d/train-labels.idx1-ubyte"
    with pytest.raises(DataError, match="cannot derive the labels file"):
        labels_path_for("d/pictures.bin")
    # only the uncompressed labels file exists: it is used
    (tmp_path / "x-labels-idx1-ubyte").write_bytes(b"")
    assert labels_path_for(str(tmp_path / "x-images-idx3-ubyte.gz")) == str(tmp_path / "x-labels-idx1-ubyte")


def test_idx_header_types(tmp_path, helpers):
    arr = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    path = tmp_path / "ints.idx"
    path.write_bytes(b"\x00\x00\x0c\x03" + np.array([2, 3, 4], ">u4").tobytes() + arr.tobytes())
    out = read_idx(str(path))
    assert out.dtype == np.int32 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, np.arange(24).reshape(2, 3, 4))


def test_idx_wrong_magic(tmp_path, helpers):
    path, _, _ = helpers.write_idx_pair(tmp_path, gz=False)
    raw = bytearray(path.read_bytes())
    raw[0] = 0x50
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: bad IDX magic number 0x50000803"):
        IDXSource(str(path))


def test_idx_labels_file_given_as_images(tmp_path, helpers):
    path, _, _ = helpers.write_idx_pair(tmp_path, gz=False)
    with pytest.raises(DataError, match="magic number 0x00000801, expected 0x00000803"):
        read_idx(str(path).replace("images-idx3", "labels-idx1"), expect_magic=0x803)


def test_idx_truncated_names_record(tmp_path, helpers):
    path, _, _ = helpers.write_idx_pair(tmp_path, n=10, h=6, w=5, gz=False)
    raw = path.read_bytes()
    path.write_bytes(raw[:16 + 30 * 7 + 3])       # 7 whole records and 3 bytes of the 8th
    with pytest.raises(DataError, match=r"truncated: header says 10 records .* record 7 is incomplete"):
        IDXSource(str(path))


def test_idx_truncated_gzip(tmp_path, helpers):
    path, _, _ = helpers.write_idx_pair(tmp_path, n=50, gz=True)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        IDXSource(str(path))


def test_idx_gzip_bomb_is_refused_without_inflating_it(tmp_path, helpers):
    """A .gz whose header promises one small record and then inflates to 1.6 GB: only what the
    header promises (plus one byte) is ever inflated."""
    import gzip
    import tracemalloc

    zeros = gzip.compress(b"\x00" * (16 << 20), compresslevel=9)
    path = tmp_path / "bomb-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(helpers.idx_bytes(np.zeros((1, 28, 28), np.uint8)))
                     + zeros * 100)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb-images-idx3-ubyte\.gz: unexpected bytes after "
                                            r"the 1 records of shape \(28, 28\)"):
            read_idx(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak


def test_idx_header_promising_more_than_memory_is_refused(tmp_path):
    import gzip
    import struct

    header = struct.pack(">HBBIII", 0, 0x0D, 3, 2**32 - 1, 2**32 - 1, 2**32 - 1)
    for name, data in (("huge-images-idx3-ubyte.gz", gzip.compress(header + b"\x00" * 64)),
                       ("huge-images-idx3-ubyte", header + b"\x00" * 64)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=rf"{name}: truncated: header says 4294967295 records"):
            read_idx(str(tmp_path / name))


def test_idx_missing_files(tmp_path, helpers):
    with pytest.raises(DataError, match="no such file"):
        IDXSource(str(tmp_path / "train-images-idx3-ubyte.gz"))
    path, _, _ = helpers.write_idx_pair(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="labels file .*train-labels-idx1-ubyte.gz not found"):
        IDXSource(str(path))


def test_idx_count_mismatch(tmp_path, helpers):
    path, images, labels = helpers.write_idx_pair(tmp_path, n=10, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(helpers.idx_bytes(labels[:9]))
    with pytest.raises(DataError, match="9 labels for 10 images"):
        IDXSource(str(path))


# -- CIFAR-10 ---------------------------------------------------------------------------------
def test_cifar_exact_records_and_sources(tmp_path, helpers):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    parts = [helpers.write_cifar_batch(folder / f"data_batch_{i}.bin", n=3 + i, seed=i) for i in (1, 2)]
    test_imgs, test_lbls = helpers.write_cifar_batch(folder / "test_batch.bin", n=4, seed=9)
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])

    src = CIFARSource(str(folder))
    assert len(src) == 9 and src.shape == (3, 32, 32)
    data, lab = src.next_batch(9)
    np.testing.assert_array_equal(data, images)
    np.testing.assert_array_equal(lab, labels)
    # red plane of record 0 is bytes 1..1024 of the file
    raw = (folder / "data_batch_1.bin").read_bytes()
    assert data[0, 0].tobytes() == raw[1:1025] and data[0, 2].tobytes() == raw[2049:3073]

    one = CIFARSource(str(folder / "test_batch.bin"))
    np.testing.assert_array_equal(one.next_batch(4)[0], test_imgs)
    listed = CIFARSource(f"{folder}/data_batch_2.bin,{folder}/data_batch_1.bin")
    np.testing.assert_array_equal(listed.next_batch(9)[1], np.concatenate([parts[1][1], parts[0][1]]))
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    (test_dir / "test_batch.bin").write_bytes((folder / "test_batch.bin").read_bytes())
    np.testing.assert_array_equal(CIFARSource(str(test_dir)).next_batch(4)[1], test_lbls)


def test_cifar_truncated_and_bad_label(tmp_path, helpers):
    path = tmp_path / "data_batch_1.bin"
    helpers.write_cifar_batch(path, n=3)
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(DataError, match=r"data_batch_1.bin: truncated: .* record 2 is incomplete"):
        CIFARSource(str(path))
    bad = bytearray(raw)
    bad[3073] = 57
    path.write_bytes(bytes(bad))
    with pytest.raises(DataError, match=r"record 1: label 57 outside 0..9"):
        CIFARSource(str(path))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="no CIFAR-10 batches"):
        CIFARSource(str(tmp_path / "empty_dir"))
    with pytest.raises(DataError, match="no such CIFAR-10 batch file"):
        CIFARSource(str(tmp_path / "nothing.bin"))


# -- LMDB -------------------------------------------------------------------------------------
def _write_lmdb(path, images, labels):
    with LMDBWriter(str(path)) as db:
        for i, (img, lbl) in enumerate(zip(images, labels)):
            db.put(f"{i:08d}", encode_datum(img, int(lbl)))


def test_lmdb_uint8_and_float_records(tmp_path, rng):
    images = rng.integers(0, 256, size=(5, 3, 4, 2), dtype=np.uint8)
    labels = np.array([3, -1, 7, 0, 2**20])
    _write_lmdb(tmp_path / "u8", images, labels)
    src = LMDBSource(str(tmp_path / "u8"))
    assert len(src) == 5 and src.shape == (3, 4, 2) and src.dtype == np.uint8
    data, lab = src.next_batch(7)
    np.testing.assert_array_equal(data, images[[0, 1, 2, 3, 4, 0, 1]])
    np.testing.assert_array_equal(lab, labels[[0, 1, 2, 3, 4, 0, 1]])
    src.close()

    floats = rng.standard_normal((3, 1, 2, 2)).astype(np.float32)
    _write_lmdb(tmp_path / "f", floats, [1, 2, 3])
    src = open_source("LMDB", str(tmp_path / "f"))
    data, lab = src.next_batch(3)
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, floats)
    np.testing.assert_array_equal(lab, [1, 2, 3])


def test_lmdb_key_order_not_insertion_order(tmp_path):
    with LMDBWriter(str(tmp_path / "db")) as db:
        for key in (2, 0, 1):
            db.put(f"{key:08d}", encode_datum(np.full((1, 1, 1), key, np.uint8), key))
    data, lab = LMDBSource(str(tmp_path / "db")).next_batch(3)
    np.testing.assert_array_equal(lab, [0, 1, 2])


def test_lmdb_encoded_png(tmp_path, rng):
    import io

    from PIL import Image
    rgb = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    with LMDBWriter(str(tmp_path / "db")) as db:
        db.put("00000000", encode_datum(label=4, encoded_bytes=buf.getvalue()))
    data, lab = LMDBSource(str(tmp_path / "db")).next_batch(1)
    np.testing.assert_array_equal(data[0], rgb[:, :, ::-1].transpose(2, 0, 1))   # BGR planes
    assert lab[0] == 4


def test_lmdb_shape_disagreement_names_record(tmp_path):
    with LMDBWriter(str(tmp_path / "db")) as db:
        db.put("00000000", encode_datum(np.zeros((1, 2, 2), np.uint8), 0))
        db.put("00000001", encode_datum(np.zeros((1, 2, 2), np.uint8), 0))
        db.put("00000002", encode_datum(np.zeros((1, 3, 2), np.uint8), 0))
    src = LMDBSource(str(tmp_path / "db"))
    with pytest.raises(DataError, match=r"db: record 2 \(key '00000002'\): Datum shape \(1, 3, 2\) "
                                        r"differs from the first record's \(1, 2, 2\)"):
        src.next_batch(3)


def test_lmdb_corrupt_record_and_missing(tmp_path):
    with LMDBWriter(str(tmp_path / "db")) as db:
        db.put("00000000", b"\x08\x01\x10\x02\x18\x02\x22\x09abc")   # data length runs past end
    with pytest.raises(DataError, match=r"record 0 \(key '00000000'\): not a valid Caffe Datum"):
        LMDBSource(str(tmp_path / "db"))
    with LMDBWriter(str(tmp_path / "db2")) as db:
        db.put("00000000", b"\x08\x01\x10\x02\x18\x02\x22\x01\x07\x28\x00")  # 1 byte of data for 1x2x2
    with pytest.raises(DataError, match="Datum data has 1 bytes, shape \\(1, 2, 2\\) needs 4"):
        LMDBSource(str(tmp_path / "db2"))
    with pytest.raises(DataError, match="no such LMDB"):
        LMDBSource(str(tmp_path / "missing"))
    with pytest.raises(DataError, match="already exists"):
        LMDBWriter(str(tmp_path / "db"))


def test_open_source_backends(tmp_path):
    with pytest.raises(DataError, match="LEVELDB is not supported"):
        open_source("LEVELDB", "x")
    with pytest.raises(DataError, match="unknown data backend 'FOO'"):
        open_source("FOO", "x")
    with pytest.raises(DataError, match="source is empty"):
        open_source("LMDB", "")


# -- HDF5 -------------------------------------------------------------------------------------
def _write_h5(path, data, label):
    import h5py
    with h5py.File(path, "w") as f:
        f["data"] = data
        f["label"] = label


def test_hdf5_files_in_order_and_wrap(tmp_path, rng):
    a = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    b = rng.standard_normal((2, 2, 2, 2)).astype(np.float32)
    _write_h5(tmp_path / "a.h5", a, np.arange(3.0))
    _write_h5(tmp_path / "b.h5", b, np.arange(3.0, 5.0))
    (tmp_path / "list.txt").write_text("a.h5\nb.h5\n")
    src = HDF5Source(str(tmp_path / "list.txt"), ["data", "label"])
    data, label = src.next_batch(7)
    np.testing.assert_array_equal(data, np.concatenate([a, b, a[:2]]))
    np.testing.assert_array_equal(label, [0, 1, 2, 3, 4, 0, 1])


def test_hdf5_shuffle_is_permutation(tmp_path, rng):
    for i in range(3):
        _write_h5(tmp_path / f"{i}.h5", np.zeros((4, 1)), np.arange(4 * i, 4 * i + 4))
    (tmp_path / "list.txt").write_text("\n".join(f"{i}.h5" for i in range(3)))
    src = HDF5Source(str(tmp_path / "list.txt"), ["data", "label"], shuffle=True, seed=3)
    epochs = [src.next_batch(12)[1] for _ in range(3)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(12))
    assert any(e.tolist() != list(range(12)) for e in epochs)
    assert epochs[0].tolist() != epochs[1].tolist()


def test_hdf5_errors(tmp_path, rng):
    _write_h5(tmp_path / "a.h5", np.zeros((3, 2)), np.zeros(2))
    (tmp_path / "list.txt").write_text("a.h5\n")
    with pytest.raises(DataError, match=r"a.h5: datasets must be non-empty with equal first dimensions"):
        HDF5Source(str(tmp_path / "list.txt"), ["data", "label"])
    with pytest.raises(DataError, match=r"a.h5: no dataset 'target'"):
        HDF5Source(str(tmp_path / "list.txt"), ["data", "target"])
    (tmp_path / "list2.txt").write_text("nothere.h5\n")
    with pytest.raises(DataError, match="listed HDF5 file nothere.h5 does not exist"):
        HDF5Source(str(tmp_path / "list2.txt"), ["data"])
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    (tmp_path / "list3.txt").write_text("bad.h5\n")
    with pytest.raises(DataError, match="cannot read as HDF5"):
        HDF5Source(str(tmp_path / "list3.txt"), ["data"])
    _write_h5(tmp_path / "c.h5", np.zeros((3, 5)), np.zeros(3))
    _write_h5(tmp_path / "d.h5", np.zeros((3, 2)), np.zeros(3))
    (tmp_path / "list4.txt").write_text("c.h5\nd.h5\n")
    src = HDF5Source(str(tmp_path / "list4.txt"), ["data", "label"])
    with pytest.raises(DataError, match=r"d.h5: row shapes 'data' \(2,\).* differ from the first file's 'data' \(5,\)"):
        src.next_batch(4)
    with pytest.raises(DataError, match="no such list file"):
        HDF5Source(str(tmp_path / "none.txt"), ["data"])


@pytest.mark.parametrize("kind", ["strings", "group", "truncated"])
def test_hdf5_datasets_that_are_not_numbers_name_the_file(tmp_path, kind):
    """A dataset of strings, a group where a dataset belongs, a truncated file: DataErrors
    naming the file (a guard: these already were)."""
    import h5py
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        if kind == "strings":
            f["data"] = np.array([b"a", b"b"])
        elif kind == "group":
            f.create_group("data")
        else:
            f["data"] = np.zeros((4, 3))
        f["label"] = np.zeros(2)
    if kind == "truncated":
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) - 600])
    (tmp_path / "list.txt").write_text("odd.h5\n")
    with pytest.raises(DataError, match=r"odd\.h5: "):
        HDF5Source(str(tmp_path / "list.txt"), ["data", "label"])


# -- image lists ------------------------------------------------------------------------------
def _write_images(tmp_path, rng, n=5, size=(6, 4), mode="RGB"):
    from PIL import Image
    arrays = []
    lines = []
    for i in range(n):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / f"img {i}.png")
        arrays.append(arr)
        lines.append(f"img {i}.png {i % 3}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return arrays


def test_image_list_exact_bgr_pixels(tmp_path, rng):
    arrays = _write_images(tmp_path, rng)
    src = ImageListSource(str(tmp_path / "list.txt"), root_folder=str(tmp_path) + "/")
    assert src.shape == (3, 4, 6)
    data, lab = src.next_batch(6)
    for k, i in enumerate([0, 1, 2, 3, 4, 0]):
        np.testing.assert_array_equal(data[k], arrays[i][:, :, ::-1].transpose(2, 0, 1))
    np.testing.assert_array_equal(lab, [0, 1, 2, 0, 1, 0])


def test_image_list_gray_resize_shuffle(tmp_path, rng):
    from PIL import Image
    _write_images(tmp_path, rng, n=6)
    src = ImageListSource(str(tmp_path / "list.txt"), root_folder=str(tmp_path) + "/",
                          new_height=3, new_width=2, is_color=False, shuffle=True, seed=1)
    assert src.shape == (1, 3, 2)
    data, lab = src.next_batch(6)
    assert sorted(lab.tolist()) == [0, 0, 1, 1, 2, 2]
    expected = {i: np.asarray(Image.open(tmp_path / f"img {i}.png").convert("L").resize((2, 3), Image.BILINEAR))
                for i in range(6)}
    matched = sorted(i for k in range(6) for i in range(6) if np.array_equal(data[k, 0], expected[i]))
    assert matched == list(range(6))


def test_image_list_errors(tmp_path, rng):
    _write_images(tmp_path, rng, n=2)
    from PIL import Image
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "big.png")
    (tmp_path / "mixed.txt").write_text("img 0.png 0\nbig.png 1\n")
    src = ImageListSource(str(tmp_path / "mixed.txt"), root_folder=str(tmp_path) + "/")
    with pytest.raises(DataError, match=r"mixed.txt:2: image big.png has shape \(3, 9, 9\)"):
        src.next_batch(2)
    (tmp_path / "missing.txt").write_text("img 0.png 0\nnope.png 1\n")
    src = ImageListSource(str(tmp_path / "missing.txt"), root_folder=str(tmp_path) + "/")
    with pytest.raises(DataError, match=r"missing.txt:2: image file .*nope.png not found"):
        src.next_batch(2)
    (tmp_path / "badlabel.txt").write_text("img 0.png zero\n")
    with pytest.raises(DataError, match=r"badlabel.txt:1: label 'zero' is not an integer"):
        ImageListSource(str(tmp_path / "badlabel.txt"))
    (tmp_path / "notimg.png").write_bytes(b"garbage")
    (tmp_path / "garbage.txt").write_text("notimg.png 0\n")
    with pytest.raises(DataError, match="cannot decode image"):
        ImageListSource(str(tmp_path / "garbage.txt"), root_folder=str(tmp_path) + "/")


def test_real_fashion_mnist(fashion_mnist):
    path = str(fashion_mnist / "t10k-images-idx3-ubyte.gz")
    src = IDXSource(path)
    assert len(src) == 10000 and src.shape == (1, 28, 28)
    data, lab = src.next_batch(10000)
    assert np.bincount(lab).tolist() == [1000] * 10
    with gzip.open(path) as f:
        raw = f.read()
    assert data[1].tobytes() == raw[16 + 784:16 + 2 * 784]


def test_lmdb_opened_twice_in_one_process(tmp_path, rng):
    """TRAIN and TEST nets may read the same LMDB; the lmdb package alone refuses that."""
    images = rng.integers(0, 256, size=(3, 1, 2, 2), dtype=np.uint8)
    _write_lmdb(tmp_path / "db", images, [0, 1, 2])
    a, b = LMDBSource(str(tmp_path / "db")), LMDBSource(str(tmp_path / "db"))
    a.next_batch(2)
    np.testing.assert_array_equal(b.next_batch(3)[0], images)   # independent cursors
    np.testing.assert_array_equal(a.next_batch(1)[0], images[2:])
    a.close()
    np.testing.assert_array_equal(b.next_batch(1)[0], images[:1])
    b.close()
    c = LMDBSource(str(tmp_path / "db"))
    np.testing.assert_array_equal(c.next_batch(1)[0], images[:1])


def test_lmdb_batch_fast_path_agrees_with_per_record_decoding(tmp_path, rng):
    """Whole-batch decoding (same layout as the first record) and the per-record parser give
    the same records; a record that merely has the same length must not fool the fast path."""
    images = rng.integers(0, 256, size=(20, 1, 2, 4), dtype=np.uint8)
    labels = rng.integers(0, 300, size=20)          # labels >= 128 change the record length
    labels[:8] = np.arange(8)
    _write_lmdb(tmp_path / "db", images, labels)
    src = LMDBSource(str(tmp_path / "db"))
    assert src._template is not None
    got = [src.next_batch(5) for _ in range(4)]
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), images)
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), labels)

    with LMDBWriter(str(tmp_path / "db2")) as db:
        db.put("00000000", encode_datum(np.zeros((1, 2, 4), np.uint8), 1))
        db.put("00000001", encode_datum(np.zeros((1, 4, 2), np.uint8), 1))   # same byte count
    with pytest.raises(DataError, match=r"record 1 .*Datum shape \(1, 4, 2\) differs"):
        LMDBSource(str(tmp_path / "db2")).next_batch(2)


def test_array_source_shuffle_is_a_fresh_permutation_each_pass(rng):
    from minicaffe.data import ArraySource
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    src = ArraySource(images, np.arange(10), shuffle=True, seed=5)
    passes = [src.next_batch(10)[1].tolist() for _ in range(3)]
    for p in passes:
        assert sorted(p) == list(range(10))
    assert passes[0] != passes[1] != passes[2] and passes[0] != list(range(10))
    # a batch straddling two passes takes the rest of one and the start of the next
    src = ArraySource(images, np.arange(10), shuffle=True, seed=5)
    first = src.next_batch(7)[1].tolist()
    straddle = src.next_batch(6)[1].tolist()
    assert sorted(first + straddle[:3]) == list(range(10))
    assert straddle[3:] == passes[1][:3]
    with pytest.raises(DataError, match="holds no records"):
        ArraySource(images[:0], [], name="empty.idx")


def test_lmdb_writer_grows_a_full_map(tmp_path, rng):
    images = rng.integers(0, 256, size=(40, 3, 32, 32), dtype=np.uint8)     # ~120 kB of records
    with LMDBWriter(str(tmp_path / "db"), commit_every=7, map_size=1 << 15) as db:
        for i, img in enumerate(images):
            db.put(f"{i:08d}", encode_datum(img, i % 10))
    data, lab = LMDBSource(str(tmp_path / "db")).next_batch(40)
    np.testing.assert_array_equal(data, images)
    np.testing.assert_array_equal(lab, np.arange(40) % 10)


def test_idx_source_accepts_name_without_gz(tmp_path, helpers):
    path, images, _ = helpers.write_idx_pair(tmp_path, n=3, gz=True)
    src = IDXSource(str(path)[:-3])
    np.testing.assert_array_equal(src.next_batch(3)[0][:, 0], images)


def test_lmdb_rewritten_in_process_is_read_afresh(tmp_path):
    """A dropped source returns the shared environment, so a database converted again at the
    same path is not read through a stale mapping."""
    import shutil
    for value in (1, 2):
        with LMDBWriter(str(tmp_path / "db")) as db:
            db.put("00000000", encode_datum(np.full((1, 1, 1), value, np.uint8), value))
        src = LMDBSource(str(tmp_path / "db"))
        assert src.next_batch(1)[1][0] == value
        del src
        shutil.rmtree(tmp_path / "db")


def test_lmdb_truncated_data_file_is_a_data_error_not_sigbus(tmp_path, rng):
    """LMDB maps data.mdb into memory: touching a page past the end of a truncated file killed
    the process with SIGBUS. The file size is now checked against its meta page first. Runs in a
    child process, so a regression shows as a signal instead of killing the test run."""
    import shutil
    import subprocess
    import sys

    images = rng.integers(0, 256, size=(300, 3, 32, 32), dtype=np.uint8)
    _write_lmdb(tmp_path / "full", images, np.arange(300) % 10)
    size = (tmp_path / "full" / "data.mdb").stat().st_size
    cuts = [0, 100, 4095, 4096, 8191, 8192, 3 * 4096, size // 2, size - 4096, size - 1]
    paths = []
    for cut in cuts:
        folder = tmp_path / f"cut{cut}"
        shutil.copytree(tmp_path / "full", folder)
        with open(folder / "data.mdb", "r+b") as f:
            f.truncate(cut)
        paths.append(str(folder))
    child = (
        "import sys\n"
        "from minicaffe.data.lmdb_source import LMDBSource\n"
        "from minicaffe.errors import DataError\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        src = LMDBSource(path)\n"
        "        src.next_batch(len(src))\n"
        "        print('read', path, flush=True)\n"
        "    except DataError as e:\n"
        "        print('DataError', e, flush=True)\n")
    out = subprocess.run([sys.executable, "-c", child, *paths], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    lines = out.stdout.splitlines()
    assert len(lines) == len(cuts), lines
    for cut, line in zip(cuts, lines):
        assert line.startswith("DataError ") and f"cut{cut}" in line, line
    assert f"data.mdb has {size // 2} bytes but its meta page needs {size}" in lines[7]


def test_lmdb_full_size_file_still_reads(tmp_path, rng):
    images = rng.integers(0, 256, size=(20, 1, 4, 4), dtype=np.uint8)
    _write_lmdb(tmp_path / "db", images, np.zeros(20))
    data, _ = LMDBSource(str(tmp_path / "db")).next_batch(20)
    np.testing.assert_array_equal(data, images)


def _png_claiming(width, height):
    """A PNG whose header claims a huge image, with a few bytes of image data."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("payload", ["bomb", "truncated", "garbage"])
def test_undecodable_images_are_data_errors(tmp_path, payload):
    """PIL raises DecompressionBombError (not an OSError) for a header claiming 10^10 pixels;
    every decoder failure is a DataError naming the record or list line."""
    import io

    from PIL import Image

    from minicaffe.data.datum import decode_image
    from minicaffe.data.image_list import load_image
    if payload == "bomb":
        data = _png_claiming(100000, 100000)
    elif payload == "truncated":
        buf = io.BytesIO()
        noise = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
        Image.fromarray(noise).save(buf, format="PNG")
        data = buf.getvalue()[:600]
    else:
        data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
    with pytest.raises(DataError, match=r"db: record 3: cannot decode image"):
        decode_image(data, "db: record 3")
    (tmp_path / "x.png").write_bytes(data)
    with pytest.raises(DataError, match=r"list\.txt:2: cannot decode image"):
        load_image(str(tmp_path / "x.png"), where="list.txt:2")


def test_list_files_that_are_not_utf8_name_the_line(tmp_path):
    from minicaffe.data.hdf5 import read_list_file
    from minicaffe.data.image_list import read_image_list
    path = tmp_path / "list.txt"
    path.write_bytes(b"a.png 1\nb\xff.png 2\n")
    with pytest.raises(DataError, match=r"list\.txt:2: not UTF-8 text \(byte 0xff\)"):
        read_image_list(str(path))
    with pytest.raises(DataError, match=r"list\.txt:2: not UTF-8 text \(byte 0xff\)"):
        read_list_file(str(path))
