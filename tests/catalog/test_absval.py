import numpy as np
import pytest

from minicaffe.blob import Blob
from minicaffe.errors import LayerSetupError
from minicaffe.catalog import create_layer
from minicaffe.testing.layer_case import LayerCase


class TestAbsVal(LayerCase):
    type, bottom_shapes = "AbsVal", [(2, 3, 4, 5)]
    kinks = [0.0]

    def reference(self, x):
        return np.where(x < 0, -x, x)


def test_absval_refuses_in_place():
    layer = create_layer(TestAbsVal().layer_param(), "TRAIN")
    x = Blob((2, 3))
    with pytest.raises(LayerSetupError, match="in place"):
        layer.setup([x], [x])
