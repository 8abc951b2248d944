"""Deconvolution layer (Caffe's DeconvolutionLayer): the transpose of a convolution."""
import numpy as np

from minicaffe import fillers, ops
from minicaffe.blob import Blob
from minicaffe.catalog._spatial import conv_fields
from minicaffe.catalog.base import Layer, register_layer

_CHUNK_BYTES = 1 << 20   # lowered output per chunk of images: stays in the core's L2 cache


@register_layer("Deconvolution")
class Deconvolution(Layer):
    """Transposed 2-D convolution ("fractionally strided"), with groups, pad, stride, dilation.

    bottom[0]: (N, C, H, W); top[0]: (N, num_output, oh, ow) with Caffe's output size
    oh = sh (H - 1) + dh (kh - 1) + 1 - 2 ph (likewise ow).
    blobs[0]: weights (C, num_output/group, kh, kw), Caffe's layout (input channels first);
    blobs[1]: bias (num_output,) if bias_term. Parameters come from `convolution_param`.

    The forward is the data gradient of the convolution that maps (num_output, oh, ow) to
    (C, H, W) with the same weights, seen as lowered weights W_g (C/group, num_output/group*kh*kw)
    per group g: y = col2im(W_g^T x_g) + b. So backward is that convolution's forward:
    dx = conv(dy) (ops.conv_forward_nchw), dW_g += x_g lowered(dy)_g^T (ops.conv_backward with
    the roles of data and gradient swapped), db += sum of dy over N, oh, ow.
    `conv_mode` is ignored: the deconvolution always runs dense (as in the SSL fork).
    Raises LayerSetupError for a bad geometry, a group that does not divide C or num_output,
    an output of size <= 0, or a bottom whose channels disagree with the weights.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.convolution_param
        x = bottom[0]
        if x.ndim != 4:
            raise self.error("expects a 4-D bottom (N, C, H, W)", bottom)
        if p.axis not in (1, -3):
            raise self.error(f"axis={p.axis}: only channel axis 1 of (N, C, H, W) is supported",
                             bottom, at=(p, "axis"))
        (self.kh, self.kw), (self.ph, self.pw), (self.sh, self.sw), (self.dh, self.dw) = \
            conv_fields(self, bottom, p)
        self.num_output, self.group = int(p.num_output), int(p.group)
        if self.num_output <= 0:
            raise self.error("num_output must be given and positive", bottom,
                             at=(p, "num_output"))
        if self.group <= 0:
            raise self.error(f"group must be positive, got {self.group}", bottom, at=(p, "group"))
        C = x.shape[1]
        if C % self.group:
            raise self.error(f"group={self.group} does not divide {C} input channels", bottom,
                             at=(p, "group"))
        if self.num_output % self.group:
            raise self.error(f"group={self.group} does not divide num_output={self.num_output}",
                             bottom, at=(p, "group"))
        self.channels = C
        self.bias_term = bool(p.bias_term)
        weight = Blob((C, self.num_output // self.group, self.kh, self.kw), dtype=x.dtype,
                      name="weight")
        fillers.fill(weight, p.weight_filler)
        self.blobs = [weight]
        if self.bias_term:
            bias = Blob((self.num_output,), dtype=x.dtype, name="bias")
            fillers.fill(bias, p.bias_filler)
            self.blobs.append(bias)
        self._shape_key = None

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise self.error(f"expects (N, {self.channels}, H, W) to match weights "
                             f"{tuple(self.blobs[0].shape)}", bottom)
        N, C, H, W = x.shape
        if x.shape != self._shape_key:
            oh = self.sh * (H - 1) + self.dh * (self.kh - 1) + 1 - 2 * self.ph
            ow = self.sw * (W - 1) + self.dw * (self.kw - 1) + 1 - 2 * self.pw
            if oh <= 0 or ow <= 0:
                raise self.error(f"output size {oh}x{ow} = stride*(in-1) + dilation*(kernel-1)+1 "
                                 f"- 2*pad is not positive (pad ({self.ph}, {self.pw}) too large "
                                 f"for the {H}x{W} input)", bottom)
            # The convolution this layer transposes: (num_output, oh, ow) -> (C, H, W).
            g = ops.ConvGeometry(self.num_output, oh, ow, self.kh, self.kw, self.ph, self.pw,
                                 self.sh, self.sw, self.dh, self.dw)
            assert (g.oh, g.ow) == (H, W), (g.oh, g.ow, H, W)
            self.geom = g
            self._shape_key = x.shape
        top[0].reshape(N, self.num_output, self.geom.H, self.geom.W)

    def _chunk(self, N, dtype):
        per_image = self.geom.rows * self.geom.cols * np.dtype(dtype).itemsize
        return max(1, min(N, _CHUNK_BYTES // per_image))

    def forward(self, bottom, top):
        x, g, G = bottom[0].data, self.geom, self.group
        N, C, P = x.shape[0], self.channels, g.cols
        cg, kg = C // G, g.rows // G
        w2d = self.blobs[0].data.reshape(C, -1)          # (C, num_output/group*kh*kw)
        y = top[0].data
        per = self._chunk(N, x.dtype)
        cols = np.empty((g.rows, per * P), dtype=x.dtype)
        for n0 in range(0, N, per):
            n = min(per, N - n0)
            block = cols[:, :n * P] if n == per else np.empty((g.rows, n * P), dtype=x.dtype)
            xs = x[n0:n0 + n].reshape(n, C, P)
            for gi in range(G):
                # x_g as (C/group, n*P): images side by side, as im2col_batch lays out columns
                xg = np.ascontiguousarray(xs[:, gi * cg:(gi + 1) * cg].transpose(1, 0, 2))
                ops.gemm(w2d[gi * cg:(gi + 1) * cg], xg.reshape(cg, n * P),
                         out=block[gi * kg:(gi + 1) * kg], trans_a=True)
            ops.col2im_batch(np.ascontiguousarray(block), g, n, out=y[n0:n0 + n])
        if self.bias_term:
            y += self.blobs[1].data[:, None, None]

    def backward(self, top, propagate_down, bottom):
        x, g = bottom[0].data, self.geom
        N, C = x.shape[0], self.channels
        dy = top[0].diff                                  # the transposed convolution's input
        w2d = self.blobs[0].data.reshape(C, -1)
        if self.bias_term and self.param_needs_diff(1):
            self.blobs[1].diff[...] += dy.sum(axis=(0, 2, 3))
        if self.param_needs_diff(0):
            ops.conv_backward(dy, g, w2d, x.reshape(N, C, g.cols),
                              self.blobs[0].diff.reshape(C, -1), self.group,
                              block_bytes=_CHUNK_BYTES)
        if propagate_down[0]:
            ops.conv_forward_nchw(dy, g, w2d, self.group,
                                  out=bottom[0].diff.reshape(N, C, g.cols),
                                  block_bytes=_CHUNK_BYTES)
