"""The Solver loop on a least-squares fake net: Caffe's order of operations, hand-computed."""
import logging

import numpy as np
import pytest

from minicaffe.errors import DivergenceError, SolverError
from minicaffe.solver import SOLVERS, AdaGradSolver, SGDSolver, get_solver
from tests.solver.fakes import (BlockGroupLassoSpec, LeastSquaresNet, ParamSpec, planted_problem,
                                solver_param)


def make(kind=SGDSolver, net=None, tests=(), **kw):
    X, Y, _ = planted_problem()
    net = net or LeastSquaresNet(X, Y)
    return kind(solver_param(**kw), train_net=net, test_nets=list(tests)), net


def test_sgd_momentum_weight_decay_hand_computed():
    X, Y, _ = planted_problem()
    net = LeastSquaresNet(X, Y, bias_spec=ParamSpec(decay_mult=0.0))   # Caffe's usual for biases
    solver, _ = make(net=net, base_lr=0.05, momentum=0.9, weight_decay=0.01,
                     lr_policy="step", gamma=0.5, stepsize=2)
    # float fields hold float32 values, as in caffe.proto: compute with what the file says
    base, mom, wd = solver.param.base_lr, solver.param.momentum, solver.param.weight_decay
    assert mom == pytest.approx(0.9) and wd == pytest.approx(0.01)
    w, b = net.w.data.copy(), net.b.data.copy()
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for it in range(5):
        lr = base * 0.5 ** (it // 2)
        gw, gb = net.gradient(w, b)
        vw = mom * vw + lr * (gw + wd * w)
        vb = mom * vb + lr * gb
        w, b = w - vw, b - vb
    solver.step(5)
    assert solver.iter == 5 and solver.current_step == 2
    np.testing.assert_allclose(net.w.data, w, rtol=1e-12)
    np.testing.assert_allclose(net.b.data, b, rtol=1e-12)


def test_lr_mult_and_l1_per_param():
    X, Y, _ = planted_problem()
    net = LeastSquaresNet(X, Y, weight_spec=ParamSpec(regularization_type="L1"),
                          bias_spec=ParamSpec(lr_mult=0.0))
    solver, _ = make(net=net, base_lr=0.1, weight_decay=0.5)
    w, b = net.w.data.copy(), net.b.data.copy()
    gw, _ = net.gradient(w, b)
    solver.step(1)
    np.testing.assert_allclose(net.w.data, w - 0.1 * (gw + 0.5 * np.sign(w)), rtol=1e-12)
    np.testing.assert_array_equal(net.b.data, b)


def test_iter_size_divides_accumulated_gradient():
    a, net_a = make(base_lr=0.1, iter_size=1)
    b, net_b = make(base_lr=0.1, iter_size=3)
    a.step(2)
    b.step(2)
    assert net_b.forward_calls == 3 * net_a.forward_calls
    np.testing.assert_allclose(net_b.w.data, net_a.w.data, rtol=1e-12)


def test_clip_gradients_scales_to_the_clip_norm():
    solver, net = make(base_lr=1.0, clip_gradients=0.01)
    w, b = net.w.data.copy(), net.b.data.copy()
    gw, gb = net.gradient(w, b)
    norm = np.sqrt((gw ** 2).sum() + (gb ** 2).sum())
    assert norm > 0.01
    solver.step(1)
    np.testing.assert_allclose(net.w.data, w - gw * 0.01 / norm, rtol=1e-10)


def test_subgradient_group_term_goes_through_the_update():
    spec = ParamSpec(breadth_decay_mult=1.0, kernel_shape_decay_mult=2.0)
    X, Y, _ = planted_problem()
    net = LeastSquaresNet(X, Y, weight_spec=spec)
    solver, _ = make(net=net, base_lr=0.1, breadth_decay=0.3, kernel_shape_decay=0.05,
                     zero_threshold=0.0)
    w, b = net.w.data.copy(), net.b.data.copy()
    gw, _ = net.gradient(w, b)
    rows = np.linalg.norm(w, axis=1, keepdims=True)
    cols = np.linalg.norm(w, axis=0, keepdims=True)
    solver.step(1)
    want = w - 0.1 * (gw + 0.3 * w / rows + 0.1 * w / cols)
    np.testing.assert_allclose(net.w.data, want, rtol=1e-12)


def test_proximal_step_after_the_data_update():
    spec = ParamSpec(breadth_decay_mult=1.0, block_group_lasso=[BlockGroupLassoSpec(xdimen=2, ydimen=3)])
    X, Y, _ = planted_problem()
    net = LeastSquaresNet(X, Y, weight_spec=spec)
    solver, _ = make(net=net, base_lr=0.1, momentum=0.5, breadth_decay=0.3, block_group_decay=0.2,
                     group_lasso_update="PROXIMAL", zero_threshold=0.0)
    w, b = net.w.data.copy(), net.b.data.copy()
    gw, _ = net.gradient(w, b)
    u = w - 0.1 * gw                          # momentum history starts at 0
    u = u * np.maximum(0, 1 - 0.1 * 0.3 / np.linalg.norm(u, axis=1, keepdims=True))   # rows first
    for c in range(0, 8, 2):                  # then the 3x2 blocks
        n = np.linalg.norm(u[:, c:c + 2])
        u[:, c:c + 2] *= max(0.0, 1 - 0.1 * 0.2 / n)
    solver.step(1)
    np.testing.assert_allclose(net.w.data, u, rtol=1e-12)
    # the group terms never enter the momentum history
    np.testing.assert_allclose(solver.history[0][0], 0.1 * gw, rtol=1e-12)


def test_default_zero_threshold_only_with_group_terms():
    plain, _ = make()
    assert plain.zero_threshold == 0.0
    X, Y, _ = planted_problem()
    ssl, net = make(net=LeastSquaresNet(X, Y, weight_spec=ParamSpec(breadth_decay_mult=1)),
                    breadth_decay=1e-3)
    assert ssl.zero_threshold == 1e-4
    explicit, _ = make(net=LeastSquaresNet(X, Y, weight_spec=ParamSpec(breadth_decay_mult=1)),
                       breadth_decay=1e-3, zero_threshold=0.0)
    assert explicit.zero_threshold == 0.0
    # a multiplier without the global strength (or the reverse) configures nothing
    none, _ = make(net=LeastSquaresNet(X, Y, weight_spec=ParamSpec(breadth_decay_mult=1)))
    assert not none.has_group_terms


def test_zero_threshold_applies_to_every_learnable_blob():
    X, Y, _ = planted_problem()
    net = LeastSquaresNet(X, Y)
    solver, _ = make(net=net, base_lr=0.0, zero_threshold=0.05)
    net.b.data[...] = [0.04, -0.049, 0.2]
    w = net.w.data.copy()
    solver.step(1)
    assert net.b.data.tolist() == [0.0, 0.0, 0.2]
    np.testing.assert_array_equal(net.w.data, np.where(np.abs(w) < 0.05, 0, w))


def test_planted_problem_proximal_zeroes_exactly_the_useless_columns():
    X, Y, W_true = planted_problem()
    runs = {}
    for name, kw in {
        "proximal": dict(kernel_shape_decay=0.05, group_lasso_update="PROXIMAL", zero_threshold=0.0),
        "subgradient": dict(kernel_shape_decay=0.05, zero_threshold=0.0),
        "l2": dict(weight_decay=0.05),
    }.items():
        spec = ParamSpec(kernel_shape_decay_mult=1.0 if name != "l2" else 0.0)
        net = LeastSquaresNet(X, Y, weight_spec=spec)
        solver, _ = make(net=net, base_lr=0.1, momentum=0.9, **kw)
        solver.step(300)
        runs[name] = net.w.data.copy()
    zero_cols = lambda w: np.flatnonzero(~w.any(axis=0)).tolist()   # noqa: E731
    assert zero_cols(runs["proximal"]) == [4, 5, 6, 7]
    assert np.all(runs["proximal"][:, :4] != 0)
    np.testing.assert_allclose(runs["proximal"][:, :4], W_true[:, :4], atol=0.1)
    assert zero_cols(runs["l2"]) == []
    assert np.count_nonzero(runs["l2"]) == runs["l2"].size
    # the subgradient hovers around zero without landing on it (no threshold here)
    assert zero_cols(runs["subgradient"]) == []
    assert np.abs(runs["subgradient"][:, 4:]).max() < 0.05


@pytest.mark.parametrize("mode", ["DISCONNECTED_ELTWISE", "DISCONNECTED_GRPWISE"])
def test_connectivity_masks_freeze_zeros(mode):
    X, Y, _ = planted_problem()
    w0 = np.random.default_rng(3).standard_normal((3, 8)) * 0.1
    w0[1] = 0                 # a dead row
    w0[0, 2] = 0              # a stray zero in a live row and column
    net = LeastSquaresNet(X, Y, connectivity_mode=mode, w0=w0)
    solver, _ = make(net=net, base_lr=0.1, momentum=0.9)
    solver.step(20)
    w = net.w.data
    assert np.all(w[1] == 0)
    if mode == "DISCONNECTED_ELTWISE":
        assert w[0, 2] == 0
        assert np.count_nonzero(w) == w.size - 9
    else:
        assert w[0, 2] != 0
        assert np.count_nonzero(w) == w.size - 8
    assert np.all(net.b.data != 0)     # biases are never masked


def test_nonfinite_loss_stops_naming_the_layer(tmp_path):
    solver, net = make(snapshot=1, snapshot_prefix=str(tmp_path / "ls"))
    solver.step(2)
    good = net.w.data.copy()
    net.poison = True
    # ls_iter_2 holds the weights whose loss is not finite: the one named is ls_iter_1
    with pytest.raises(DivergenceError, match=r"Iteration 2: loss = (inf|nan).*layer 'fc' top "
                                              r"'pred'; snapshot .*ls_iter_2\.solverstate holds "
                                              r"these weights .*Last good snapshot \(finite "
                                              r"weights and loss\): .*ls_iter_1\.solverstate"):
        solver.step(1)
    np.testing.assert_array_equal(net.w.data, good)
    assert solver.iter == 2


def test_display_and_test_log_lines(caplog):
    X, Y, _ = planted_problem()
    test_net = LeastSquaresNet(X, Y)
    solver, net = make(tests=[test_net], display=2, test_interval=3, test_iter=[2], average_loss=2,
                       sparsity_report=False)
    with caplog.at_level(logging.INFO, logger="minicaffe.solver"):
        solver.step(4)
    text = caplog.text
    assert "Iteration 0, Testing net (#0)" in text and "Iteration 3, Testing net (#0)" in text
    assert "Test net output #0: loss = " in text
    assert "Iteration 2 (" in text and "), loss = " in text
    assert "Train net output #0: loss = " in text and "(* 1 = " in text
    assert "Iteration 2, lr = 0.1" in text
    assert test_net.forward_calls == 4               # 2 test passes x test_iter 2
    np.testing.assert_array_equal(test_net.w.data, net.w.data)     # shared weights


def test_test_initialization_false_skips_iteration_zero(caplog):
    X, Y, _ = planted_problem()
    test_net = LeastSquaresNet(X, Y)
    solver, _ = make(tests=[test_net], test_interval=2, test_iter=[1], test_initialization=False)
    solver.step(3)
    assert test_net.forward_calls == 1


def test_request_stop_snapshots_and_stops(tmp_path):
    solver, net = make(snapshot_prefix=str(tmp_path / "run"), max_iter=50)
    solver.progress = lambda it, loss: solver.request("stop") if it == 7 else None
    solver.solve()
    assert solver.iter == 7 and solver.stopped_early
    assert (tmp_path / "run_iter_7.solverstate").exists()
    assert (tmp_path / "run_iter_7.caffemodel").exists()
    assert not (tmp_path / "run_iter_50.caffemodel").exists()


def test_request_snapshot_continues(tmp_path):
    solver, net = make(snapshot_prefix=str(tmp_path / "run"), max_iter=6, snapshot_after_train=False)
    solver.progress = lambda it, loss: solver.request("snapshot") if it == 2 else None
    solver.solve()
    assert solver.iter == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_iter_2.caffemodel",
                                                          "run_iter_2.solverstate",
                                                          "run_summary.json"]


def test_a_pending_stop_is_not_downgraded_by_a_snapshot_request(tmp_path):
    """SIGTERM (stop) then SIGHUP (snapshot) within one iteration: the run still stops."""
    solver, net = make(snapshot_prefix=str(tmp_path / "run"), max_iter=50)

    def both(it, loss):
        if it == 3:
            solver.request("stop")
            solver.request("snapshot")
    solver.progress = both
    solver.solve()
    assert solver.iter == 3 and solver.stopped_early
    with pytest.raises(ValueError, match="'stop' or 'snapshot', got 'pause'"):
        solver.request("pause")


@pytest.mark.parametrize("kind", ["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"])
def test_restore_is_bit_identical(tmp_path, kind):
    extra = {"SGD": dict(momentum=0.9), "Nesterov": dict(momentum=0.9), "AdaGrad": {},
             "RMSProp": {}, "AdaDelta": dict(momentum=0.95, base_lr=1.0),
             "Adam": dict(momentum=0.9, base_lr=0.01)}[kind]
    X, Y, _ = planted_problem()
    cls = SOLVERS.get(kind)

    def fresh():
        np.random.seed(7)
        net = LeastSquaresNet(X, Y, batch=16, weight_spec=ParamSpec(breadth_decay_mult=1))
        kw = dict(base_lr=0.05, lr_policy="multistep", stepvalue=[3, 8], gamma=0.5,
                  breadth_decay=0.01, snapshot_prefix=str(tmp_path / kind))
        kw.update(extra)
        return make(cls, net=net, **kw)

    straight, net_a = fresh()
    straight.step(12)
    first, _ = fresh()
    first.step(5)
    state = first.snapshot()
    np.random.seed(999)                       # a different process would have another state
    resumed, net_b = fresh()
    resumed.restore(state)
    assert resumed.iter == 5 and resumed.current_step == 1
    resumed.step(7)
    np.testing.assert_array_equal(net_b.w.data, net_a.w.data)
    np.testing.assert_array_equal(net_b.b.data, net_a.b.data)
    for h_a, h_b in zip(straight.history, resumed.history):
        for a, b in zip(h_a, h_b):
            np.testing.assert_array_equal(a, b)


def test_snapshot_is_atomic_and_leaves_no_temp_files(tmp_path):
    solver, _ = make(snapshot_prefix=str(tmp_path / "sub" / "x"))
    solver.step(1)
    solver.snapshot()
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x_iter_1.caffemodel",
                                                                    "x_iter_1.solverstate"]


def test_restore_errors(tmp_path):
    solver, _ = make()
    with pytest.raises(SolverError, match="does not exist"):
        solver.restore(str(tmp_path / "nope.solverstate"))
    bad = tmp_path / "bad.solverstate"
    bad.write_text("not a zip")
    with pytest.raises(SolverError, match="not a minicaffe .solverstate"):
        solver.restore(str(bad))
    adam, _ = make(SOLVERS.get("Adam"), snapshot_prefix=str(tmp_path / "a"))
    path = adam.snapshot()
    with pytest.raises(SolverError, match="2 history blobs"):
        solver.restore(path)


def test_configuration_errors():
    with pytest.raises(SolverError, match="momentum must be 0"):
        make(AdaGradSolver, momentum=0.9)
    with pytest.raises(SolverError, match="lr_policy is not set"):
        make(lr_policy="")
    with pytest.raises(SolverError, match='regularization_type "L3"'):
        make(regularization_type="L3")
    X, Y, _ = planted_problem()
    spec = ParamSpec(block_group_lasso=[BlockGroupLassoSpec(xdimen=3, ydimen=2)])
    with pytest.raises(SolverError, match=r"layer 'fc' param 0 \(3, 8\): block_group_lasso tile 2x3"):
        make(net=LeastSquaresNet(X, Y, weight_spec=spec), block_group_decay=0.1)


def test_every_rule_trains_the_fake_net():
    settings = {"SGD": dict(momentum=0.9, base_lr=0.05), "Nesterov": dict(momentum=0.9, base_lr=0.05),
                "AdaGrad": dict(base_lr=0.5), "RMSProp": dict(base_lr=0.01),
                "AdaDelta": dict(momentum=0.95, base_lr=1.0, delta=1e-6),
                "Adam": dict(momentum=0.9, base_lr=0.05)}
    for kind, kw in settings.items():
        solver, net = make(SOLVERS.get(kind), **kw)
        start = net.forward_backward()
        net.clear_param_diffs()
        solver.step(100)
        assert net.forward_backward() < 0.5 * start, kind


def test_get_solver_dispatches_on_type():
    from minicaffe.solver.base import solver_type
    assert solver_type(solver_param(type="Adam")) == "Adam"
    assert solver_type(solver_param(solver_type="NESTEROV")) == "Nesterov"
    with pytest.raises(SolverError, match="did you mean 'Adam'"):
        get_solver(solver_param(type="Adma"))
