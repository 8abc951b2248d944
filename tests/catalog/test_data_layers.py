"""Data, HDF5Data and ImageData layers: LayerCases (no gradients) plus batch-order, transform,
seeding, prefetch and error-message tests on small files generated here."""
import struct

import numpy as np
import pytest

from minicaffe.blob import Blob
from minicaffe.data import LMDBWriter, encode_datum
from minicaffe.errors import DataError
from minicaffe.catalog import create_layer
from minicaffe.testing.layer_case import LayerCase, layer_parameter


def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def make_idx(folder, n, h=5, w=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    return str(folder / "train-images-idx3-ubyte"), images[:, None], labels


def make_lmdb(folder, images, labels):
    path = folder / "db"
    with LMDBWriter(str(path)) as db:
        for i, (img, lbl) in enumerate(zip(images, labels)):
            db.put(f"{i:08d}", encode_datum(img, int(lbl)))
    return str(path)


def make_h5(folder, data, label):
    import h5py
    with h5py.File(folder / "a.h5", "w") as f:
        f["data"] = data
        f["label"] = label
    (folder / "list.txt").write_text("a.h5\n")
    return str(folder / "list.txt")


def make_images(folder, n, seed=0):
    from PIL import Image
    rng = np.random.default_rng(seed)
    arrays = rng.integers(0, 256, size=(n, 6, 7, 3), dtype=np.uint8)
    lines = []
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(folder / f"im{i}.png")
        lines.append(f"im{i}.png {i}")
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    return str(folder / "list.txt"), arrays[:, :, :, ::-1].transpose(0, 3, 1, 2)   # BGR planes


def build(type_name, params, tops=("data", "label"), phase="TRAIN", seed=1234):
    """Layer of `type_name` from a prototxt body string, set up with float32 tops."""
    lp = layer_parameter("d", type_name, [], list(tops), params)
    layer = create_layer(lp, phase)
    top = [Blob((), name=t) for t in tops]
    layer.check_counts([], top)
    np.random.seed(seed)
    layer.setup([], top)
    layer.reshape([], top)
    return layer, top


def forward(layer, top):
    layer.reshape([], top)
    layer.forward([], top)
    return [np.array(t.data) for t in top]


# -- LayerCases (one batch = the whole dataset, so repeated forwards agree) --------------------
class TestDataIDX(LayerCase):
    type, bottom_shapes, num_tops, check_gradient = "Data", [], 2, False

    @pytest.fixture(autouse=True)
    def _files(self, tmp_path):
        src, self.images, self.labels = make_idx(tmp_path, n=6)
        self.params = (f'data_param {{ source: "{src}" batch_size: 6 backend: IDX }} '
                       f'transform_param {{ scale: 0.00390625 }}')

    def reference(self):
        return self.images.astype(np.float64) * 0.00390625, self.labels


class TestDataLMDB(LayerCase):
    type, bottom_shapes, num_tops, check_gradient, phase = "Data", [], 2, False, "TEST"

    @pytest.fixture(autouse=True)
    def _files(self, tmp_path):
        rng = np.random.default_rng(5)
        self.images = rng.integers(0, 256, size=(4, 3, 6, 6), dtype=np.uint8)
        self.labels = np.array([1, 0, 3, 2])
        src = make_lmdb(tmp_path, self.images, self.labels)
        self.params = (f'data_param {{ source: "{src}" batch_size: 4 backend: LMDB }} '
                       f'transform_param {{ crop_size: 4 mean_value: 100 mean_value: 50 mean_value: 0 }}')

    def reference(self):
        crop = self.images[:, :, 1:5, 1:5].astype(np.float64)
        return crop - np.array([100, 50, 0])[None, :, None, None], self.labels


class TestHDF5Data(LayerCase):
    type, bottom_shapes, num_tops, check_gradient = "HDF5Data", [], 2, False

    @pytest.fixture(autouse=True)
    def _files(self, tmp_path):
        rng = np.random.default_rng(6)
        self.data = rng.standard_normal((5, 2, 3)).astype(np.float32)
        self.label = np.arange(5, dtype=np.float32)
        self.params = f'hdf5_data_param {{ source: "{make_h5(tmp_path, self.data, self.label)}" batch_size: 5 }}'

    def layer_param(self, bottoms=None, tops=None):
        return super().layer_param(tops=["data", "label"])

    def reference(self):
        return self.data, self.label


class TestImageData(LayerCase):
    type, bottom_shapes, num_tops, check_gradient = "ImageData", [], 2, False

    @pytest.fixture(autouse=True)
    def _files(self, tmp_path):
        src, self.bgr = make_images(tmp_path, 3)
        self.params = (f'image_data_param {{ source: "{src}" root_folder: "{tmp_path}/" batch_size: 3 }} '
                       f'transform_param {{ scale: 2 }}')

    def reference(self):
        return self.bgr.astype(np.float64) * 2, np.arange(3)


# -- behaviour --------------------------------------------------------------------------------
def test_data_batches_in_order_and_wrap(tmp_path):
    src, images, labels = make_idx(tmp_path, n=5)
    layer, top = build("Data", f'data_param {{ source: "{src}" batch_size: 3 backend: IDX }}')
    assert top[0].shape == (3, 1, 5, 4) and top[1].shape == (3,)
    got = [forward(layer, top) for _ in range(3)]
    order = [0, 1, 2, 3, 4, 0, 1, 2, 3]
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), images[order])
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), labels[order])
    layer.close()


@pytest.mark.parametrize("prefetch", [0, 1, 4])
def test_prefetch_gives_the_same_batches_as_direct_reads(tmp_path, prefetch):
    _, images, labels = make_idx(tmp_path, n=9, h=8, w=8)
    src = make_lmdb(tmp_path, images, labels)
    body = (f'data_param {{ source: "{src}" batch_size: 4 backend: LMDB prefetch: {prefetch} }} '
            'transform_param { crop_size: 5 mirror: true }')
    runs = []
    for _ in range(2):
        layer, top = build("Data", body, seed=77)
        runs.append([forward(layer, top)[0] for _ in range(5)])
        layer.close()
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    direct, top = build("Data", body.replace(f"prefetch: {prefetch}", "prefetch: 0"), seed=77)
    for a in runs[0]:
        np.testing.assert_array_equal(forward(direct, top)[0], a)
    direct.close()
    assert (direct._feeder._prefetcher is None) and (prefetch == 0 or not layer._feeder._prefetcher.alive)


def test_train_crops_are_random_test_crops_centred(tmp_path):
    src, images, _ = make_idx(tmp_path, n=8, h=9, w=9)
    body = f'data_param {{ source: "{src}" batch_size: 8 backend: IDX }} transform_param {{ crop_size: 5 }}'
    layer, top = build("Data", body, phase="TEST")
    np.testing.assert_array_equal(forward(layer, top)[0], images[:, :, 2:7, 2:7])
    layer, top = build("Data", body, phase="TRAIN")
    data = forward(layer, top)[0]
    centred = [np.array_equal(data[i], images[i, :, 2:7, 2:7]) for i in range(8)]
    assert not all(centred)
    for i in range(8):          # each crop is some 5x5 window of its own image
        assert any(np.array_equal(data[i], images[i, :, r:r + 5, c:c + 5])
                   for r in range(5) for c in range(5))


def test_legacy_transform_fields_in_data_param(tmp_path):
    src, images, _ = make_idx(tmp_path, n=2)
    layer, top = build("Data", f'data_param {{ source: "{src}" batch_size: 2 backend: IDX scale: 0.5 }}')
    np.testing.assert_array_equal(forward(layer, top)[0], images * np.float32(0.5))


def test_rand_skip_starts_inside_the_data(tmp_path):
    src, images, labels = make_idx(tmp_path, n=50)
    starts = set()
    for seed in range(6):
        layer, top = build("Data", f'data_param {{ source: "{src}" batch_size: 1 backend: IDX rand_skip: 40 }}',
                           seed=seed)
        starts.add(int(np.flatnonzero((images[:, 0] == forward(layer, top)[0][0, 0]).all(axis=(1, 2)))[0]))
        layer.close()
    assert len(starts) > 1 and max(starts) < 40


def test_data_single_top(tmp_path):
    src, images, _ = make_idx(tmp_path, n=3)
    layer, top = build("Data", f'data_param {{ source: "{src}" batch_size: 3 backend: IDX }}', tops=["data"])
    np.testing.assert_array_equal(forward(layer, top)[0], images)


def test_data_errors_name_layer_file_and_record(tmp_path):
    with pytest.raises(DataError, match=r"layer 'd' \(Data\): .*nothing-images-idx3-ubyte: no such file"):
        build("Data", f'data_param {{ source: "{tmp_path}/nothing-images-idx3-ubyte" batch_size: 2 backend: IDX }}')
    with pytest.raises(DataError, match=r"layer 'd' \(Data\): .*no such LMDB"):
        build("Data", f'data_param {{ source: "{tmp_path}/nodb" batch_size: 2 backend: LMDB }}')
    with pytest.raises(DataError, match="LEVELDB is not supported"):
        build("Data", f'data_param {{ source: "{tmp_path}/x" batch_size: 2 }}')
    src, _, _ = make_idx(tmp_path, n=3)
    with pytest.raises(Exception, match="batch_size must be positive"):
        build("Data", f'data_param {{ source: "{src}" backend: IDX }}')
    with pytest.raises(DataError, match=r"layer 'd' transform_param: crop_size 9 exceeds the image size 5x4"):
        build("Data", f'data_param {{ source: "{src}" batch_size: 2 backend: IDX }} transform_param {{ crop_size: 9 }}')


def test_bad_record_mid_run_raises_in_forward_not_hang(tmp_path):
    path = tmp_path / "db"
    with LMDBWriter(str(path)) as db:
        db.put("00000000", encode_datum(np.zeros((1, 2, 2), np.uint8), 0))
        db.put("00000001", encode_datum(np.zeros((1, 2, 2), np.uint8), 1))
        db.put("00000002", encode_datum(np.zeros((2, 2, 2), np.uint8), 2))
    layer, top = build("Data", f'data_param {{ source: "{path}" batch_size: 2 backend: LMDB prefetch: 2 }}')
    forward(layer, top)
    with pytest.raises(DataError, match=r"layer 'd' \(Data\): .*db: record 2 \(key '00000002'\): Datum "
                                        r"shape \(2, 2, 2\) differs"):
        forward(layer, top)
    layer.close()


def test_hdf5_shuffle_epoch_is_permutation(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(6, 2)
    src = make_h5(tmp_path, data, np.arange(6))
    layer, top = build("HDF5Data", f'hdf5_data_param {{ source: "{src}" batch_size: 6 shuffle: true }}')
    d, lab = forward(layer, top)
    assert sorted(lab.tolist()) == list(range(6))
    np.testing.assert_array_equal(d, data[lab.astype(int)])
    again, _ = build("HDF5Data", f'hdf5_data_param {{ source: "{src}" batch_size: 6 shuffle: true }}')
    np.testing.assert_array_equal(forward(again, _)[1], lab)        # same global seed, same order


def test_hdf5_missing_dataset_names_layer(tmp_path):
    src = make_h5(tmp_path, np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(DataError, match=r"layer 'd' \(HDF5Data\): .*a.h5: no dataset 'target'"):
        build("HDF5Data", f'hdf5_data_param {{ source: "{src}" batch_size: 2 }}', tops=["data", "target"])


def test_image_data_resize_gray_shuffle(tmp_path):
    src, _ = make_images(tmp_path, 4)
    layer, top = build("ImageData", f'image_data_param {{ source: "{src}" root_folder: "{tmp_path}/" '
                                    'batch_size: 4 new_height: 3 new_width: 2 is_color: false shuffle: true }')
    data, lab = forward(layer, top)
    assert data.shape == (4, 1, 3, 2) and sorted(lab.tolist()) == [0, 1, 2, 3]


def test_image_data_missing_image_names_line(tmp_path):
    src, _ = make_images(tmp_path, 2)
    (tmp_path / "im1.png").unlink()
    layer, top = build("ImageData", f'image_data_param {{ source: "{src}" root_folder: "{tmp_path}/" batch_size: 2 }}')
    with pytest.raises(DataError, match=r"layer 'd' \(ImageData\): .*list.txt:2: image file .*im1.png not found"):
        forward(layer, top)


def test_hdf5_data_with_transform_param(tmp_path):
    data = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    src = make_h5(tmp_path, data, np.arange(2))
    layer, top = build("HDF5Data", f'hdf5_data_param {{ source: "{src}" batch_size: 2 }} '
                                   'transform_param { crop_size: 2 scale: 0.5 mean_value: 1 }', phase="TEST")
    d, lab = forward(layer, top)
    np.testing.assert_array_equal(d, (data[:, :, 1:3, 1:3] - 1) * 0.5)
    np.testing.assert_array_equal(lab, [0, 1])
    layer.close()


def test_image_data_rand_skip_and_encoded_lmdb_gray(tmp_path):
    import io

    from PIL import Image
    src, bgr = make_images(tmp_path, 5)
    starts = set()
    for seed in range(5):
        layer, top = build("ImageData", f'image_data_param {{ source: "{src}" root_folder: "{tmp_path}/" '
                                        'batch_size: 1 rand_skip: 4 }', seed=seed)
        starts.add(int(forward(layer, top)[1][0]))
        layer.close()
    assert len(starts) > 1 and max(starts) < 4
    # encoded colour Datums read as one grey channel with force_gray
    with LMDBWriter(str(tmp_path / "enc")) as db:
        for i in range(2):
            db.put(f"{i:08d}", encode_datum(label=i, encoded_bytes=_png(bgr[i])))
    layer, top = build("Data", f'data_param {{ source: "{tmp_path}/enc" batch_size: 2 backend: LMDB }} '
                               'transform_param { force_gray: true }')
    d, lab = forward(layer, top)
    gray = [np.asarray(Image.open(io.BytesIO(_png(bgr[i]))).convert("L")) for i in range(2)]
    assert d.shape == (2, 1, 6, 7)
    np.testing.assert_array_equal(d[:, 0], np.stack(gray))
    layer.close()


def _png(bgr_chw):
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(bgr_chw.transpose(1, 2, 0)[:, :, ::-1]).save(buf, format="PNG")
    return buf.getvalue()
