"""lr policies against their closed forms (Caffe's GetLearningRate)."""
import math
from types import SimpleNamespace

import pytest

from minicaffe.errors import SolverError
from minicaffe.solver.lr_policy import learning_rate


def P(**kw):
    base = dict(lr_policy="fixed", base_lr=0.01, gamma=0.1, power=0.75, stepsize=0, stepvalue=[],
                max_iter=0)
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.mark.parametrize("it", [0, 1, 99, 100, 101, 250, 1000])
def test_closed_forms(it):
    assert learning_rate(P(), it)[0] == pytest.approx(0.01)
    assert learning_rate(P(lr_policy="step", stepsize=100), it)[0] == \
        pytest.approx(0.01 * 0.1 ** (it // 100))
    assert learning_rate(P(lr_policy="exp", gamma=0.999), it)[0] == pytest.approx(0.01 * 0.999 ** it)
    assert learning_rate(P(lr_policy="inv", gamma=1e-4), it)[0] == \
        pytest.approx(0.01 * (1 + 1e-4 * it) ** -0.75)
    assert learning_rate(P(lr_policy="poly", power=2.0, max_iter=1000), it)[0] == \
        pytest.approx(0.01 * (1 - it / 1000) ** 2)
    assert learning_rate(P(lr_policy="sigmoid", gamma=-0.01, stepsize=200), it)[0] == \
        pytest.approx(0.01 / (1 + math.exp(0.01 * (it - 200))))


def test_multistep_advances_at_each_stepvalue():
    p = P(lr_policy="multistep", stepvalue=[3, 5])
    step, rates = 0, []
    for it in range(8):
        rate, step = learning_rate(p, it, step)
        rates.append(rate)
    want = [0.01] * 3 + [0.001] * 2 + [0.0001] * 3
    assert rates == pytest.approx(want)
    assert step == 2


def test_step_sets_current_step():
    assert learning_rate(P(lr_policy="step", stepsize=10), 35, 0) == (pytest.approx(1e-5), 3)


def test_errors():
    with pytest.raises(SolverError, match="step.*stepsize > 0"):
        learning_rate(P(lr_policy="step"), 5)
    with pytest.raises(SolverError, match="did you mean 'step'"):
        learning_rate(P(lr_policy="stpe"), 5)
    with pytest.raises(SolverError, match="max_iter > 0"):
        learning_rate(P(lr_policy="poly"), 5)
