"""Bias layer (Caffe's BiasLayer): per-position additive term."""
from minicaffe import fillers
from minicaffe.blob import Blob
from minicaffe.catalog._broadcast import broadcast_dims, param_shape
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Bias")
class Bias(Layer):
    """y = x + b, b broadcast over the axes it does not span.

    bottom[0]: any shape. With one bottom, b is blobs[0] of shape
    bottom[0].shape[axis : axis + num_axes] (num_axes -1: to the end; 0: a scalar), filled by
    `filler` (constant 0 by default); with two bottoms b is bottom[1], whose shape must equal
    bottom[0].shape[axis : axis + bottom[1].ndim]. top[0]: bottom[0]'s shape; safe in place.
    Backward: dx = dy; db = sum over broadcast axes of dy (overwrites bottom[1].diff, adds into
    blobs[0].diff).
    """

    min_bottoms, max_bottoms = 1, 2
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.bias_param
        self.blobs = []
        if len(bottom) == 1:
            shape = param_shape(self, bottom, p.axis, p.num_axes)
            bias = Blob(shape, dtype=bottom[0].dtype, name="bias")
            fillers.fill(bias, p.filler)
            self.blobs.append(bias)

    def _bias_blob(self, bottom):
        return bottom[1] if len(bottom) == 2 else self.blobs[0]

    def reshape(self, bottom, top):
        b = self._bias_blob(bottom)
        name = "bottom[1] (the bias)" if len(bottom) == 2 else "the bias blob"
        self.dims = broadcast_dims(self, bottom, self.layer_param.bias_param.axis, b.shape, name)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        b = self._bias_blob(bottom).data.reshape(1, self.dims[1], 1)
        y = top[0].data.reshape(self.dims)
        if top[0] is bottom[0]:
            y += b
        else:
            y[...] = bottom[0].data.reshape(self.dims) + b

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.dims)
        b = self._bias_blob(bottom)
        if len(bottom) == 1:
            b.diff[...] += dy.sum(axis=(0, 2)).reshape(b.shape)
        elif len(propagate_down) > 1 and propagate_down[1]:
            b.diff[...] = dy.sum(axis=(0, 2)).reshape(b.shape)
        if propagate_down[0] and top[0] is not bottom[0]:
            bottom[0].diff[...] = top[0].diff
