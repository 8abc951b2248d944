"""Learning-rate policies (Caffe's SGDSolver::GetLearningRate), keyed by `lr_policy`.

Each policy is `f(param, it, current_step) -> (rate, current_step)`; `param` is a
SolverParameter (base_lr, gamma, power, stepsize, stepvalue, max_iter) and `current_step` is
the state Caffe keeps in its solverstate (used by step and multistep).
"""
import math

from minicaffe.errors import SolverError
from minicaffe.registry import Registry

LR_POLICIES = Registry("lr_policy")


def _need(cond, policy, what):
    if not cond:
        raise SolverError(f"lr_policy \"{policy}\" needs {what}")


@LR_POLICIES.register("fixed")
def fixed(p, it, current_step):
    """lr = base_lr."""
    return p.base_lr, current_step


@LR_POLICIES.register("step")
def step(p, it, current_step):
    """lr = base_lr * gamma ^ floor(it / stepsize)."""
    _need(p.stepsize > 0, "step", f"stepsize > 0 (got {p.stepsize})")
    current_step = it // p.stepsize
    return p.base_lr * p.gamma ** current_step, current_step


@LR_POLICIES.register("exp")
def exp(p, it, current_step):
    """lr = base_lr * gamma ^ it."""
    return p.base_lr * p.gamma ** it, current_step


@LR_POLICIES.register("inv")
def inv(p, it, current_step):
    """lr = base_lr * (1 + gamma * it) ^ (-power)."""
    return p.base_lr * (1.0 + p.gamma * it) ** (-p.power), current_step


@LR_POLICIES.register("multistep")
def multistep(p, it, current_step):
    """lr = base_lr * gamma ^ k, k advancing by one when it >= stepvalue[k] (as Caffe, at most
    one step per iteration)."""
    values = list(p.stepvalue)
    if current_step < len(values) and it >= values[current_step]:
        current_step += 1
    return p.base_lr * p.gamma ** current_step, current_step


@LR_POLICIES.register("poly")
def poly(p, it, current_step):
    """lr = base_lr * (1 - it / max_iter) ^ power."""
    _need(p.max_iter > 0, "poly", f"max_iter > 0 (got {p.max_iter})")
    return p.base_lr * (1.0 - it / p.max_iter) ** p.power, current_step


@LR_POLICIES.register("sigmoid")
def sigmoid(p, it, current_step):
    """lr = base_lr / (1 + exp(-gamma * (it - stepsize)))."""
    z = -p.gamma * (it - p.stepsize)
    try:
        return p.base_lr / (1.0 + math.exp(z)), current_step
    except OverflowError:       # exp(z) past the double range: Caffe's exp gives inf, rate 0
        return 0.0, current_step


def learning_rate(param, it, current_step=0):
    """(rate, new current_step) of `param.lr_policy` at iteration `it`.

    Raises SolverError for an unknown policy or missing fields.
    """
    name = param.lr_policy
    if name not in LR_POLICIES:
        raise SolverError(f"solver: {LR_POLICIES.unknown_message(name)}")
    rate, current_step = LR_POLICIES.get(name)(param, it, current_step)
    return float(rate), current_step
