"""Stochastic gradient descent with momentum (Caffe's SGDSolver)."""
from minicaffe.solver.base import Solver, register_solver


def sgd_update(diff, history, local_rate, momentum):
    """v <- momentum * v + local_rate * g;  diff <- v (the step that Net.update subtracts).

    diff: gradient g, overwritten with the update; history: [v], same shape.
    """
    v = history[0]
    v *= momentum
    v += local_rate * diff
    diff[...] = v


@register_solver("SGD")
class SGDSolver(Solver):
    """w <- w - v, v <- momentum * v + lr * lr_mult * g (the learning rate lives inside v)."""

    history_count = 1

    def compute_update_value(self, diff, history, local_rate):
        sgd_update(diff, history, local_rate, self.param.momentum)
