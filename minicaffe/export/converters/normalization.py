"""Normalising and affine layers: BatchNorm (with a following Scale folded in), Scale, Bias,
LRN, MVN."""
import numpy as np

from minicaffe.export.converters import converter


def _broadcast_shape(ndim, axis, operand_ndim):
    """Axes to append to an operand spanning bottom axes [axis, axis + operand_ndim) so that it
    broadcasts against an `ndim`-axis tensor (ONNX broadcasts from the right)."""
    if operand_ndim == 0:
        return 0
    return ndim - (axis % ndim) - operand_ndim


def _operand(ctx, param_message, blob_index, bottom_index, what):
    """The multiplier / addend of Scale or Bias, shaped to broadcast: a constant from the
    layer's blob, or bottom[1] with trailing axes added (Unsqueeze)."""
    ndim = ctx.bottom_shapes[0].ndim
    axis = int(param_message.axis)
    if len(ctx.bottoms) > bottom_index:
        shape = ctx.bottom_shapes[bottom_index]
        extra = _broadcast_shape(ndim, axis, shape.ndim)
        value = ctx.bottoms[bottom_index]
        if extra:
            value = ctx.graph.unsqueeze(value, list(range(shape.ndim, shape.ndim + extra)),
                                        name=ctx.hint(f"{what}/Unsqueeze"))
        return value
    a = ctx.weight(blob_index)
    extra = _broadcast_shape(ndim, axis, a.ndim)
    return ctx.const(a.reshape(a.shape + (1,) * extra), what)


@converter("Scale")
def scale(ctx):
    """y = x * s (+ b), s from blobs[0] or bottom[1], b the last blob."""
    p = ctx.param.scale_param
    s = _operand(ctx, p, 0, 1, "scale")
    if not ctx.layer.bias_term:
        return [ctx.node("Mul", [ctx.bottoms[0], s], out=ctx.top(0))]
    y = ctx.node("Mul", [ctx.bottoms[0], s])
    b = ctx.weight(len(ctx.layer.blobs) - 1)
    extra = _broadcast_shape(ctx.bottom_shapes[0].ndim, int(p.axis), b.ndim)
    return [ctx.node("Add", [y, ctx.const(b.reshape(b.shape + (1,) * extra), "bias")],
                     out=ctx.top(0))]


@converter("Bias")
def bias(ctx):
    b = _operand(ctx, ctx.param.bias_param, 0, 1, "bias")
    return [ctx.node("Add", [ctx.bottoms[0], b], out=ctx.top(0))]


def _statistics(layer):
    """(mean, var) the layer normalises with under global statistics (Caffe's sums / s)."""
    s = float(layer.blobs[2].data.reshape(-1)[0])
    factor = 0.0 if s == 0 else 1.0 / s
    mean = np.asarray(layer.blobs[0].data, dtype=np.float64) * factor
    var = np.asarray(layer.blobs[1].data, dtype=np.float64) * factor
    return mean.astype(np.float32), var.astype(np.float32)


def _foldable_scale(ctx):
    """The following Scale layer when it only applies a per-channel s (+ b) to this output:
    one bottom, axis 1, one axis. Then BatchNormalization takes it as its scale and bias."""
    nxt = ctx.following()
    if nxt is None or nxt.type != "Scale" or len(nxt.bottoms) != 1:
        return None
    p = nxt.param.scale_param
    ndim = ctx.bottom_shapes[0].ndim
    if p.axis % ndim != 1 or p.num_axes != 1:
        return None
    return nxt


@converter("BatchNorm")
def batch_norm(ctx):
    """BatchNormalization (inference) with Caffe's mean_sum / s and var_sum / s and eps; a
    Scale right after it becomes its scale and bias. Without global statistics (a TRAIN net,
    or use_global_stats: false) the batch's mean and biased variance are computed in the graph.
    """
    layer = ctx.layer
    C = layer.channels
    x = ctx.bottoms[0]
    ndim = ctx.bottom_shapes[0].ndim
    if not layer.use_global_stats:
        axes = [0] + list(range(2, ndim))
        mean = ctx.graph.reduce("ReduceMean", x, axes, name=ctx.hint("mean"))
        centred = ctx.node("Sub", [x, mean], what="centre")
        var = ctx.graph.reduce("ReduceMean", ctx.node("Mul", [centred, centred], what="square"),
                               axes, name=ctx.hint("var"))
        std = ctx.node("Sqrt", [ctx.node("Add", [var, ctx.scalar(layer.eps, "eps")],
                                         what="add_eps")])
        ctx.note("normalises with the batch's own statistics (use_global_stats is false)")
        return [ctx.node("Div", [centred, std], out=ctx.top(0))]
    mean, var = _statistics(layer)
    gamma, beta = np.ones(C, np.float32), np.zeros(C, np.float32)
    nxt = _foldable_scale(ctx)
    out = ctx.top(0)
    if nxt is not None:
        gamma = np.asarray(nxt.weight(0), np.float32).reshape(C)
        if nxt.layer.bias_term:
            beta = np.asarray(nxt.weight(1), np.float32).reshape(C)
        out = nxt.top(0)
    y = ctx.node("BatchNormalization",
                 [x, ctx.const(gamma, "gamma"), ctx.const(beta, "beta"), ctx.const(mean, "mean"),
                  ctx.const(var, "var")], out=out, epsilon=float(layer.eps))
    if nxt is not None:
        ctx.absorb(nxt, [y])
    return [y]


@converter("LRN")
def lrn(ctx):
    """ACROSS_CHANNELS is ONNX's LRN (the same alpha / size scaling, bias = k, odd size).
    WITHIN_CHANNEL: x * (1 + alpha * mean of x^2 over the n x n window, zero padded)^-beta,
    the mean an AveragePool counting the padding (stride 1, pad (n-1)/2: every window is whole,
    so the divisor is n^2 as in Caffe)."""
    layer = ctx.layer
    x = ctx.bottoms[0]
    if layer.across:
        return [ctx.node("LRN", [x], out=ctx.top(0), size=layer.n, alpha=layer.alpha,
                         beta=layer.beta, bias=layer.k)]
    n, half = layer.n, (layer.n - 1) // 2
    sq = ctx.node("Mul", [x, x], what="square")
    mean = ctx.node("AveragePool", [sq], kernel_shape=[n, n], pads=[half] * 4, strides=[1, 1],
                    count_include_pad=1)
    s = ctx.node("Add", [ctx.node("Mul", [mean, ctx.scalar(layer.alpha, "alpha")], what="alpha"),
                         ctx.scalar(1.0, "one")], what="plus_one")
    scale = ctx.node("Pow", [s, ctx.scalar(-layer.beta, "minus_beta")])
    return [ctx.node("Mul", [x, scale], out=ctx.top(0))]


@converter("MVN")
def mvn(ctx):
    """(x - mean) / (std + eps) per (n, c) plane or per sample, on the legacy 4-D view."""
    p = ctx.param.mvn_param
    src, dst = ctx.bottom_shapes[0], ctx.top_shapes[0]
    x = ctx.bottoms[0]
    if src.ndim != 4:
        x = ctx.reshape(x, src, dst, what="as_4d")
    axes = [1, 2, 3] if p.across_channels else [2, 3]
    mean = ctx.graph.reduce("ReduceMean", x, axes, name=ctx.hint("mean"))
    if not p.normalize_variance:
        return [ctx.node("Sub", [x, mean], out=ctx.top(0), what="centre")]
    centred = ctx.node("Sub", [x, mean], what="centre")
    var = ctx.graph.reduce("ReduceMean", ctx.node("Mul", [centred, centred], what="square"), axes,
                           name=ctx.hint("var"))
    denom = ctx.node("Add", [ctx.node("Sqrt", [var]), ctx.scalar(p.eps, "eps")], what="add_eps")
    return [ctx.node("Div", [centred, denom], out=ctx.top(0))]

