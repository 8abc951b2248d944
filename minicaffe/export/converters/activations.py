"""Elementwise layers: ReLU, PReLU, ELU, Sigmoid, TanH, AbsVal, BNLL, Power, Exp, Log, Clip,
Swish, Threshold."""
import numpy as np

from minicaffe.export.converters import converter


def _unary(op, **attrs):
    def convert(ctx):
        return [ctx.node(op, [ctx.bottoms[0]], out=ctx.top(0), **attrs)]
    return convert


converter("Sigmoid")(_unary("Sigmoid"))
converter("TanH")(_unary("Tanh"))
converter("AbsVal")(_unary("Abs"))
# BNLL: log(1 + exp(x)) is Softplus; ONNX Runtime evaluates it without overflow for large x.
converter("BNLL")(_unary("Softplus"))


@converter("ReLU")
def relu(ctx):
    """ReLU, or LeakyRelu with Caffe's negative_slope."""
    slope = float(ctx.param.relu_param.negative_slope)
    if slope == 0:
        return [ctx.node("Relu", [ctx.bottoms[0]], out=ctx.top(0))]
    return [ctx.node("LeakyRelu", [ctx.bottoms[0]], out=ctx.top(0), alpha=slope)]


@converter("ELU")
def elu(ctx):
    return [ctx.node("Elu", [ctx.bottoms[0]], out=ctx.top(0),
                     alpha=float(ctx.param.elu_param.alpha))]


@converter("PReLU")
def prelu(ctx):
    """PRelu with the slopes shaped (C, 1, ..., 1) so they broadcast over axis 1 (ONNX
    broadcasts the slope from the right); a channel-shared slope is a scalar."""
    a = ctx.weight(0)
    ndim = ctx.bottom_shapes[0].ndim
    slope = a.reshape(()) if ctx.layer.channel_shared else a.reshape((-1,) + (1,) * (ndim - 2))
    return [ctx.node("PRelu", [ctx.bottoms[0], ctx.const(slope, "slope")], out=ctx.top(0))]


def _affine(ctx, x, scale, shift, out=None):
    """shift + scale * x, leaving out a multiplication by 1 and an addition of 0; `out` names
    the last node's output (x itself comes back when there is nothing to do)."""
    if scale != 1:
        x = ctx.node("Mul", [x, ctx.scalar(scale, "scale")], out=out if shift == 0 else None,
                     what="scale")
    if shift != 0:
        x = ctx.node("Add", [x, ctx.scalar(shift, "shift")], out=out, what="shift")
    return x


@converter("Power")
def power(ctx):
    """(shift + scale x)^power; a constant when power * scale == 0, as Caffe computes it
    (whatever x holds, NaN included)."""
    p = ctx.param.power_param
    x = ctx.bottoms[0]
    if p.power * p.scale == 0:
        value = 1.0 if p.power == 0 else float(p.shift) ** float(p.power)
        shape = ctx.node("Shape", [x])
        filler = ctx.graph.onnx.numpy_helper.from_array(np.array([value], dtype=np.float32),
                                                        "value")
        return [ctx.node("ConstantOfShape", [shape], out=ctx.top(0), value=filler)]
    if p.power == 1:
        if p.scale == 1 and p.shift == 0:
            return [ctx.node("Identity", [x], out=ctx.top(0))]
        return [_affine(ctx, x, float(p.scale), float(p.shift), out=ctx.top(0))]
    base = _affine(ctx, x, float(p.scale), float(p.shift))
    if p.power == 2:
        return [ctx.node("Mul", [base, base], out=ctx.top(0), what="square")]
    return [ctx.node("Pow", [base, ctx.scalar(p.power, "power")], out=ctx.top(0))]


@converter("Exp")
def exp(ctx):
    """base^(shift + scale x) = base^shift * exp(ln(base) scale x), as Caffe computes it."""
    layer = ctx.layer
    x = ctx.bottoms[0]
    if layer.inner_scale != 1:
        x = ctx.node("Mul", [x, ctx.scalar(layer.inner_scale, "inner_scale")], what="inner")
    if layer.outer_scale == 1:
        return [ctx.node("Exp", [x], out=ctx.top(0))]
    e = ctx.node("Exp", [x])
    return [ctx.node("Mul", [e, ctx.scalar(layer.outer_scale, "outer_scale")], out=ctx.top(0),
                     what="outer")]


@converter("Log")
def log(ctx):
    """log(shift + scale x) / ln(base)."""
    p = ctx.param.log_param
    x = _affine(ctx, ctx.bottoms[0], float(p.scale), float(p.shift))
    if ctx.layer.log_base == 1:
        return [ctx.node("Log", [x], out=ctx.top(0))]
    y = ctx.node("Log", [x])
    return [ctx.node("Mul", [y, ctx.scalar(1.0 / ctx.layer.log_base, "inv_log_base")],
                     out=ctx.top(0), what="base")]


@converter("Clip")
def clip(ctx):
    p = ctx.param.clip_param
    return [ctx.graph.clip(ctx.bottoms[0], float(p.min), float(p.max), out=ctx.top(0),
                           name=ctx.hint("Clip"))]


@converter("Swish")
def swish(ctx):
    """x * sigmoid(beta x)."""
    x = ctx.bottoms[0]
    beta = float(ctx.param.swish_param.beta)
    z = x if beta == 1 else ctx.node("Mul", [x, ctx.scalar(beta, "beta")], what="beta")
    s = ctx.node("Sigmoid", [z])
    return [ctx.node("Mul", [x, s], out=ctx.top(0))]


@converter("Threshold")
def threshold(ctx):
    """1 where x > threshold (strictly), else 0."""
    t = float(ctx.param.threshold_param.threshold)
    above = ctx.node("Greater", [ctx.bottoms[0], ctx.scalar(t, "threshold")])
    return [ctx.node("Cast", [above], out=ctx.top(0), to=1)]        # 1 = FLOAT

