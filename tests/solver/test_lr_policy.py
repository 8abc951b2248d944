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


def test_sigmoid_far_past_the_step_is_caffes_value_down_to_zero():
    """1 / (1 + exp(z)) in doubles: tiny but not zero until exp overflows (z > 709.78)."""
    for z in (699.0, 700.0, 705.0, 709.0):
        p = P(lr_policy="sigmoid", gamma=-1.0, stepsize=0, base_lr=1.0)
        assert learning_rate(p, z)[0] == 1.0 / (1.0 + math.exp(z)) > 0.0
    assert learning_rate(P(lr_policy="sigmoid", gamma=-1.0, base_lr=1.0), 710)[0] == 0.0
    assert learning_rate(P(lr_policy="sigmoid", gamma=-1.0, base_lr=1.0), 10 ** 6)[0] == 0.0


def test_multistep_past_many_stepvalues():
    """More step values than CPython caches small ints for: current_step compares by value."""
    p = P(lr_policy="multistep", stepvalue=list(range(1, 301)), gamma=0.99)
    step = 0
    for it in range(1, 400):
        rate, step = learning_rate(p, it, step)
    assert step == 300 and rate == pytest.approx(0.01 * 0.99 ** 300)


def test_current_step_starts_at_zero_by_default():
    assert learning_rate(P(lr_policy="multistep", stepvalue=[5, 10]), 3) == (0.01, 0)
    assert learning_rate(P(lr_policy="multistep", stepvalue=[5, 10]), 7) == \
        (pytest.approx(0.001), 1)


@pytest.mark.parametrize("field, policy", [("stepsize", "step"), ("max_iter", "poly")])
def test_positive_fields_refuse_negatives_and_accept_one(field, policy):
    with pytest.raises(SolverError, match=f"{field} > 0 \\(got -1\\)"):
        learning_rate(P(lr_policy=policy, **{field: -1}), 0)
    assert learning_rate(P(lr_policy=policy, **{field: 1}), 0)[0] == pytest.approx(0.01)


def test_multistep_catches_up_one_step_per_iteration():
    """As Caffe: a repeated step value or a resumed iteration past a step value still advances
    (it >= stepvalue), at most one step per call."""
    p = P(lr_policy="multistep", stepvalue=[3, 3, 8])
    steps = []
    step = 0
    for it in range(2, 6):
        _, step = learning_rate(p, it, step)
        steps.append(step)
    assert steps == [0, 1, 2, 2]
    assert learning_rate(P(lr_policy="multistep", stepvalue=[5]), 10, 0) == (pytest.approx(0.001), 1)


def test_multistep_step_count_past_the_list_is_kept():
    """A .solverstate whose lr step is past the solver's stepvalue list (resumed with fewer step
    values) keeps its step, as Caffe's `current_step_ < stepvalue_size()` guard does: no index
    past the list, no further decay."""
    p = P(lr_policy="multistep", stepvalue=[5])
    assert learning_rate(p, 10, 1) == (pytest.approx(0.001), 1)
    assert learning_rate(p, 10, 3) == (pytest.approx(0.01 * 0.1 ** 3), 3)
