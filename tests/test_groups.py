"""groups.py: every grouping against explicit per-group loops over the lowered matrix."""
import numpy as np
import pytest

from minicaffe import groups
from minicaffe.errors import SolverError


def lowered(w, g):
    """Per conv group, the (M, K) lowered matrix, built by explicit indexing."""
    n = w.shape[0]
    flat = w.reshape(n, -1)
    return [flat[i * n // g:(i + 1) * n // g] for i in range(g)]


def brute(w, kind, g=1, xd=0, yd=0):
    """Group norms by loops, in the documented output shapes."""
    area = int(np.prod(w.shape[2:])) if w.ndim > 2 else 1
    mats = lowered(w, g)
    m, k = mats[0].shape
    if kind == "layer":
        return np.array([np.sqrt((w.astype(np.float64) ** 2).sum())])
    out = []
    for a in mats:
        if kind == "row":
            out.append([np.linalg.norm(a[r]) for r in range(m)])
        elif kind == "column":
            out.append([np.linalg.norm(a[:, c]) for c in range(k)])
        elif kind == "channel":
            out.append([np.linalg.norm(a[:, c * area:(c + 1) * area]) for c in range(k // area)])
        elif kind == "filter2d":
            out.append([[np.linalg.norm(a[r, c * area:(c + 1) * area]) for c in range(k // area)]
                        for r in range(m)])
        elif kind == "block":
            out.append([[np.linalg.norm(a[r * yd:(r + 1) * yd, c * xd:(c + 1) * xd])
                         for c in range(k // xd)] for r in range(m // yd)])
    return np.array(out)


CASES = [
    ((6, 4, 3, 3), 1), ((6, 4, 3, 3), 2), ((6, 2, 2, 3), 3), ((5, 7), 1), ((4, 1, 5, 5), 1),
]


@pytest.mark.parametrize("shape,g", CASES)
@pytest.mark.parametrize("kind", ["row", "column", "channel", "filter2d", "layer"])
def test_norms_match_loops(rng, shape, g, kind):
    w = rng.standard_normal(shape)
    got = groups.norms(w, kind, g)
    want = brute(w, kind, g)
    assert got.shape == want.shape, (kind, shape, g)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("shape,g,yd,xd", [((6, 4, 3, 3), 1, 2, 9), ((6, 4, 3, 3), 2, 3, 6),
                                           ((8, 6), 1, 4, 3), ((6, 4, 3, 3), 1, 6, 36)])
def test_block_norms_match_loops(rng, shape, g, yd, xd):
    w = rng.standard_normal(shape)
    np.testing.assert_allclose(groups.norms(w, "block", g, xd, yd), brute(w, "block", g, xd, yd),
                               rtol=1e-12)


def test_block_special_cases_equal_named_kinds(rng):
    w = rng.standard_normal((6, 4, 3, 3))
    np.testing.assert_allclose(groups.norms(w, "block", 1, 9, 6)[0, 0], groups.norms(w, "channel")[0])
    np.testing.assert_allclose(groups.norms(w, "block", 1, 9, 1)[0], groups.norms(w, "filter2d")[0])
    np.testing.assert_allclose(groups.norms(w, "block", 1, 36, 6).ravel(), groups.norms(w, "layer"))


@pytest.mark.parametrize("kind", ["row", "column", "channel", "filter2d", "layer"])
def test_keep_shape_spreads_group_norm(rng, kind):
    w = rng.standard_normal((6, 4, 3, 3))
    full = groups.norms(w, kind, 2, keep_shape=True)
    assert full.shape == w.shape
    # each element's group norm: zero one element's group and check exactly those go to zero
    per = groups.norms(w, kind, 2)
    np.testing.assert_allclose(np.unique(np.round(full, 12)), np.unique(np.round(per, 12)))


def test_ip_rows_are_neurons_columns_inputs(rng):
    w = rng.standard_normal((3, 5))
    np.testing.assert_allclose(groups.norms(w, "row")[0], np.linalg.norm(w, axis=1))
    np.testing.assert_allclose(groups.norms(w, "column")[0], np.linalg.norm(w, axis=0))


def test_zero_groups_and_kept_rows_cols():
    w = np.ones((4, 2, 2, 2))
    w[1] = 0                 # filter 1
    w[:, :, 0, 1] = 0        # shape fibre (c, 0, 1) for both channels -> columns 1 and 5
    w[2:, 1] = 0             # channel 1 of group 1 only (group=2: filters 2,3)
    zr = groups.zero_groups(w, "row", 2)
    assert zr.tolist() == [[False, True], [False, False]]
    zc = groups.zero_groups(w, "column", 2)
    assert zc.tolist() == [[False, True, False, False, False, True, False, False],
                           [False, True, False, False, True, True, True, True]]
    zch = groups.zero_groups(w, "channel", 2)
    assert zch.tolist() == [[False, False], [False, True]]
    kept = groups.kept_rows_cols(w, 2)
    assert kept[0][0].tolist() == [0] and kept[0][1].tolist() == [0, 2, 3, 4, 6, 7]
    assert kept[1][0].tolist() == [0, 1] and kept[1][1].tolist() == [0, 2, 3]
    live = groups.live_mask(w, "row", 2)
    assert live.shape == w.shape and not live[1].any() and live[0].all()


def test_bad_group_and_tile_errors():
    w = np.ones((6, 4, 3, 3))
    with pytest.raises(SolverError, match="conv group 4 does not divide the 6 filters"):
        groups.norms(w, "row", 4)
    with pytest.raises(SolverError, match=r"tile 4x9 .* 6x36"):
        groups.norms(w, "block", 1, 9, 4)
    with pytest.raises(SolverError, match="unknown group kind 'rows'"):
        groups.norms(w, "rows")
    with pytest.raises(SolverError, match="xdimen >= 1"):
        groups.norms(w, "block", 1, 0, 1)
