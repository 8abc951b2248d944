"""RMSProp (Caffe's RMSPropSolver)."""
from minicaffe import backend
from minicaffe.errors import SolverError
from minicaffe.solver.base import Solver, register_solver


def rmsprop_update(diff, history, local_rate, rms_decay, delta):
    """h <- rms_decay * h + (1 - rms_decay) * g^2;  diff <- local_rate * g / (sqrt(h) + delta)."""
    xp = backend.xp_of(diff)
    h = history[0]
    h *= rms_decay
    h += (1 - rms_decay) * diff * diff
    diff[...] = local_rate * diff / (xp.sqrt(h) + delta)


@register_solver("RMSProp")
class RMSPropSolver(Solver):
    """Per-weight rates scaled by a running RMS of the gradient; no momentum."""

    history_count = 1

    def check_param(self):
        p = self.param
        if p.momentum != 0:
            raise SolverError(f"solver type RMSProp: momentum must be 0 (got {p.momentum})")
        if not 0 <= p.rms_decay < 1:
            raise SolverError(f"solver type RMSProp: rms_decay must be in [0, 1) (got {p.rms_decay})")

    def compute_update_value(self, diff, history, local_rate):
        rmsprop_update(diff, history, local_rate, self.param.rms_decay, self.param.delta)
