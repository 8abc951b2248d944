"""L2 weight decay (Caffe's regularization_type "L2")."""
from dataclasses import dataclass

from minicaffe.solver.regularizers.base import Regularizer, register_regularizer


@register_regularizer("L2")
class L2(Regularizer):
    """R(W) = 1/2 ||W||_2^2; dR/dW = W (Caffe adds `decay * w` to the diff)."""

    @dataclass(frozen=True)
    class Params:
        pass

    def penalty(self, w):
        return 0.5 * float((w.astype("float64") ** 2).sum())

    def add_grad(self, w, diff, scale):
        diff += scale * w

    def prox(self, w, step):
        w *= 1.0 / (1.0 + step)
