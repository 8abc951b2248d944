"""HDF5Output: data / label datasets in the legacy 4-D shape, appended batch by batch."""
import h5py
import numpy as np
import pytest

from minicaffe.net import Net
from minicaffe.prototxt import parse_net
from minicaffe.testing.layer_case import LayerCase, expect_setup_error


class TestHDF5Output(LayerCase):
    type, bottom_shapes, num_tops = "HDF5Output", [(4, 3, 2, 2), (4,)], 0
    check_gradient = False

    @pytest.fixture(autouse=True)
    def _file(self, tmp_path):
        self.path = tmp_path / "out.h5"
        self.params = {"file_name": str(self.path)}

    def reference(self, data, label):
        return ()


def _written(path):
    with h5py.File(path, "r") as f:
        return np.array(f["data"]), np.array(f["label"])


def test_writes_legacy_4d_datasets(tmp_path):
    case = TestHDF5Output()
    case.params = {"file_name": str(tmp_path / "a.h5")}
    x = np.random.default_rng(0).standard_normal((4, 5))
    layer, bottom, top = case.build(bottom_values=[x, np.arange(4.0)])
    case.run_forward(layer, bottom, top)
    data, label = _written(tmp_path / "a.h5")          # readable while the layer is alive
    assert data.shape == (4, 5, 1, 1) and label.shape == (4, 1, 1, 1)
    np.testing.assert_array_equal(data.reshape(4, 5), x)
    np.testing.assert_array_equal(label.reshape(4), np.arange(4.0))
    layer.close()
    layer.close()


def test_every_forward_appends(tmp_path):
    case = TestHDF5Output()
    case.params = {"file_name": str(tmp_path / "b.h5")}
    layer, bottom, top = case.build(dtype=np.float32)
    batches = []
    for i in range(3):
        bottom[0].data[...] = i
        bottom[1].data[...] = 10 + i
        case.run_forward(layer, bottom, top)
        batches.append(np.full((4, 3, 2, 2), i, np.float32))
    layer.close()
    data, label = _written(tmp_path / "b.h5")
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, np.concatenate(batches))
    np.testing.assert_array_equal(label.reshape(-1), np.repeat([10.0, 11.0, 12.0], 4))


def test_setup_truncates_an_existing_file(tmp_path):
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f["old"] = [1, 2]
    case = TestHDF5Output()
    case.params = {"file_name": str(path)}
    layer, bottom, top = case.build()
    layer.close()
    with h5py.File(path, "r") as f:
        assert list(f) == []


def test_in_a_net(tmp_path):
    path = tmp_path / "net.h5"
    text = ('input: "x" input_shape { dim: 2 dim: 3 }\n'
            'input: "y" input_shape { dim: 2 }\n'
            f'layer {{ name: "out" type: "HDF5Output" bottom: "x" bottom: "y" '
            f'hdf5_output_param {{ file_name: "{path}" }} }}\n')
    net = Net(parse_net(text), "TEST")
    net.blobs["x"].data[...] = [[1, 2, 3], [4, 5, 6]]
    net.blobs["y"].data[...] = [7, 8]
    net.forward()
    data, label = _written(path)
    np.testing.assert_array_equal(data.reshape(2, 3), [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(label.reshape(2), [7, 8])


def test_missing_file_name():
    case = TestHDF5Output()
    case.params = None
    with pytest.raises(ValueError, match="hdf5_output_param.file_name must be given"):
        case.build()


def test_unwritable_file_is_named(tmp_path):
    case = TestHDF5Output()
    case.params = {"file_name": str(tmp_path / "no" / "such" / "dir.h5")}
    with pytest.raises(ValueError, match="cannot create"):
        case.build()


def test_num_mismatch(tmp_path):
    expect_setup_error(TestHDF5Output, [(4, 3), (3,)], "same num: 4 vs 3",
                       params={"file_name": str(tmp_path / "d.h5")})
