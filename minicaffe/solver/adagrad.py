"""AdaGrad (Caffe's AdaGradSolver)."""
from minicaffe import backend
from minicaffe.errors import SolverError
from minicaffe.solver.base import Solver, register_solver


def adagrad_update(diff, history, local_rate, delta):
    """h <- h + g^2;  diff <- local_rate * g / (sqrt(h) + delta)."""
    xp = backend.xp_of(diff)
    h = history[0]
    h += diff * diff
    diff[...] = local_rate * diff / (xp.sqrt(h) + delta)


@register_solver("AdaGrad")
class AdaGradSolver(Solver):
    """Per-weight rates shrinking with the accumulated squared gradient; no momentum."""

    history_count = 1

    def check_param(self):
        if self.param.momentum != 0:
            raise SolverError(f"solver type AdaGrad: momentum must be 0 (got {self.param.momentum})")

    def compute_update_value(self, diff, history, local_rate):
        adagrad_update(diff, history, local_rate, self.param.delta)
