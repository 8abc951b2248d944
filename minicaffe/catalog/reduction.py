"""Reduction layer (Caffe's ReductionLayer): sum-like reductions over all tail axes."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.flatten import canonical_axis


@register_layer("Reduction")
class Reduction(Layer):
    """top[i] = coeff * op(bottom[i, ...]) over every axis from `axis` on.

    reduction_param: operation SUM (default) | ASUM (sum of |x|) | SUMSQ (sum of x^2) |
    MEAN; axis (0: everything, giving a scalar; negative counts from the end); coeff (1).
    bottom[0]: any shape; top[0]: bottom.shape[:axis] (Caffe reduces only tail axes).
    Backward: coeff * dL/dy broadcast, times sign(x) for ASUM (0 at 0), times 2x for SUMSQ,
    divided by the reduced count for MEAN.
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        shape = tuple(bottom[0].shape)
        p = self.layer_param.reduction_param
        axis = canonical_axis(self, int(p.axis), len(shape), bottom) if shape else 0
        num = 1
        for d in shape[:axis]:
            num *= d
        dim = bottom[0].count // num if num else 0
        self._dims = (num, dim)
        self._coeff = p.coeff / dim if p.operation == "MEAN" and dim else p.coeff
        top[0].reshape(shape[:axis])

    def forward(self, bottom, top):
        num, dim = self._dims
        x = bottom[0].data.reshape(num, dim)
        xp = backend.xp_of(x)
        op = self.layer_param.reduction_param.operation
        if op == "ASUM":
            r = xp.abs(x).sum(axis=1)
        elif op == "SUMSQ":
            r = (x * x).sum(axis=1)
        else:                                    # SUM, MEAN
            r = x.sum(axis=1)
        top[0].data[...] = (r * x.dtype.type(self._coeff)).reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        num, dim = self._dims
        t = top[0].diff.dtype.type
        g = top[0].diff.reshape(num, 1) * t(self._coeff)
        dx = bottom[0].diff.reshape(num, dim)
        op = self.layer_param.reduction_param.operation
        if op == "ASUM":
            x = bottom[0].data.reshape(num, dim)
            dx[...] = backend.xp_of(x).sign(x) * g
        elif op == "SUMSQ":
            x = bottom[0].data.reshape(num, dim)
            dx[...] = x * (2 * g)
        else:
            dx[...] = g
