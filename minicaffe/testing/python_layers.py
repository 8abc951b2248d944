"""Python layers (pycaffe's `caffe.Layer` subclasses) for tests and examples.

Refer to them from a prototxt as `python_param { module: "minicaffe.testing.python_layers"
layer: "..." }`. Each is written the way a pycaffe user writes one.
"""
import ast

import numpy as np

from minicaffe.pycaffe import Layer


class AffineLayer(Layer):
    """y = a * x + b with a learnable scale `a` (one value per channel, axis 1) and a fixed shift
    `b` from `param_str` (a Python literal dict, e.g. "{'shift': 0.5}"; default 0).

    bottom[0]: (N, C, ...); top[0]: same shape; blobs[0]: (C,) initialised to 1."""

    def setup(self, bottom, top):
        params = ast.literal_eval(self.param_str) if self.param_str else {}
        self.shift = float(params.get("shift", 0.0))
        if len(bottom) != 1 or len(top) != 1:
            raise ValueError("AffineLayer takes one bottom and one top")
        self.blobs.add_blob(bottom[0].shape[1])
        self.blobs[0].data[...] = 1.0

    def _scale(self, x):
        return self.blobs[0].data.reshape((1, -1) + (1,) * (x.ndim - 2))

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[...] = self._scale(x) * x + self.shift

    def backward(self, top, propagate_down, bottom):
        x, dy = bottom[0].data, top[0].diff
        axes = tuple(i for i in range(x.ndim) if i != 1)
        self.blobs[0].diff[...] += (dy * x).sum(axis=axes)
        if propagate_down[0]:
            bottom[0].diff[...] = self._scale(x) * dy


class EuclideanLossLayer(Layer):
    """pycaffe's classic example: loss = sum((a - b)^2) / (2 N); give it `loss_weight: 1`."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise ValueError("Need two inputs to compute distance.")

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise ValueError("Inputs must have the same dimension.")
        self.diff = np.zeros_like(bottom[0].data)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data.reshape(bottom[0].data.shape)
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i in range(2):
            if not propagate_down[i]:
                continue
            sign = 1 if i == 0 else -1
            bottom[i].diff[...] = (sign * top[0].diff[0] * self.diff / bottom[i].num
                                   ).reshape(bottom[i].diff.shape)


class PhaseLayer(Layer):
    """top[0] (a scalar) = self.phase (0 TRAIN, 1 TEST)."""

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase

    def backward(self, top, propagate_down, bottom):
        pass
