"""Threshold layer (Caffe's ThresholdLayer)."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Threshold")
class Threshold(Layer):
    """y = 1 if x > threshold else 0, elementwise (strictly greater; `threshold_param.threshold`,
    default 0).

    The step has derivative 0 wherever it has one, so backward writes zeros into the bottom
    diff (Caffe aborts with "Not Implemented" instead). bottom[0]: any shape; top[0]: same
    shape; safe in place.
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        t = x.dtype.type(self.layer_param.threshold_param.threshold)
        backend.xp_of(x).greater(x, t, out=top[0].data, casting="unsafe")

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 0
