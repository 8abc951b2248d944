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


def brute_group_index(shape, kind, g=1, xd=0, yd=0):
    """For every element of a blob `shape`, the index (into the flattened `norms` array) of the
    group it belongs to, worked out element by element from the lowered layout."""
    n = shape[0]
    area = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    m, k = n // g, int(np.prod(shape[1:]))
    per_group = {"row": m, "column": k, "channel": k // area, "filter2d": m * (k // area),
                 "block": (m // yd) * (k // xd) if yd else 0, "layer": 0}[kind]
    out = np.empty(shape, dtype=np.int64)
    for idx in np.ndindex(*shape):
        gi, r = divmod(idx[0], m)                    # conv group, row inside its matrix
        col = int(np.ravel_multi_index(idx[1:], shape[1:])) if len(shape) > 1 else 0
        within = {"row": r, "column": col, "channel": col // area,
                  "filter2d": r * (k // area) + col // area,
                  "block": (r // yd) * (k // xd) + col // xd if yd else 0, "layer": 0}[kind]
        out[idx] = 0 if kind == "layer" else gi * per_group + within
    return out


GROUPINGS = [(shape, g, kind, xd, yd)
             for shape, g in [((6, 4, 3, 3), 2), ((6, 4, 3, 3), 1), ((6, 12), 3)]
             for kind, xd, yd in [("row", 0, 0), ("column", 0, 0), ("channel", 0, 0),
                                  ("filter2d", 0, 0), ("layer", 0, 0), ("block", 6, 3),
                                  ("block", 9, 1), ("block", 4, 2), ("block", 1, 2),
                                  ("block", 4, 1)]
             if kind != "block" or (shape[0] // g % yd == 0 and np.prod(shape[1:]) % xd == 0)]


@pytest.mark.parametrize("shape,g,kind,xd,yd", GROUPINGS)
def test_each_element_is_in_its_own_group(rng, shape, g, kind, xd, yd):
    """broadcast_groups of the group numbers gives every element the number of the group it
    belongs to, and keep_shape gives it that group's norm (computed here by loops)."""
    want = brute_group_index(shape, kind, g, xd, yd)
    w = rng.standard_normal(shape)
    ids = np.arange(groups.norms(w, kind, g, xd, yd).size).reshape(
        groups.norms(w, kind, g, xd, yd).shape)
    np.testing.assert_array_equal(groups.broadcast_groups(ids, w, kind, g, xd, yd), want)
    sums = np.bincount(want.ravel(), weights=(w * w).ravel())
    np.testing.assert_allclose(groups.norms(w, kind, g, xd, yd, keep_shape=True),
                               np.sqrt(sums)[want], rtol=1e-12)
    np.testing.assert_allclose(groups.norms(w, kind, g, xd, yd).ravel(), np.sqrt(sums),
                               rtol=1e-12)
    # zero one element's group: exactly its members go dead
    w[want == want.flat[7]] = 0
    dead = ~groups.live_mask(w, kind, g, xd, yd)
    np.testing.assert_array_equal(dead, want == want.flat[7])


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


def test_kinds_compare_by_value_not_identity(rng):
    """Group kinds read from a solver file are new str objects, not the interned literals."""
    w = rng.standard_normal((6, 4, 3, 3))
    for kind in ("row", "column", "channel", "filter2d", "layer", "block"):
        runtime = "".join(list(kind))                # equal, but not the same object
        np.testing.assert_array_equal(groups.norms(w, runtime, 2, 9, 3),
                                      groups.norms(w, kind, 2, 9, 3))
        assert groups.tiles(w, runtime, 2, 9, 3).shape == groups.tiles(w, kind, 2, 9, 3).shape


@pytest.mark.parametrize("kind", ["bias", "a", "rows", "Row", ""])
def test_unknown_kinds_are_named_whatever_they_sort_like(kind):
    with pytest.raises(SolverError, match=f"unknown group kind '{kind}'"):
        groups.norms(np.ones((4, 3)), kind, 1, 1, 1)


def test_defaults_are_one_group_and_no_tile(rng):
    """Called without group / xdimen / ydimen: one conv group, and block tiles must be given.
    Columns, not rows, tell one group from two (a row's norm is the same either way)."""
    w = rng.standard_normal((6, 4, 3, 3))
    w[:3, 0, 1, 2] = 0                               # column 5 dead in the first 3 rows only
    explicit = dict(group=1, xdimen=0, ydimen=0)
    for fn in (groups.norms, groups.zero_groups, groups.live_mask):
        np.testing.assert_array_equal(fn(w, "column"), fn(w, "column", **explicit))
        with pytest.raises(SolverError, match="got xdimen=0 ydimen=0"):
            fn(w, "block")
    per_column = np.arange(36.0).reshape(1, 36)
    np.testing.assert_array_equal(groups.broadcast_groups(per_column, w, "column"),
                                  groups.broadcast_groups(per_column, w, "column", **explicit))
    with pytest.raises(SolverError, match="got xdimen=0 ydimen=0"):
        groups.broadcast_groups(per_column, w, "block")
    assert groups.tiles(w, "column").shape == (1, 1, 6, 36, 1)
    assert groups.tile_dims(w.shape, "column") == (6, 1)
    with pytest.raises(SolverError, match="got xdimen=0 ydimen=0"):
        groups.tiles(w, "block")
    with pytest.raises(SolverError, match="got xdimen=2 ydimen=0"):
        groups.tile_dims(w.shape, "block", xdimen=2)
    with pytest.raises(SolverError, match="got xdimen=0 ydimen=2"):
        groups.tile_dims(w.shape, "block", ydimen=2)
    [(rows, cols)] = groups.kept_rows_cols(w)
    assert rows.tolist() == list(range(6)) and cols.tolist() == list(range(36))


def test_three_axis_weights_use_their_last_axis_as_the_kernel(rng):
    """A (N, C, L) blob: a channel is L consecutive columns (kernel_area = L)."""
    w = rng.standard_normal((4, 3, 5))
    np.testing.assert_allclose(groups.norms(w, "channel")[0],
                               [np.linalg.norm(w[:, c, :]) for c in range(3)])
    assert groups.kernel_area(w.shape) == 5 and groups.kernel_area((4, 3)) == 1


def test_lowered_shapes_of_edge_blobs():
    assert groups.lowered_shape((0, 3, 3, 3)) == (1, 0, 0)        # no filters
    assert groups.lowered_shape((4, 3, 3, 3), 2) == (2, 2, 27)
    assert groups.lowered_shape(()) == (1, 1, 1)                  # a 0-axis blob: one value
    assert groups.lowered_shape((5,)) == (1, 5, 1)                # a bias
    for bad in (0, -1, 3):
        with pytest.raises(SolverError, match=f"conv group {bad} does not divide the 4 filters"):
            groups.lowered_shape((4, 3, 3, 3), bad)


def test_block_error_names_the_conv_group_only_when_there_are_several():
    w = np.ones((6, 4, 3, 3))
    with pytest.raises(SolverError) as one:
        groups.norms(w, "block", 1, 5, 2)
    assert "conv group" not in str(one.value)
    with pytest.raises(SolverError, match=r"lowered weight matrix 3x36 .* \(conv group 2\)"):
        groups.norms(w, "block", 2, 5, 3)


def test_kept_rows_cols_has_one_entry_per_conv_group(rng):
    w = rng.standard_normal((6, 4, 3, 3))                 # group 2: two 3 x 36 matrices
    w[4] = 0                                              # row 1 of group 1
    w[:, 1, 0, 0] = 0                                     # column 9 of both groups
    kept = groups.kept_rows_cols(w, 2)
    assert len(kept) == 2
    assert kept[0][0].tolist() == [0, 1, 2] and kept[1][0].tolist() == [0, 2]
    assert all(9 not in cols and len(cols) == 35 for _, cols in kept)
