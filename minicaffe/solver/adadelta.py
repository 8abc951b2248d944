"""AdaDelta (Caffe's AdaDeltaSolver; `momentum` is the decay rho)."""
from minicaffe import backend
from minicaffe.solver.base import Solver, register_solver


def adadelta_update(diff, history, local_rate, momentum, delta):
    """Zeiler's AdaDelta as Caffe computes it (rho = momentum):

    Eg <- rho * Eg + (1 - rho) * g^2
    u  =  g * sqrt((Eu + delta) / (Eg + delta))
    Eu <- rho * Eu + (1 - rho) * u^2
    diff <- local_rate * u
    history: [Eg, Eu].
    """
    xp = backend.xp_of(diff)
    eg, eu = history
    eg *= momentum
    eg += (1 - momentum) * diff * diff
    u = diff * xp.sqrt((eu + delta) / (eg + delta))
    eu *= momentum
    eu += (1 - momentum) * u * u
    diff[...] = local_rate * u


@register_solver("AdaDelta")
class AdaDeltaSolver(Solver):
    """Unit-consistent adaptive steps; usually base_lr 1, momentum 0.95, delta 1e-6."""

    history_count = 2

    def compute_update_value(self, diff, history, local_rate):
        adadelta_update(diff, history, local_rate, self.param.momentum, self.param.delta)
