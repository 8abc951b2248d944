"""Each update rule against updates computed by hand (scalar arithmetic, three steps)."""
import math

import numpy as np
import pytest

from minicaffe.solver.adadelta import adadelta_update
from minicaffe.solver.adagrad import adagrad_update
from minicaffe.solver.adam import adam_update
from minicaffe.solver.nesterov import nesterov_update
from minicaffe.solver.rmsprop import rmsprop_update
from minicaffe.solver.sgd import sgd_update

GRADS = [0.5, -1.0, 2.0]


def run(rule, nhist, **kw):
    """Apply `rule` to the gradient sequence on a 1-element array; return the updates."""
    hist = [np.zeros(1) for _ in range(nhist)]
    out = []
    for t, g in enumerate(GRADS):
        d = np.array([g])
        if rule is adam_update:
            rule(d, hist, t=t + 1, **kw)
        else:
            rule(d, hist, **kw)
        out.append(float(d[0]))
    return out


def test_sgd_momentum():
    # v1 = 0.1*0.5 = 0.05; v2 = 0.9*0.05 + 0.1*-1 = -0.055; v3 = 0.9*-0.055 + 0.2 = 0.1505
    assert run(sgd_update, 1, local_rate=0.1, momentum=0.9) == pytest.approx([0.05, -0.055, 0.1505])


def test_nesterov():
    # v: 0.05, -0.055, 0.1505 as SGD; update = 1.9*v_new - 0.9*v_old
    want = [1.9 * 0.05, 1.9 * -0.055 - 0.9 * 0.05, 1.9 * 0.1505 - 0.9 * -0.055]
    assert run(nesterov_update, 1, local_rate=0.1, momentum=0.9) == pytest.approx(want)


def test_adagrad():
    d = 1e-8
    h1, h2, h3 = 0.25, 1.25, 5.25
    want = [0.1 * 0.5 / (math.sqrt(h1) + d), 0.1 * -1 / (math.sqrt(h2) + d),
            0.1 * 2 / (math.sqrt(h3) + d)]
    assert run(adagrad_update, 1, local_rate=0.1, delta=d) == pytest.approx(want, rel=1e-12)


def test_rmsprop():
    d, r = 1e-8, 0.99
    h1 = 0.01 * 0.25
    h2 = r * h1 + 0.01 * 1
    h3 = r * h2 + 0.01 * 4
    want = [0.1 * 0.5 / (math.sqrt(h1) + d), -0.1 / (math.sqrt(h2) + d), 0.2 / (math.sqrt(h3) + d)]
    assert run(rmsprop_update, 1, local_rate=0.1, rms_decay=r, delta=d) == pytest.approx(want, rel=1e-12)


def test_adadelta():
    rho, d, lr = 0.95, 1e-6, 1.0
    eg = eu = 0.0
    want = []
    for g in GRADS:
        eg = rho * eg + (1 - rho) * g * g
        u = g * math.sqrt((eu + d) / (eg + d))
        eu = rho * eu + (1 - rho) * u * u
        want.append(lr * u)
    # first step by hand: eg = 0.0125, u = 0.5 * sqrt(1e-6 / 0.012501)
    assert want[0] == pytest.approx(0.5 * math.sqrt(1e-6 / 0.012501))
    assert run(adadelta_update, 2, local_rate=lr, momentum=rho, delta=d) == pytest.approx(want, rel=1e-12)


def test_adam():
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.001
    # step 1: m = 0.05, v = 0.00025; correction = sqrt(0.001)/0.1
    first = lr * math.sqrt(1 - b2) / (1 - b1) * 0.05 / (math.sqrt(0.00025) + eps)
    assert first == pytest.approx(0.001, rel=1e-5)     # Adam's first step is ~lr * sign(g)
    m = v = 0.0
    want = []
    for t, g in enumerate(GRADS, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        want.append(lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (math.sqrt(v) + eps))
    got = run(adam_update, 2, local_rate=lr, beta1=b1, beta2=b2, delta=eps)
    assert got[0] == pytest.approx(first, rel=1e-12)
    assert got == pytest.approx(want, rel=1e-12)


def test_updates_work_in_float32_in_place():
    d = np.array([1.0, -2.0], dtype=np.float32)
    hist = [np.zeros(2, dtype=np.float32)]
    ident = id(d)
    sgd_update(d, hist, 0.01, 0.9)
    assert id(d) == ident and d.dtype == np.float32
    np.testing.assert_allclose(d, [0.01, -0.02], rtol=1e-6)


def test_solvers_keep_caffes_number_of_history_blobs():
    from minicaffe.solver import SOLVERS
    from tests.solver.fakes import LeastSquaresNet, planted_problem, solver_param

    X, Y, _ = planted_problem()
    want = {"SGD": 1, "Nesterov": 1, "AdaGrad": 1, "RMSProp": 1, "AdaDelta": 2, "Adam": 2}
    for name, count in want.items():
        extra = {"momentum": 0.9} if name in ("SGD", "Nesterov", "Adam", "AdaDelta") else {}
        solver = SOLVERS.get(name)(solver_param(**extra), train_net=LeastSquaresNet(X, Y),
                                   test_nets=[])
        assert [len(h) for h in solver.history] == [count, count], name


@pytest.mark.parametrize("decay, ok", [(-0.5, False), (0.0, True), (0.98, True), (1.0, False),
                                       (1.5, False)])
def test_rmsprop_decay_must_be_in_0_1(decay, ok):
    from minicaffe.errors import SolverError
    from minicaffe.solver import SOLVERS
    from tests.solver.fakes import LeastSquaresNet, planted_problem, solver_param

    X, Y, _ = planted_problem()
    make = lambda: SOLVERS.get("RMSProp")(solver_param(rms_decay=decay),  # noqa: E731
                                          train_net=LeastSquaresNet(X, Y), test_nets=[])
    if ok:
        make()
    else:
        with pytest.raises(SolverError, match="rms_decay"):
            make()


def test_adagrad_refuses_any_momentum():
    from minicaffe.errors import SolverError
    from minicaffe.solver import SOLVERS
    from tests.solver.fakes import LeastSquaresNet, planted_problem, solver_param

    X, Y, _ = planted_problem()
    with pytest.raises(SolverError, match=r"momentum must be 0 \(got -0.5\)"):
        SOLVERS.get("AdaGrad")(solver_param(momentum=-0.5), train_net=LeastSquaresNet(X, Y),
                               test_nets=[])


def test_adam_solver_corrects_bias_from_iteration_one():
    """The solver passes t = iter + 1: the first step is lr * sqrt(1-b2) / (1-b1) * m / ..."""
    from minicaffe.solver import SOLVERS
    from tests.solver.fakes import LeastSquaresNet, planted_problem, solver_param

    X, Y, _ = planted_problem()
    net = LeastSquaresNet(X, Y)
    solver = SOLVERS.get("Adam")(solver_param(base_lr=0.001, momentum=0.9), train_net=net,
                                 test_nets=[])
    p = solver.param
    w, b = net.w.data.copy(), net.b.data.copy()
    g, _ = net.gradient(w, b)
    m, v = (1 - p.momentum) * g, (1 - p.momentum2) * g * g
    step = p.base_lr * math.sqrt(1 - p.momentum2) / (1 - p.momentum) * m / (np.sqrt(v) + p.delta)
    solver.step(1)
    np.testing.assert_allclose(net.w.data, w - step, rtol=1e-10)


@pytest.mark.parametrize("momentum", [-0.5, 0.5])
def test_rmsprop_refuses_momentum(momentum):
    from minicaffe.errors import SolverError
    from minicaffe.solver import SOLVERS
    from tests.solver.fakes import LeastSquaresNet, planted_problem, solver_param

    X, Y, _ = planted_problem()
    with pytest.raises(SolverError, match="momentum"):
        SOLVERS.get("RMSProp")(solver_param(momentum=momentum, rms_decay=0.9),
                               train_net=LeastSquaresNet(X, Y), test_nets=[])
