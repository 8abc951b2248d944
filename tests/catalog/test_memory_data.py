import numpy as np
import pytest

from minicaffe.errors import DataError
from minicaffe.testing.layer_case import LayerCase

DATA = np.arange(4 * 2 * 3 * 3, dtype=np.float64).reshape(4, 2, 3, 3)
LABELS = np.array([3.0, 1.0, 4.0, 1.0])


class TestMemoryData(LayerCase):
    type, bottom_shapes, num_tops = "MemoryData", [], 2
    params = {"batch_size": 2, "channels": 2, "height": 3, "width": 3}
    check_gradient = False
    repeatable = False              # each forward moves to the next batch (tested below)

    def build(self, *args, **kwargs):
        layer, bottom, top = super().build(*args, **kwargs)
        layer.set_input_arrays(DATA, LABELS)
        return layer, bottom, top

    def reference(self):
        return DATA[:2], LABELS[:2]


def test_batches_advance_and_wrap_around():
    layer, bottom, top = TestMemoryData().build()
    seen = []
    for _ in range(3):
        layer.forward(bottom, top)
        seen.append(top[1].data.tolist())
    assert seen == [[3.0, 1.0], [4.0, 1.0], [3.0, 1.0]]


def test_bad_arrays_are_named():
    layer, bottom, top = TestMemoryData().build()
    with pytest.raises(DataError, match="multiple of batch_size 2"):
        layer.set_input_arrays(DATA[:3], LABELS[:3])
    with pytest.raises(DataError, match=r"shape \(n, 2, 3, 3\)"):
        layer.set_input_arrays(DATA[:, :1], LABELS)
    with pytest.raises(DataError, match="expected 4 labels"):
        layer.set_input_arrays(DATA, LABELS[:2])


def test_forward_without_arrays_fails_clearly():
    case = TestMemoryData()
    layer, bottom, top = LayerCase.build(case)
    with pytest.raises(DataError, match="set_input_arrays"):
        layer.forward(bottom, top)
