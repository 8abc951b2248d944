"""Regularizers: penalty vs brute force, add_grad vs finite differences, exact zeros, prox."""
import numpy as np
import pytest

from minicaffe.solver.regularizers import REGULARIZERS

GROUP_CASES = [
    dict(kind="row"), dict(kind="column"), dict(kind="channel"), dict(kind="filter2d"),
    dict(kind="layer"), dict(kind="block", xdimen=3, ydimen=2), dict(kind="row", group=2),
    dict(kind="column", group=2), dict(kind="block", group=2, xdimen=6, ydimen=1),
]


def brute_penalty(w, kind, group=1, xdimen=0, ydimen=0):
    """Sum of group norms by loops over the per-group lowered (M, K) matrices."""
    n = w.shape[0]
    area = int(np.prod(w.shape[2:]))
    total = 0.0
    if kind == "layer":
        return float(np.sqrt((w ** 2).sum()))
    for gi in range(group):
        a = w.reshape(n, -1)[gi * n // group:(gi + 1) * n // group]
        m, k = a.shape
        yd, xd = {"row": (1, k), "column": (m, 1), "channel": (m, area), "filter2d": (1, area),
                  "block": (ydimen, xdimen)}[kind]
        for r in range(0, m, yd):
            for c in range(0, k, xd):
                total += np.sqrt((a[r:r + yd, c:c + xd] ** 2).sum())
    return total


@pytest.mark.parametrize("params", GROUP_CASES, ids=lambda p: "-".join(map(str, p.values())))
def test_group_penalty_matches_loops(rng, params):
    w = rng.standard_normal((4, 2, 2, 3))
    reg = REGULARIZERS.get("group_lasso")(**params)
    assert reg.penalty(w) == pytest.approx(brute_penalty(w, **params), rel=1e-12)


def numeric_grad(f, w, h=1e-6):
    g = np.zeros_like(w)
    it = np.nditer(w, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = w[i]
        w[i] = old + h
        fp = f(w)
        w[i] = old - h
        fm = f(w)
        w[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


@pytest.mark.parametrize("params", GROUP_CASES, ids=lambda p: "-".join(map(str, p.values())))
def test_group_grad_matches_finite_differences(rng, params):
    w = rng.standard_normal((4, 2, 2, 3))
    reg = REGULARIZERS.get("group_lasso")(**params)
    diff = np.full_like(w, 0.25)           # add_grad must add, not overwrite
    reg.add_grad(w, diff, 0.3)
    np.testing.assert_allclose(diff - 0.25, 0.3 * numeric_grad(reg.penalty, w), rtol=1e-6,
                               atol=1e-8)


@pytest.mark.parametrize("name", ["L1", "L2"])
def test_decay_grad_and_penalty(rng, name):
    w = rng.standard_normal((3, 4))
    reg = REGULARIZERS.get(name)()
    want = np.abs(w).sum() if name == "L1" else 0.5 * (w ** 2).sum()
    assert reg.penalty(w) == pytest.approx(want)
    diff = np.zeros_like(w)
    reg.add_grad(w, diff, 0.1)
    np.testing.assert_allclose(diff, 0.1 * numeric_grad(reg.penalty, w), rtol=1e-6, atol=1e-9)


def test_grad_exactly_zero_on_zero_groups(rng):
    w = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    w[2] = 0                       # a dead row
    w[:, 1] = 0                    # a dead channel: its columns are dead too
    for kind in ("row", "column", "channel"):
        diff = np.zeros_like(w)
        REGULARIZERS.get("group_lasso")(kind=kind).add_grad(w, diff, 1.0)
        assert np.all(np.isfinite(diff))
        assert np.all(diff[w == 0] == 0), kind     # no epsilon leaking into dead weights
    # live groups get exactly lambda * w / ||w_g||, no sqrt(group size) weighting
    diff = np.zeros_like(w)
    REGULARIZERS.get("group_lasso")(kind="row").add_grad(w, diff, 0.5)
    np.testing.assert_allclose(diff[0], 0.5 * w[0] / np.linalg.norm(w[0]), rtol=1e-6)
    assert np.linalg.norm(diff[0]) == pytest.approx(0.5, rel=1e-6)


def test_group_prox_is_soft_threshold(rng):
    w = rng.standard_normal((5, 8))
    norms = np.linalg.norm(w, axis=1)
    step = float(np.median(norms))
    reg = REGULARIZERS.get("group_lasso")(kind="row")
    out = w.copy()
    reg.prox(out, step)
    for r in range(5):
        if norms[r] <= step:
            assert np.all(out[r] == 0)
        else:
            np.testing.assert_allclose(out[r], w[r] * (1 - step / norms[r]))
    # the prox point minimises 1/2||u - w||^2 + step * R(u): check against perturbations
    def objective(u):
        return 0.5 * ((u - w) ** 2).sum() + step * reg.penalty(u)
    best = objective(out)
    for _ in range(50):
        assert objective(out + 1e-3 * rng.standard_normal(w.shape)) >= best - 1e-12


def test_group_prox_keeps_zero_groups_zero():
    w = np.zeros((3, 4), dtype=np.float32)
    w[0] = 1.0
    REGULARIZERS.get("group_lasso")(kind="row").prox(w, 0.5)
    assert np.all(w[1:] == 0) and np.allclose(w[0], 0.75)


def test_l1_prox_and_l2_prox(rng):
    w = np.array([-2.0, -0.1, 0.0, 0.3, 1.0])
    REGULARIZERS.get("L1")().prox(w, 0.2)
    np.testing.assert_allclose(w, [-1.8, 0.0, 0.0, 0.1, 0.8])
    w = np.array([2.0, -4.0])
    REGULARIZERS.get("L2")().prox(w, 1.0)
    np.testing.assert_allclose(w, [1.0, -2.0])


def test_unknown_regularizer_message():
    with pytest.raises(KeyError, match="did you mean 'group_lasso'"):
        REGULARIZERS.get("group_laso")


def test_zero_groups_raise_no_floating_point_warning(rng):
    """Dead groups are masked out before any division: no 0/0 or x/0 even transiently."""
    import warnings

    w = rng.standard_normal((4, 6))
    w[1] = 0
    w[:, 2] = 0
    for kind in ("row", "column", "layer"):
        reg = REGULARIZERS.get("group_lasso")(kind=kind)
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            diff = np.zeros_like(w)
            reg.add_grad(w, diff, 0.3)
            out = np.zeros_like(w) if kind == "layer" else w.copy()
            reg.prox(out, 0.1)                # the layer case: a whole zero blob
        assert np.all(diff[w == 0] == 0)


def test_regularizer_params_are_frozen():
    import dataclasses

    for name in REGULARIZERS.names():
        reg = REGULARIZERS.get(name)()
        with pytest.raises(dataclasses.FrozenInstanceError):
            reg.params.kind = "column"


def test_block_group_lasso_needs_its_tile():
    from minicaffe.errors import SolverError

    with pytest.raises(SolverError, match="got xdimen=0 ydimen=0"):
        REGULARIZERS.get("group_lasso")(kind="block").validate((4, 6))
    REGULARIZERS.get("group_lasso")(kind="block", xdimen=3, ydimen=2).validate((4, 6))
