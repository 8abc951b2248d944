"""Lowered-weight groupings used by SSL, defined once.

A weight blob of shape `(N, C/g, kh, kw)` (Convolution with `group: g`) or `(N_out, K)`
(InnerProduct) is seen as `g` lowered matrices of shape `(M, K) = (N/g, C/g*kh*kw)`: rows are
filters (output neurons), columns are shape fibres (inputs), and column `c*kh*kw + i*kw + j`
belongs to input channel `c`. Every group kind is a tiling of those matrices:

  kind       tile (ydimen x xdimen)   norms shape       removes
  row        1 x K                    (g, M)            a filter / output neuron
  column     M x 1                    (g, K)            a shape fibre / input
  channel    M x kh*kw                (g, C/g)          an input channel
  filter2d   1 x kh*kw                (g, M, C/g)       one 2-D kernel
  block      ydimen x xdimen          (g, M/yd, K/xd)   a tile (`block_group_lasso`)
  layer      the whole blob           (1,)              the layer (depth)

Group norms are computed in one vectorised pass (reshape into tiles, sum of squares, sqrt);
the regularizers, the sparsity report and compaction all use these functions, so what SSL
zeroes is exactly what compaction removes.
"""
import math

from minicaffe import backend
from minicaffe.errors import SolverError

KINDS = ("row", "column", "channel", "filter2d", "block", "layer")


def lowered_shape(shape, group=1):
    """`(g, M, K)` of the lowered matrices of a blob shape; raises SolverError when `group`
    does not divide the number of filters."""
    shape = tuple(int(d) for d in shape)
    n = shape[0] if shape else 1
    count = math.prod(shape)
    if group < 1 or n % group:
        raise SolverError(f"conv group {group} does not divide the {n} filters of weights {shape}")
    k = count // n if n else 0
    return group, n // group, k


def kernel_area(shape):
    """kh*kw of a 4-D conv weight shape (1 for 2-D InnerProduct weights and lower ranks)."""
    return math.prod(shape[2:]) if len(shape) > 2 else 1


def tile_dims(shape, kind, group=1, xdimen=0, ydimen=0):
    """(ydimen, xdimen) of one tile of `kind` on the lowered matrices of `shape`.

    Raises SolverError for an unknown kind or a block that does not divide the matrix.
    """
    g, m, k = lowered_shape(shape, group)
    area = kernel_area(shape)
    if kind == "row":
        return 1, k
    if kind == "column":
        return m, 1
    if kind == "channel":
        return m, area
    if kind == "filter2d":
        return 1, area
    if kind == "layer":
        return m, k
    if kind == "block":
        if xdimen < 1 or ydimen < 1:
            raise SolverError(f"block_group_lasso needs xdimen >= 1 and ydimen >= 1, got "
                              f"xdimen={xdimen} ydimen={ydimen}")
        if m % ydimen or k % xdimen:
            raise SolverError(
                f"block_group_lasso tile {ydimen}x{xdimen} (ydimen x xdimen) does not divide the "
                f"lowered weight matrix {m}x{k} of weights {tuple(shape)}"
                + (f" (conv group {g})" if g > 1 else "")
                + "; need rows % ydimen == 0 and columns % xdimen == 0")
        return ydimen, xdimen
    raise SolverError(f"unknown group kind '{kind}' (known: {', '.join(KINDS)})")


def tiles(w, kind, group=1, xdimen=0, ydimen=0):
    """A view of `w` as `(g, M/yd, yd, K/xd, xd)`: axes 1 and 3 index the groups, axes 2 and 4
    run inside one group. `layer` is `(1, 1, g*M, 1, K)` (one group for the whole blob)."""
    g, m, k = lowered_shape(w.shape, group)
    yd, xd = tile_dims(w.shape, kind, group, xdimen, ydimen)
    if kind == "layer":
        return w.reshape(1, 1, g * m, 1, k)
    return w.reshape(g, m // yd, yd, k // xd, xd)


def _group_shape(per_tile, kind):
    """Drop the singleton tile axes of a `(g, M/yd, K/xd)` per-group array: the `norms` shape
    of the module docstring."""
    if kind == "row":
        return per_tile[:, :, 0]
    if kind in ("column", "channel"):
        return per_tile[:, 0, :]
    if kind == "layer":
        return per_tile.reshape(1)
    return per_tile


def norms(w, kind, group=1, xdimen=0, ydimen=0, keep_shape=False):
    """L2 norm of every group of `w`.

    w: weights `(N, C/g, kh, kw)`, `(N_out, K)` or any array with a leading filter axis.
    Returns the norms in the shape listed in the module docstring (`keep_shape=False`), or an
    array of `w.shape` holding each element's group norm (`keep_shape=True`).
    """
    xp = backend.xp_of(w)
    t = tiles(w, kind, group, xdimen, ydimen)
    sq = xp.sqrt((t * t).sum(axis=(2, 4), keepdims=True))
    if keep_shape:
        return xp.broadcast_to(sq, t.shape).reshape(w.shape)
    return _group_shape(sq.reshape(t.shape[0], t.shape[1], t.shape[3]), kind)


def zero_groups(w, kind, group=1, xdimen=0, ydimen=0):
    """Boolean array of the `norms` shape: True where a whole group is exactly zero."""
    xp = backend.xp_of(w)
    t = tiles(w, kind, group, xdimen, ydimen)
    return _group_shape(~xp.any(t != 0, axis=(2, 4)), kind)


def broadcast_groups(values, w, kind, group=1, xdimen=0, ydimen=0):
    """Spread a per-group array (the `norms` shape) back to `w.shape`."""
    xp = backend.xp_of(values, w)
    t = tiles(w, kind, group, xdimen, ydimen)
    v = values.reshape(t.shape[0], t.shape[1], 1, t.shape[3], 1)
    return xp.broadcast_to(v, t.shape).reshape(w.shape)


def live_mask(w, kind, group=1, xdimen=0, ydimen=0):
    """Boolean array of `w.shape`: True inside groups that are not entirely zero."""
    return broadcast_groups(~zero_groups(w, kind, group, xdimen, ydimen), w, kind, group,
                            xdimen, ydimen)


def kept_rows_cols(w, group=1):
    """Per conv group, the indices of non-zero rows and non-zero columns of the lowered matrix.

    Returns a list of `g` pairs `(rows, cols)` of int arrays (what compaction keeps).
    """
    xp = backend.xp_of(w)
    zr = zero_groups(w, "row", group)
    zc = zero_groups(w, "column", group)
    return [(xp.flatnonzero(~zr[i]), xp.flatnonzero(~zc[i])) for i in range(zr.shape[0])]
