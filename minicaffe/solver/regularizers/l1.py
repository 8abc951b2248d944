"""L1 weight decay (Caffe's regularization_type "L1")."""
from dataclasses import dataclass

from minicaffe import backend
from minicaffe.solver.regularizers.base import Regularizer, register_regularizer


@register_regularizer("L1")
class L1(Regularizer):
    """R(W) = ||W||_1; subgradient sign(W) (0 at 0, as Caffe's caffe_cpu_sign)."""

    @dataclass(frozen=True)
    class Params:
        pass

    def penalty(self, w):
        return float(abs(w.astype("float64")).sum())

    def add_grad(self, w, diff, scale):
        diff += scale * backend.xp_of(w).sign(w)

    def prox(self, w, step):
        xp = backend.xp_of(w)
        w[...] = xp.sign(w) * xp.maximum(xp.abs(w) - step, 0)
