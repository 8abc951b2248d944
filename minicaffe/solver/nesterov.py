"""Nesterov's accelerated gradient (Caffe's NesterovSolver)."""
from minicaffe.solver.base import Solver, register_solver


def nesterov_update(diff, history, local_rate, momentum):
    """v' = momentum * v + local_rate * g;  diff <- (1 + momentum) * v' - momentum * v.

    diff: gradient g, overwritten with the update; history: [v], updated to v'.
    """
    v = history[0]
    v_prev = v.copy()
    v *= momentum
    v += local_rate * diff
    diff[...] = (1 + momentum) * v - momentum * v_prev


@register_solver("Nesterov")
class NesterovSolver(Solver):
    """Step back along the old velocity, then over-step along the new one."""

    history_count = 1

    def compute_update_value(self, diff, history, local_rate):
        nesterov_update(diff, history, local_rate, self.param.momentum)
