"""Layers with weights that multiply: Convolution, Deconvolution, Im2col, InnerProduct, Embed.

A Convolution in conv_mode LOWERED_CCNMM / LOWERED_CSRMM exports its weights as they are:
dense, the removed filters and shape fibres as zeros (ONNX has no structured-sparse
convolution); the export report counts what that costs (report.py).
"""
import numpy as np

from minicaffe.export.converters import converter


@converter("Convolution")
def convolution(ctx):
    """Conv with Caffe's weights (num_output, C/group, kh, kw), pads (ph, pw) on both sides,
    strides, dilations and group; the bias as Conv's third input."""
    c = ctx.layer
    inputs = [ctx.bottoms[0], ctx.const(ctx.weight(0), "weight")]
    if c.bias_term:
        inputs.append(ctx.const(ctx.weight(1), "bias"))
    return [ctx.node("Conv", inputs, out=ctx.top(0), kernel_shape=[c.kh, c.kw],
                     pads=[c.ph, c.pw, c.ph, c.pw], strides=[c.sh, c.sw],
                     dilations=[c.dh, c.dw], group=c.group)]


@converter("Deconvolution")
def deconvolution(ctx):
    """ConvTranspose: Caffe's deconvolution weights (C, num_output/group, kh, kw) are ONNX's
    layout; output size s (H - 1) + d (k - 1) + 1 - 2p in both."""
    c = ctx.layer
    inputs = [ctx.bottoms[0], ctx.const(ctx.weight(0), "weight")]
    if c.bias_term:
        inputs.append(ctx.const(ctx.weight(1), "bias"))
    return [ctx.node("ConvTranspose", inputs, out=ctx.top(0), kernel_shape=[c.kh, c.kw],
                     pads=[c.ph, c.pw, c.ph, c.pw], strides=[c.sh, c.sw],
                     dilations=[c.dh, c.dw], group=c.group)]


@converter("Im2col")
def im2col(ctx):
    """Caffe's lowering as a grouped convolution with one-hot filters: group c holds
    prod(kernel) filters, filter (i, j) picking tap (i, j) of channel c, so output channel
    c * kh * kw + i * kw + j is Caffe's row index."""
    layer = ctx.layer
    shape = ctx.bottom_shapes[0]
    if layer.channel_axis != 1:
        raise ctx.error(f"channel axis {layer.channel_axis}: ONNX's Conv wants the channels on "
                        "axis 1")
    C = shape[1]
    taps = int(np.prod(layer.kernel))
    eye = np.eye(taps, dtype=np.float32).reshape((taps, 1) + tuple(layer.kernel))
    weight = np.tile(eye, (C, 1) + (1,) * len(layer.kernel))
    return [ctx.node("Conv", [ctx.bottoms[0], ctx.const(weight, "one_hot")], out=ctx.top(0),
                     kernel_shape=list(layer.kernel), pads=list(layer.pad) * 2,
                     strides=list(layer.stride), dilations=list(layer.dilation), group=C)]


@converter("InnerProduct")
def inner_product(ctx):
    """y = x W^T + b on x flattened from `axis`: Flatten + Gemm for axis 1 (the usual case),
    else a Reshape to (d0, ..., d_{axis-1}, K), MatMul with W^T and Add."""
    layer = ctx.layer
    src, dst = ctx.bottom_shapes[0], ctx.top_shapes[0]
    w = ctx.weight(0)
    w_t = w if layer.transpose else w.T                     # (K, num_output)
    K = w_t.shape[0]
    x = ctx.bottoms[0]
    if layer.axis == 1:
        if src.ndim != 2:
            x = ctx.node("Flatten", [x], axis=1)
        inputs = [x, ctx.const(np.ascontiguousarray(w_t.T), "weight")]
        if layer.bias_term:
            inputs.append(ctx.const(ctx.weight(1), "bias"))
        return [ctx.node("Gemm", inputs, out=ctx.top(0), transB=1)]
    flat_dims = tuple(src.dims[:layer.axis]) + (K,)
    flat_probe = tuple(src.probe[:layer.axis]) + (K,)
    if src.ndim != layer.axis + 1:
        x = ctx.reshape(x, src, type(src)(flat_dims, flat_probe), what="flatten")
    if not layer.bias_term:
        return [ctx.node("MatMul", [x, ctx.const(w_t, "weight")], out=ctx.top(0))]
    y = ctx.node("MatMul", [x, ctx.const(w_t, "weight")])
    assert dst.ndim == layer.axis + 1
    return [ctx.node("Add", [y, ctx.const(ctx.weight(1), "bias")], out=ctx.top(0))]


@converter("Embed")
def embed(ctx):
    """Gather rows of W (input_dim, num_output) at the (whole-number) inputs, plus the bias.
    Caffe checks the indices only in debug builds; ONNX Runtime rejects one out of range."""
    idx = ctx.node("Cast", [ctx.bottoms[0]], to=7, what="index")       # 7 = INT64
    w = ctx.const(ctx.weight(0), "weight")
    if not ctx.layer.bias_term:
        return [ctx.node("Gather", [w, idx], out=ctx.top(0), axis=0)]
    rows = ctx.node("Gather", [w, idx], axis=0)
    return [ctx.node("Add", [rows, ctx.const(ctx.weight(1), "bias")], out=ctx.top(0))]
