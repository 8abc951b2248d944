"""Pooling and SPP with Caffe's window rules written out exactly.

Caffe's output size (ceil rule, and one window fewer on each axis whose last window would
start at or past H + pad when either pad is non-zero) and its AVE divisor (the window clipped
to H + pad: padding counts, overhang past the padding does not) are not what ONNX's
`ceil_mode` and `count_include_pad` say at the borders. The exporter never uses ceil_mode; it
pads or crops the bottom and right edges itself so that ONNX's floor rule gives Caffe's
window count, and picks, per case:

- MAX: MaxPool with pads (begin = Caffe's pad, end = whatever the last window needs; ONNX
  ignores padded cells in a max) when every window touches the image; otherwise an explicit
  Pad with -FLT_MAX (Caffe's value for a window wholly past the image) and an unpadded MaxPool.
- AVE: AveragePool with count_include_pad=0 when no axis is padded (the divisor is then the
  window clipped to the image, which is Caffe's), with count_include_pad=1 when no window
  reaches past H + pad (every window is whole, divisor kh*kw, Caffe's too); otherwise an
  explicit zero Pad, an unpadded AveragePool (divisor kh*kw everywhere) and a multiplication by
  the map kh*kw / Caffe's divisor, computed here once.
- global pooling: GlobalMaxPool / GlobalAveragePool.
An end pad that would be negative (floor rounding leaves rows no window reads) is a Slice.
"""
import numpy as np

from minicaffe.catalog.pooling import pooled_shape
from minicaffe.catalog.spp import spp_level_geometry
from minicaffe.export.converters import converter

_LOWEST = float(np.finfo(np.float32).min)        # -FLT_MAX, Caffe's start value of a max


def _axis_plan(size, k, p, s, o):
    """(end pad, last window starts inside the image, no window overhangs size + p) for one
    axis of `size` pooled into `o` windows of kernel k, pad p, stride s."""
    last = (o - 1) * s - p                      # first row of the last window
    end_pad = last + k - size                   # rows past the image the last window needs
    return end_pad, last < size, last + k <= size + p


def caffe_divisors(size, k, p, s, o):
    """Caffe's AVE divisor along one axis: window y spans [y s - p, min(y s - p + k, size + p))."""
    starts = np.arange(o) * s - p
    return np.minimum(starts + k, size + p) - starts


def pool(ctx, x, method, kernel, pad, stride, out_size, in_size, out=None, what="pool"):
    """Caffe's MAX or AVE pooling of `x` (N, C, H, W) as ONNX nodes; returns the value name.
    Raises ExportError for an AVE window with no cells (cannot occur with a valid pad)."""
    (kh, kw), (ph, pw), (sh, sw), (oh, ow), (H, W) = kernel, pad, stride, out_size, in_size
    plans = [_axis_plan(H, kh, ph, sh, oh), _axis_plan(W, kw, pw, sw, ow)]
    ends = [plan[0] for plan in plans]
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw])
    if any(e < 0 for e in ends):
        # rows / columns no window reads: crop them, then there is nothing to pad at the end
        x = ctx.graph.slice(x, [0, 0], [H + min(ends[0], 0), W + min(ends[1], 0)], [2, 3],
                            name=ctx.hint(f"{what}/crop"))
        ends = [max(e, 0) for e in ends]
    if method == "MAX":
        if all(plan[1] for plan in plans):
            return ctx.node("MaxPool", [x], out=out, what=f"{what}/MaxPool",
                            pads=[ph, pw, ends[0], ends[1]], **attrs)
        x = ctx.graph.pad(x, [0, 0, ph, pw], [0, 0, ends[0], ends[1]], value=_LOWEST,
                          name=ctx.hint(f"{what}/Pad"))
        return ctx.node("MaxPool", [x], out=out, what=f"{what}/MaxPool", **attrs)
    if ph == 0 and pw == 0 and all(plan[1] for plan in plans):
        return ctx.node("AveragePool", [x], out=out, what=f"{what}/AveragePool",
                        pads=[0, 0, ends[0], ends[1]], count_include_pad=0, **attrs)
    if all(plan[2] for plan in plans):
        return ctx.node("AveragePool", [x], out=out, what=f"{what}/AveragePool",
                        pads=[ph, pw, ends[0], ends[1]], count_include_pad=1, **attrs)
    div = np.outer(caffe_divisors(H, kh, ph, sh, oh), caffe_divisors(W, kw, pw, sw, ow))
    # A window wholly past the image sums to 0 (zero padding); any finite factor keeps it 0,
    # which is what minicaffe gives there (Caffe divides 0 by a size <= 0).
    factor = np.where(div > 0, (kh * kw) / np.maximum(div, 1), 0.0).astype(np.float32)
    x = ctx.graph.pad(x, [0, 0, ph, pw], [0, 0, ends[0], ends[1]], value=0.0,
                      name=ctx.hint(f"{what}/Pad"))
    y = ctx.node("AveragePool", [x], what=f"{what}/AveragePool", **attrs)
    if np.all(factor == 1):
        return ctx.node("Identity", [y], out=out, what=f"{what}/Identity")
    return ctx.node("Mul", [y, ctx.const(factor.reshape(1, 1, oh, ow), f"{what}_divisor_fix")],
                    out=out, what=f"{what}/divisor")


def _argmax_plane(ctx, indices, H, W):
    """Caffe's mask h * W + w (float) from MaxPool's flat indices into (N, C, H, W)."""
    plane = ctx.node("Mod", [indices, ctx.ints([H * W], "plane")], what="mask/plane")
    return ctx.node("Cast", [plane], out=ctx.top(1), to=1, what="mask")


@converter("Pooling")
def pooling(ctx):
    layer = ctx.layer
    x = ctx.bottoms[0]
    H, W = ctx.bottom_shapes[0].dims[2:]
    if layer.global_pooling:
        op = "GlobalMaxPool" if layer.method == "MAX" else "GlobalAveragePool"
        if len(ctx.top_shapes) == 2:
            raise ctx.error("the argmax top of a global MAX pooling is not exported")
        return [ctx.node(op, [x], out=ctx.top(0))]
    geometry = dict(kernel=(layer.kh, layer.kw), pad=(layer.ph, layer.pw),
                    stride=(layer.sh, layer.sw), out_size=(layer.oh, layer.ow), in_size=(H, W))
    if len(ctx.top_shapes) == 1:
        return [pool(ctx, x, layer.method, out=ctx.top(0), what="Pooling", **geometry)]
    # MAX with the argmax top: MaxPool's Indices output, which counts (N, C, H, W) positions of
    # the unpadded input, exists only when MaxPool itself pads (every window touches the image)
    # and no crop changed the width.
    plans = [_axis_plan(H, layer.kh, layer.ph, layer.sh, layer.oh),
             _axis_plan(W, layer.kw, layer.pw, layer.sw, layer.ow)]
    if not all(p[1] for p in plans) or any(p[0] < 0 for p in plans):
        raise ctx.error("the argmax top (top[1]) of a pooling whose windows leave the image or "
                        "skip its last rows has no ONNX equivalent; drop the second top")
    y, idx = ctx.node("MaxPool", [x], out=[ctx.top(0), ctx.graph.fresh(ctx.hint("indices"))],
                      kernel_shape=[layer.kh, layer.kw], strides=[layer.sh, layer.sw],
                      pads=[layer.ph, layer.pw, plans[0][0], plans[1][0]])
    return [y, _argmax_plane(ctx, idx, H, W)]


@converter("SPP")
def spp(ctx):
    """Each pyramid level is a Caffe pooling (kernel = stride = ceil(size / bins), Caffe's pad);
    levels are flattened per sample and concatenated, or the single level kept as it is."""
    layer = ctx.layer
    x = ctx.bottoms[0]
    H, W = ctx.bottom_shapes[0].dims[2:]
    method = ctx.param.spp_param.pool
    levels = []
    for level in range(ctx.param.spp_param.pyramid_height):
        kernel, pad = spp_level_geometry(level, H, W)
        size = pooled_shape(H, W, kernel, pad, kernel)
        single = ctx.param.spp_param.pyramid_height == 1
        y = pool(ctx, x, method, kernel, pad, kernel, size, (H, W),
                 out=ctx.top(0) if single else None, what=f"level{level}")
        if single:
            return [y]
        levels.append(ctx.node("Flatten", [y], axis=1, what=f"level{level}/Flatten"))
    assert layer.type == "SPP"
    return [ctx.node("Concat", levels, out=ctx.top(0), axis=1)]
