"""Adam (Caffe's AdamSolver; beta1 = momentum, beta2 = momentum2, eps = delta)."""
import math

from minicaffe import backend
from minicaffe.solver.base import Solver, register_solver


def adam_update(diff, history, local_rate, beta1, beta2, delta, t):
    """Kingma & Ba with Caffe's bias correction folded into the rate (t = iter + 1):

    m <- beta1 * m + (1 - beta1) * g;  v <- beta2 * v + (1 - beta2) * g^2
    diff <- local_rate * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + delta)
    history: [m, v].
    """
    xp = backend.xp_of(diff)
    m, v = history
    m *= beta1
    m += (1 - beta1) * diff
    v *= beta2
    v += (1 - beta2) * diff * diff
    correction = math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    diff[...] = (local_rate * correction) * m / (xp.sqrt(v) + delta)


@register_solver("Adam")
class AdamSolver(Solver):
    """Adaptive moments; Caffe's defaults are momentum 0.9, momentum2 0.999, delta 1e-8."""

    history_count = 2

    def compute_update_value(self, diff, history, local_rate):
        p = self.param
        adam_update(diff, history, local_rate, p.momentum, p.momentum2, p.delta, self.iter + 1)
