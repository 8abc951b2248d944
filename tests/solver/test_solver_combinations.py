"""Solver settings in combination, against updates computed by hand in Caffe's order
(CAFFE_NOTES "Solver"): clip the accumulated gradient -> scale by 1/iter_size -> weight decay
(decay_mult, L1 or L2) -> [SUBGRADIENT group terms] -> momentum update with lr * lr_mult ->
[PROXIMAL group soft thresholds with lr * lr_mult * lambda * multiplier].

Each multiplier differs from 1 and from the others, so a rule that drops one, applies one to
the wrong blob or swaps two steps gives other numbers."""
import dataclasses

import numpy as np
import pytest

from minicaffe.solver import SGDSolver
from tests.solver.fakes import LeastSquaresNet, ParamSpec, planted_problem, solver_param

LR, MOMENTUM, DECAY = 0.05, 0.5, 0.02
BREADTH, KERNEL_SHAPE = 0.3, 0.1
W_SPEC = dict(lr_mult=3.0, decay_mult=0.5, breadth_decay_mult=2.0, kernel_shape_decay_mult=0.25)
B_SPEC = dict(lr_mult=0.5, decay_mult=4.0)


def _decay_grad(w, rtype):
    return w if rtype == "L2" else np.sign(w)


def _shrink(u, norms, step):
    """Group soft threshold: u * max(0, 1 - step / ||u_g||) (0 where the norm is 0)."""
    factor = np.where(norms > 0, np.maximum(0.0, 1 - step / np.where(norms > 0, norms, 1)), 0.0)
    return u * factor


def _solver(rtype, update, iter_size=1, **extra):
    X, Y, _ = planted_problem()
    net = LeastSquaresNet(X, Y, weight_spec=ParamSpec(**W_SPEC, regularization_type=rtype),
                          bias_spec=ParamSpec(**B_SPEC, regularization_type=rtype))
    param = solver_param(base_lr=LR, momentum=MOMENTUM, weight_decay=DECAY,
                         breadth_decay=BREADTH, kernel_shape_decay=KERNEL_SHAPE,
                         group_lasso_update=update, zero_threshold=0.0, iter_size=iter_size,
                         **extra)
    return SGDSolver(param, train_net=net, test_nets=[]), net


@pytest.mark.parametrize("rtype", ["L2", "L1"])
@pytest.mark.parametrize("update", ["SUBGRADIENT", "PROXIMAL"])
def test_lr_mult_and_decay_mult_with_group_lasso(update, rtype):
    solver, net = _solver(rtype, update)
    p = solver.param                          # float fields hold float32 values, as caffe.proto
    lr, mom, wd = p.base_lr, p.momentum, p.weight_decay
    breadth, kshape = p.breadth_decay, p.kernel_shape_decay
    w, b = net.w.data.copy(), net.b.data.copy()
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for _ in range(3):
        gw, gb = net.gradient(w, b)
        dw = gw + wd * W_SPEC["decay_mult"] * _decay_grad(w, rtype)
        db = gb + wd * B_SPEC["decay_mult"] * _decay_grad(b, rtype)
        row_l = breadth * W_SPEC["breadth_decay_mult"]
        col_l = kshape * W_SPEC["kernel_shape_decay_mult"]
        if update == "SUBGRADIENT":
            dw = dw + row_l * w / np.linalg.norm(w, axis=1, keepdims=True) \
                + col_l * w / np.linalg.norm(w, axis=0, keepdims=True)
        wlr, blr = lr * W_SPEC["lr_mult"], lr * B_SPEC["lr_mult"]
        vw, vb = mom * vw + wlr * dw, mom * vb + blr * db
        w, b = w - vw, b - vb
        if update == "PROXIMAL":
            w = _shrink(w, np.linalg.norm(w, axis=1, keepdims=True), wlr * row_l)
            w = _shrink(w, np.linalg.norm(w, axis=0, keepdims=True), wlr * col_l)
    solver.step(3)
    np.testing.assert_allclose(net.w.data, w, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(net.b.data, b, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("rtype", ["L2", "L1"])
@pytest.mark.parametrize("update", ["SUBGRADIENT", "PROXIMAL"])
def test_iter_size_normalises_before_weight_decay(update, rtype):
    """iter_size 2 on a full-batch net: the accumulated diff is 2 g; Caffe divides it by 2
    *before* adding the decay and group terms, which therefore keep their full strength."""
    solver, net = _solver(rtype, update, iter_size=2)
    p = solver.param
    lr, mom, wd = p.base_lr, p.momentum, p.weight_decay
    w, b = net.w.data.copy(), net.b.data.copy()
    gw, gb = net.gradient(w, b)
    dw = gw + wd * W_SPEC["decay_mult"] * _decay_grad(w, rtype)
    db = gb + wd * B_SPEC["decay_mult"] * _decay_grad(b, rtype)
    row_l = p.breadth_decay * W_SPEC["breadth_decay_mult"]
    col_l = p.kernel_shape_decay * W_SPEC["kernel_shape_decay_mult"]
    if update == "SUBGRADIENT":
        dw = dw + row_l * w / np.linalg.norm(w, axis=1, keepdims=True) \
            + col_l * w / np.linalg.norm(w, axis=0, keepdims=True)
    wlr = lr * W_SPEC["lr_mult"]
    w1, b1 = w - wlr * dw, b - lr * B_SPEC["lr_mult"] * db
    if update == "PROXIMAL":
        w1 = _shrink(w1, np.linalg.norm(w1, axis=1, keepdims=True), wlr * row_l)
        w1 = _shrink(w1, np.linalg.norm(w1, axis=0, keepdims=True), wlr * col_l)
    solver.step(1)
    assert net.forward_calls == 2
    np.testing.assert_allclose(net.w.data, w1, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(net.b.data, b1, rtol=1e-11, atol=1e-14)
    assert mom and solver.history[1][0] == pytest.approx(lr * B_SPEC["lr_mult"] * db, rel=1e-11)


@pytest.mark.parametrize("rtype", ["L2", "L1"])
def test_clip_acts_on_the_accumulated_gradient_before_normalisation(rtype):
    """Caffe clips the sum over iter_size passes (norm 2|g| here), then divides by iter_size,
    then adds weight decay."""
    solver, net = _solver(rtype, "SUBGRADIENT", iter_size=2, clip_gradients=5.0)
    p = solver.param
    w, b = net.w.data.copy(), net.b.data.copy()
    gw, gb = net.gradient(w, b)
    total = 2 * np.sqrt((gw ** 2).sum() + (gb ** 2).sum())
    clip = p.clip_gradients
    assert total > clip > total / 2          # normalising first would clip by another factor
    scale = clip / total                     # (2 g) * scale / 2 = g * scale
    db = gb * scale + p.weight_decay * B_SPEC["decay_mult"] * _decay_grad(b, rtype)
    solver.step(1)
    np.testing.assert_allclose(net.b.data, b - p.base_lr * B_SPEC["lr_mult"] * db, rtol=1e-11)


def test_iter_size_below_one_is_refused():
    from minicaffe.errors import SolverError

    X, Y, _ = planted_problem()
    with pytest.raises(SolverError, match=r"^solver: iter_size must be >= 1 \(got 0\)$"):
        SGDSolver(solver_param(iter_size=0), train_net=LeastSquaresNet(X, Y), test_nets=[])


def test_learning_rate_is_logged_only_every_display_iterations(caplog):
    import logging

    solver, _ = _solver("L2", "SUBGRADIENT", display=3)
    with caplog.at_level(logging.INFO, logger="minicaffe.solver"):
        solver.step(5)
    logged = [r.getMessage() for r in caplog.records if ", lr = " in r.getMessage()]
    assert [m.split(",")[0] for m in logged] == ["Iteration 0", "Iteration 3"]


@pytest.mark.parametrize("mode", ["DISCONNECTED_ELTWISE", "DISCONNECTED_GRPWISE"])
def test_connectivity_masks_of_four_axis_conv_weights(mode):
    """A conv weight (N, C, kh, kw) is masked like its lowered (N, C*kh*kw) matrix."""
    X, Y, _ = planted_problem(k=8)
    w0 = np.random.default_rng(3).standard_normal((3, 2, 2, 2)) * 0.1
    w0[1] = 0                                  # a dead filter (row)
    w0[:, 0, 1, 0] = 0                         # a dead shape fibre (column 2)
    w0[0, 1, 1, 1] = 0                         # a stray zero in a live row and column
    net = LeastSquaresNet(X, Y, w_shape=(3, 2, 2, 2), w0=w0,
                          connectivity_mode="".join(list(mode)))    # as parsed: not interned
    solver = SGDSolver(solver_param(base_lr=0.1, momentum=0.9), train_net=net, test_nets=[])
    solver.step(10)
    w = net.w.data
    assert np.all(w[1] == 0) and np.all(w[:, 0, 1, 0] == 0)
    assert (w[0, 1, 1, 1] == 0) == (mode == "DISCONNECTED_ELTWISE")
    assert np.count_nonzero(w) == 24 - 8 - 2 - (mode == "DISCONNECTED_ELTWISE")


def test_params_without_a_spec_take_caffes_defaults():
    """A ParamInfo without a ParamSpec: lr_mult 1, decay_mult 1, no group terms."""
    X, Y, _ = planted_problem()
    net = LeastSquaresNet(X, Y)
    net.param_infos = [dataclasses.replace(info, spec=None) for info in net.param_infos]
    solver = SGDSolver(solver_param(base_lr=LR, weight_decay=DECAY, breadth_decay=BREADTH,
                                    kernel_shape_decay=KERNEL_SHAPE, zero_threshold=0.0),
                       train_net=net, test_nets=[])
    assert not solver.has_group_terms
    p = solver.param
    w, b = net.w.data.copy(), net.b.data.copy()
    gw, gb = net.gradient(w, b)
    solver.step(1)
    np.testing.assert_allclose(net.w.data, w - p.base_lr * (gw + p.weight_decay * w), rtol=1e-12)
    np.testing.assert_allclose(net.b.data, b - p.base_lr * (gb + p.weight_decay * b), rtol=1e-12)


# -- the rest of the update path, boundary by boundary (mutation-driven) ----------------------
def test_reported_loss_is_the_mean_over_iter_size_passes():
    solver, net = _solver("L2", "SUBGRADIENT", iter_size=2)
    w, b = net.w.data.copy(), net.b.data.copy()
    r = net.X @ w.T + b - net.Y
    solver.step(1)
    assert solver.smoothed_loss == pytest.approx(0.5 * (r * r).sum() / len(net.X), rel=1e-12)


def test_weights_exactly_at_the_zero_threshold_are_kept():
    X, Y, _ = planted_problem()
    net = LeastSquaresNet(X, Y)
    solver = SGDSolver(solver_param(base_lr=0.0, zero_threshold=0.25), train_net=net,
                       test_nets=[])
    net.b.data[...] = [0.25, -0.25, 0.2499]
    solver.step(1)
    assert net.b.data.tolist() == [0.25, -0.25, 0.0]


def test_clip_gradients_zero_clips_everything_and_a_large_clip_nothing():
    """Caffe returns only for clip_gradients < 0: 0 scales every gradient to 0; a clip above
    the gradient norm leaves the gradients as they are (never scales them up)."""
    for clip, factor in ((0.0, 0.0), (1e6, 1.0)):
        X, Y, _ = planted_problem()
        net = LeastSquaresNet(X, Y)
        solver = SGDSolver(solver_param(base_lr=0.1, clip_gradients=clip), train_net=net,
                           test_nets=[])
        w, b = net.w.data.copy(), net.b.data.copy()
        gw, _ = net.gradient(w, b)
        solver.step(1)
        np.testing.assert_allclose(net.w.data, w - 0.1 * factor * gw, rtol=1e-12)


def _masked_net(mode, first_param_dense=False):
    """The least-squares net with a zero in W (index 0) and in a 2-D bias (index 1)."""
    X, Y, _ = planted_problem()
    w0 = np.random.default_rng(3).standard_normal((3, 8)) * 0.1
    w0[0, 2] = 0
    net = LeastSquaresNet(X, Y, w0=w0, connectivity_mode="".join(list(mode)))  # not interned
    net.b.reshape((1, 3))
    net.b.data[...] = [[0.0, 0.1, 0.1]]
    if first_param_dense:                  # a blob that gets no mask comes first
        net.param_infos = net.param_infos[::-1]
        net.learnable_params = net.learnable_params[::-1]
    return net


@pytest.mark.parametrize("first_param_dense", [False, True])
def test_masks_cover_blob_zero_of_a_layer_only(first_param_dense):
    net = _masked_net("DISCONNECTED_ELTWISE", first_param_dense)
    solver = SGDSolver(solver_param(base_lr=0.1), train_net=net, test_nets=[])
    solver.step(3)
    assert net.w.data[0, 2] == 0                      # blob 0: masked
    assert net.b.data[0, 0] != 0                      # blob 1 (2-D here): never masked


def test_active_group_terms_are_logged_with_their_strengths(caplog):
    import logging

    from tests.solver.fakes import BlockGroupLassoSpec

    X, Y, _ = planted_problem()
    spec = ParamSpec(breadth_decay_mult=2.0, kernel_shape_decay_mult=0.5,
                     block_group_lasso=[BlockGroupLassoSpec(xdimen=4, ydimen=3,
                                                            block_decay_mult=1.0)])
    net = LeastSquaresNet(X, Y, weight_spec=spec)
    with caplog.at_level(logging.INFO, logger="minicaffe.solver"):
        SGDSolver(solver_param(breadth_decay=0.25, kernel_shape_decay=0.5, block_group_decay=0.125,
                               group_lasso_update="PROXIMAL"), train_net=net, test_nets=[])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Group Lasso")]
    assert lines == ["Group Lasso (PROXIMAL) on layer 'fc' param 0 (3, 8): row 0.5, "
                     "column 0.25, block 3x4 0.125"]


def test_update_mode_read_from_a_file_is_compared_by_value(tmp_path):
    """A solver file's enum value is a fresh str: PROXIMAL must still select the prox step."""
    from minicaffe.prototxt import parse_solver

    X, Y, _ = planted_problem()
    param = parse_solver('base_lr: 0.1 lr_policy: "fixed" group_lasso_update: PROXIMAL '
                         'breadth_decay: 0.3 zero_threshold: 0')
    net = LeastSquaresNet(X, Y, weight_spec=ParamSpec(breadth_decay_mult=1.0))
    solver = SGDSolver(param, train_net=net, test_nets=[])
    assert solver.proximal
    w, b = net.w.data.copy(), net.b.data.copy()
    gw, _ = net.gradient(w, b)
    u = w - 0.1 * gw
    want = _shrink(u, np.linalg.norm(u, axis=1, keepdims=True), 0.1 * param.breadth_decay)
    solver.step(1)
    np.testing.assert_allclose(net.w.data, want, rtol=1e-12)


def test_group_lasso_is_not_a_weight_decay_type():
    from minicaffe.errors import SolverError

    X, Y, _ = planted_problem()
    net = LeastSquaresNet(X, Y, weight_spec=ParamSpec(regularization_type="group_lasso"))
    with pytest.raises(SolverError, match=r"layer 'fc' param 0 \(3, 8\): regularization_type "
                                          r"\"group_lasso\" is unknown \(expected \"L1\" or "
                                          r"\"L2\"\)"):
        SGDSolver(solver_param(weight_decay=0.1), train_net=net, test_nets=[])


def test_connectivity_masks_leave_one_axis_blobs_alone():
    """A layer whose blob 0 is 1-D (Scale's per-channel factor) gets no mask, even when its
    layer asks for one: masks follow the lowered-matrix groupings of 2-D and conv weights."""
    import minicaffe as caffe
    from minicaffe.prototxt import parse_net

    net = caffe.Net(parse_net("""
        layer { name: "in" type: "Input" top: "x" top: "y"
                input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 3 } } }
        layer { name: "sc" type: "Scale" bottom: "x" top: "z" connectivity_mode: DISCONNECTED_ELTWISE
                scale_param { axis: 1 num_axes: 1 } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "z" bottom: "y" top: "loss" }
    """), caffe.TRAIN)
    rng = np.random.default_rng(0)
    net.blobs["x"].data[...] = rng.standard_normal((4, 3))
    net.blobs["y"].data[...] = rng.standard_normal((4, 3))
    net.params["sc"][0].data[...] = [0.0, 1.0, 2.0]
    solver = SGDSolver(solver_param(base_lr=0.5), train_net=net, test_nets=[])
    solver.step(1)
    assert net.params["sc"][0].data[0] != 0
