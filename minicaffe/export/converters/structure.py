"""Layers that move, select or combine values: Split and Dropout (no node), Concat, Slice,
Flatten, Reshape, Crop, Tile, Eltwise, Softmax, Reduction, ArgMax, BatchReindex, Filter,
Parameter."""
import numpy as np

from minicaffe.export.converters import converter


@converter("Split")
def split(ctx):
    """Every top is the bottom's value: ONNX values may have many readers."""
    return [ctx.bottoms[0]] * len(ctx.top_shapes)


split.aliases = True          # passes its bottom's value on: no node, no name of its own


@converter("Dropout")
def dropout(ctx):
    """Identity at inference (Caffe's TEST phase); a TRAIN net's dropout is left out too."""
    if ctx.layer.phase == "TRAIN":
        ctx.note("exported as the identity (inference), not as the TRAIN phase's random mask")
    return [ctx.bottoms[0]]


dropout.aliases = True


@converter("Concat")
def concat(ctx):
    if len(ctx.bottoms) == 1:
        return [ctx.node("Identity", ctx.bottoms, out=ctx.top(0))]
    p = ctx.param.concat_param
    axis = int(p.concat_dim) if p.has("concat_dim") else int(p.axis)
    return [ctx.node("Concat", ctx.bottoms, out=ctx.top(0),
                     axis=axis % ctx.bottom_shapes[0].ndim)]


@converter("Slice")
def slice_(ctx):
    """Split at Caffe's slice points (sizes from the net's shapes; the axis must not be the
    batch's)."""
    p = ctx.param.slice_param
    src = ctx.bottom_shapes[0]
    axis = (int(p.slice_dim) if p.has("slice_dim") else int(p.axis)) % src.ndim
    if src.dynamic[axis]:
        raise ctx.error(f"slices axis {axis}, which follows the batch; export with a fixed batch "
                        "(dynamic_batch=False / --static-batch)")
    sizes = [t[axis] for t in ctx.top_shapes]
    if len(sizes) == 1:
        return [ctx.node("Identity", ctx.bottoms, out=ctx.top(0))]
    outs = ctx.graph.split(ctx.bottoms[0], sizes, axis,
                           [ctx.top(j) for j in range(len(sizes))], name=ctx.hint("Split"))
    return list(outs)


def _view(ctx):
    return [ctx.reshape(ctx.bottoms[0], ctx.bottom_shapes[0], ctx.top_shapes[0],
                        out=ctx.top(0))]


converter("Flatten")(_view)
# Caffe's 0 (copy the bottom axis at the same position) and -1 (infer) are resolved by the net;
# ctx.reshape writes the result with the batch left free.
converter("Reshape")(_view)


@converter("Crop")
def crop(ctx):
    """Slice each axis from crop_param.axis at its offset to bottom 1's size (both known)."""
    layer = ctx.layer
    axes, starts, ends = [], [], []
    src = ctx.bottom_shapes[0]
    for i, window in enumerate(layer.window):
        if i < layer.axis:
            continue
        if src.dynamic[i] or ctx.top_shapes[0].dynamic[i]:
            raise ctx.error(f"crops axis {i}, which follows the batch; export with a fixed "
                            "batch (dynamic_batch=False / --static-batch)")
        axes.append(i)
        starts.append(window.start)
        ends.append(window.stop)
    return [ctx.graph.slice(ctx.bottoms[0], starts, ends, axes, out=ctx.top(0),
                            name=ctx.hint("Slice"))]


@converter("Tile")
def tile(ctx):
    reps = [1] * ctx.bottom_shapes[0].ndim
    reps[ctx.layer.axis] = ctx.layer.tiles
    return [ctx.node("Tile", [ctx.bottoms[0], ctx.ints(reps, "repeats")], out=ctx.top(0))]


@converter("Eltwise")
def eltwise(ctx):
    """SUM (each bottom times its coefficient, coefficients of 1 left out), PROD, MAX."""
    layer = ctx.layer
    if layer.operation == "PROD":
        return [_chain(ctx, "Mul", ctx.bottoms)]
    if layer.operation == "MAX":
        return [ctx.node("Max", ctx.bottoms, out=ctx.top(0))]
    terms = []
    for k, (x, c) in enumerate(zip(ctx.bottoms, layer.coeff)):
        if c == 1:
            terms.append(x)
        elif c == -1 and k > 0 and len(ctx.bottoms) == 2:
            return [ctx.node("Sub", [terms[0], x], out=ctx.top(0))]
        else:
            terms.append(ctx.node("Mul", [x, ctx.scalar(c, f"coeff{k}")], what=f"coeff{k}"))
    if len(terms) == 2:
        return [ctx.node("Add", terms, out=ctx.top(0))]
    return [ctx.node("Sum", terms, out=ctx.top(0))]


def _chain(ctx, op, values):
    """op(op(op(v0, v1), v2), ...) in Caffe's order (float products round in that order)."""
    acc = values[0]
    for k, v in enumerate(values[1:], 1):
        acc = ctx.node(op, [acc, v], out=ctx.top(0) if k == len(values) - 1 else None)
    return acc


@converter("Softmax")
def softmax(ctx):
    axis = int(ctx.param.softmax_param.axis) % ctx.bottom_shapes[0].ndim
    return [ctx.node("Softmax", ctx.bottoms, out=ctx.top(0), axis=axis)]


@converter("Reduction")
def reduction(ctx):
    """coeff * SUM / ASUM / SUMSQ / MEAN over every axis from `axis` on (top: the leading
    axes). MEAN is ReduceMean, so a reduction over the batch axis keeps the batch free."""
    p = ctx.param.reduction_param
    src = ctx.bottom_shapes[0]
    axes = list(range(len(ctx.top_shapes[0]), src.ndim))
    coeff = float(p.coeff)
    out = ctx.top(0) if coeff == 1 else None
    x = ctx.bottoms[0]
    if not axes:                                     # a 0-axis bottom: op of its one value
        if p.operation == "ASUM":
            y = ctx.node("Abs", [x], out=out)
        elif p.operation == "SUMSQ":
            y = ctx.node("Mul", [x, x], out=out, what="square")
        else:
            y = ctx.node("Identity", [x], out=out)
    else:
        op = {"SUM": "ReduceSum", "MEAN": "ReduceMean", "ASUM": "ReduceL1",
              "SUMSQ": "ReduceSumSquare"}[p.operation]
        y = ctx.graph.reduce(op, x, axes, keepdims=0, out=out, name=ctx.hint(op))
    if coeff == 1:
        return [y]
    return [ctx.node("Mul", [y, ctx.scalar(coeff, "coeff")], out=ctx.top(0), what="coeff")]


@converter("ArgMax")
def argmax(ctx):
    """TopK on the axis reversed, so that equal values rank the larger index first (Caffe's
    order; TopK ranks the smaller first): index = length - 1 - TopK's index. Indices (and the
    values with out_max_val) come out as floats, shaped as Caffe shapes them."""
    layer = ctx.layer
    p = ctx.param.argmax_param
    src, dst = ctx.bottom_shapes[0], ctx.top_shapes[0]
    x = ctx.bottoms[0]
    if layer.has_axis:
        axis = layer.axis
        length = src[axis]
        if src.dynamic[axis]:
            raise ctx.error(f"ranks along axis {axis}, which follows the batch")
    else:
        flat = type(src)((src[0], int(np.prod(src.dims[1:], dtype=np.int64))),
                         (src.probe[0], int(np.prod(src.probe[1:], dtype=np.int64))))
        x = ctx.reshape(x, src, flat, what="flatten") if src.ndim != 2 else x
        axis, length = 1, flat[1]
    rev = ctx.graph.slice(x, [length - 1], [-length - 1], [axis], [-1], name=ctx.hint("reverse"))
    values, idx = ctx.node("TopK", [rev, ctx.ints([layer.top_k], "k")], out=2, axis=axis,
                           largest=1, sorted=1)
    flipped = ctx.node("Sub", [ctx.ints([length - 1], "last"), idx], what="index")
    index = ctx.node("Cast", [flipped], to=1, what="index_float")
    if layer.has_axis:
        result = values if p.out_max_val else index
        return [ctx.node("Identity", [result], out=ctx.top(0))]
    if p.out_max_val:
        pair = ctx.node("Concat", [ctx.graph.unsqueeze(index, [1], name=ctx.hint("idx_row")),
                                   ctx.graph.unsqueeze(values, [1], name=ctx.hint("val_row"))],
                        axis=1, what="pair")
        two = type(src)((src[0], 2, layer.top_k), (src.probe[0], 2, layer.top_k))
        return [ctx.reshape(pair, two, dst, out=ctx.top(0), what="shape")]
    k2 = type(src)((src[0], layer.top_k), (src.probe[0], layer.top_k))
    return [ctx.reshape(index, k2, dst, out=ctx.top(0), what="shape")]


@converter("BatchReindex")
def batch_reindex(ctx):
    """Gather along axis 0 at the (whole-number) indices of bottom 1."""
    idx = ctx.node("Cast", [ctx.bottoms[1]], to=7, what="index")           # 7 = INT64
    return [ctx.node("Gather", [ctx.bottoms[0], idx], out=ctx.top(0), axis=0)]


@converter("Filter")
def filter_(ctx):
    """Compress along axis 0 where the selector (last bottom) is non-zero."""
    sel = ctx.bottoms[-1]
    if ctx.bottom_shapes[-1].ndim != 1:              # (N, 1, ...): one value per sample
        sel = ctx.graph.reshape(sel, [-1], name=ctx.hint("selector"))
    keep = ctx.node("Not", [ctx.node("Equal", [sel, ctx.scalar(0.0, "zero")])], what="keep")
    return [ctx.node("Compress", [x, keep], out=ctx.top(j), axis=0, what=f"Compress{j}")
            for j, x in enumerate(ctx.bottoms[:-1])]


@converter("Parameter")
def parameter(ctx):
    """The blob as a constant (an initializer named after the layer)."""
    return [ctx.node("Identity", [ctx.const(ctx.weight(0), "value")], out=ctx.top(0))]
