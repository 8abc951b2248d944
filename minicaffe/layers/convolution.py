"""Convolution layer (Caffe's ConvolutionLayer), lowered to one GEMM per group for the batch."""
import numpy as np

from minicaffe import backend, fillers, ops
from minicaffe.blob import Blob
from minicaffe.layers._spatial import pair
from minicaffe.layers.base import Layer, register_layer
from minicaffe.phase import phase_name

_CHUNK_BYTES = 1 << 20
_FORMATS = {"LOWERED_GEMM": "dense", "LOWERED_CCNMM": "compact", "LOWERED_CSRMM": "csr"}


@register_layer("Convolution")
class Convolution(Layer):
    """2-D convolution (cross-correlation) with groups, padding, stride and dilation.

    bottom[0]: (N, C, H, W); top[0]: (N, num_output, oh, ow) with
    oh = (H + 2 ph - (dh (kh - 1) + 1)) // sh + 1 (likewise ow).
    blobs[0]: weights (num_output, C/group, kh, kw); blobs[1]: bias (num_output,) if bias_term.

    y[n, m] = b[m] + W_g[m] @ im2col(x[n])_g: the whole batch is lowered once into
    cols (C*kh*kw, N*oh*ow) and each group g is one GEMM of its lowered weights
    (num_output/group, C/group*kh*kw) (rows = filters, columns = shape fibres) with its
    C/group*kh*kw rows of cols. Backward: dW_g += dY_g @ cols_g^T (cols kept from forward),
    dcols_g = W_g^T @ dY_g and dx = col2im(dcols), the last two a cache-sized chunk of images
    at a time. All scratch buffers are allocated on the first reshape of a shape and reused.

    At TEST with conv_mode LOWERED_CCNMM / LOWERED_CSRMM the per-group weights are turned into
    compact / CSR formats (ops.make_weights) on the first forward, on `refresh_weights()` and
    whenever the weights changed since (checked by comparison, cheap next to the convolution).
    Raises LayerSetupError for a bad geometry, a group that does not divide the channels or
    num_output, or a bottom whose channels disagree with the weights.
    """

    exact_bottoms = exact_tops = 1

    # -- setup --------------------------------------------------------------------------------
    def setup(self, bottom, top):
        p = self.layer_param.convolution_param
        x = bottom[0]
        if x.ndim != 4:
            raise self.error("expects a 4-D bottom (N, C, H, W)", bottom)
        if p.axis not in (1, -3):
            raise self.error(f"axis={p.axis}: only channel axis 1 of (N, C, H, W) is supported", bottom)
        self.kh, self.kw = pair(self, bottom, p, "kernel", 0, repeated=True)
        self.ph, self.pw = pair(self, bottom, p, "pad", 0, repeated=True)
        self.sh, self.sw = pair(self, bottom, p, "stride", 1, repeated=True)
        self.dh, self.dw = pair(self, bottom, p, "dilation", 1, repeated=True)
        if self.kh <= 0 or self.kw <= 0:
            raise self.error(f"kernel size must be positive, got kernel_h={self.kh}, "
                             f"kernel_w={self.kw} (set kernel_size)", bottom)
        if self.sh <= 0 or self.sw <= 0:
            raise self.error(f"stride must be positive, got ({self.sh}, {self.sw})", bottom)
        if self.dh <= 0 or self.dw <= 0:
            raise self.error(f"dilation must be positive, got ({self.dh}, {self.dw})", bottom)
        self.num_output, self.group = int(p.num_output), int(p.group)
        if self.num_output <= 0:
            raise self.error("num_output must be given and positive", bottom)
        if self.group <= 0:
            raise self.error(f"group must be positive, got {self.group}", bottom)
        C = x.shape[1]
        if C % self.group:
            raise self.error(f"group={self.group} does not divide {C} input channels", bottom)
        if self.num_output % self.group:
            raise self.error(f"group={self.group} does not divide num_output={self.num_output}", bottom)
        self.channels = C
        self.bias_term = bool(p.bias_term)
        dtype = x.dtype
        weight = Blob((self.num_output, C // self.group, self.kh, self.kw), dtype=dtype, name="weight")
        fillers.fill(weight, p.weight_filler)
        self.blobs = [weight]
        if self.bias_term:
            bias = Blob((self.num_output,), dtype=dtype, name="bias")
            fillers.fill(bias, p.bias_filler)
            self.blobs.append(bias)
        self.conv_mode = p.conv_mode
        self._formats = None          # per-group weight formats for sparse TEST modes
        self._shape_key = None

    # -- shapes and buffers -------------------------------------------------------------------
    def reshape(self, bottom, top):
        x = bottom[0]
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise self.error(f"expects (N, {self.channels}, H, W) to match weights "
                             f"{tuple(self.blobs[0].shape)} with group={self.group}", bottom)
        N, C, H, W = x.shape
        key = (x.shape, x.dtype)
        if key != self._shape_key:
            g = ops.ConvGeometry(C, H, W, self.kh, self.kw, self.ph, self.pw, self.sh, self.sw,
                                 self.dh, self.dw)
            if g.oh <= 0 or g.ow <= 0:
                raise self.error(f"kernel ({self.kh}, {self.kw}) with dilation ({self.dh}, {self.dw}) "
                                 f"and pad ({self.ph}, {self.pw}) is larger than the {H}x{W} input",
                                 bottom)
            self.geom = g
            xp = backend.xp_of(x.data)
            P = N * g.cols
            # Scratch reused every iteration: lowered input, its gradient, GEMM output.
            self._cols = xp.empty((g.rows, P), dtype=x.dtype)
            self._dcols = None
            self._out = xp.empty((self.num_output, P), dtype=x.dtype)
            self._dy = None
            self._dyc = None
            # Images per chunk of the data-gradient path: its lowered gradient fits ~1 MiB.
            self._chunk = max(1, min(N, _CHUNK_BYTES // max(1, g.rows * g.cols * x.dtype.itemsize)))
            self._shape_key = key
            self._cols_valid = False
        top[0].reshape(N, self.num_output, self.geom.oh, self.geom.ow)

    def _sparse_mode(self):
        return phase_name(self.phase) == "TEST" and self.conv_mode != "LOWERED_GEMM"

    def refresh_weights(self):
        """Rebuild the compact / CSR weight formats from the current weights (after loading)."""
        self._formats = None

    def _weight_formats(self):
        """Per-group formats for the sparse TEST modes, rebuilt whenever the weights changed
        (a TEST net sharing weights with a training net sees every update)."""
        w = self.blobs[0].data
        if self._formats is not None and not backend.xp_of(w).array_equal(w, self._formats_of):
            self._formats = None
        if self._formats is None:
            mode = _FORMATS[self.conv_mode]
            self._formats = [ops.make_weights(np.ascontiguousarray(w2d), mode)
                             for w2d in self.lowered_weights()]
            self._formats_of = w.copy()
        return self._formats

    def lowered_weights(self, w=None):
        """Per-group lowered views (num_output/group, C/group*kh*kw) of the weights (or of `w`,
        e.g. the weight diff): rows are filters, columns are shape fibres."""
        w = self.blobs[0].data if w is None else w
        mg = self.num_output // self.group
        w2d = w.reshape(self.num_output, -1)
        return [w2d[g * mg:(g + 1) * mg] for g in range(self.group)]

    # -- forward ------------------------------------------------------------------------------
    def forward(self, bottom, top):
        x = bottom[0].data
        g = self.geom
        N = x.shape[0]
        mg, kg = self.num_output // self.group, g.rows // self.group
        out = self._out
        if self._sparse_mode():
            self._forward_sparse(x, out)
        else:
            ops.im2col_batch(x, g, out=self._cols)
            self._cols_valid = True
            for gi, w2d in enumerate(self.lowered_weights()):
                ops.gemm(w2d, self._cols[gi * kg:(gi + 1) * kg], out=out[gi * mg:(gi + 1) * mg])
        # (M, N*P) -> (N, M, P), fused with the bias add.
        y = top[0].data.reshape(N, self.num_output, g.cols)
        out3 = out.reshape(self.num_output, N, g.cols).transpose(1, 0, 2)
        if self.bias_term:
            backend.xp_of(x).add(out3, self.blobs[1].data[:, None], out=y)
        else:
            y[...] = out3

    def _forward_sparse(self, x, out):
        g = self.geom
        mg, cg = self.num_output // self.group, self.channels // self.group
        self._cols_valid = False
        for gi, weights in enumerate(self._weight_formats()):
            if self.group == 1:
                xg, geom_g = x, g
            else:
                xg = np.ascontiguousarray(x[:, gi * cg:(gi + 1) * cg])
                geom_g = ops.ConvGeometry(cg, g.H, g.W, g.kh, g.kw, g.ph, g.pw, g.sh, g.sw, g.dh, g.dw)
            # Lowering fused with the GEMM by image blocks; compact weights lower kept columns only.
            ops.conv_forward(xg, geom_g, weights, out=out[gi * mg:(gi + 1) * mg])

    # -- backward -----------------------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        g = self.geom
        x = bottom[0].data
        N = x.shape[0]
        xp = backend.xp_of(x)
        mg, kg = self.num_output // self.group, g.rows // self.group
        dy3 = top[0].diff.reshape(N, self.num_output, g.cols)
        if self.bias_term:
            self.blobs[1].diff[...] += dy3.sum(axis=(0, 2))
        if self._dy is None:
            self._dy = xp.empty((self.num_output, N * g.cols), dtype=x.dtype)
        dy = self._dy
        dy.reshape(self.num_output, N, g.cols)[...] = dy3.transpose(1, 0, 2)
        if not self._cols_valid:          # forward ran a sparse path: lower now
            ops.im2col_batch(x, g, out=self._cols)
            self._cols_valid = True
        cols = self._cols
        wdiff = self.blobs[0].diff.reshape(self.num_output, -1)
        for gi in range(self.group):
            rows, ks = slice(gi * mg, (gi + 1) * mg), slice(gi * kg, (gi + 1) * kg)
            ops.gemm(dy[rows], cols[ks], out=wdiff[rows], beta=1.0, trans_b=True)
        if not propagate_down[0]:
            return
        self._backward_data(dy3, bottom[0].diff, xp)

    def _backward_data(self, dy3, dx, xp):
        """dx = col2im(W^T dY), a few images at a time: a chunk's lowered gradient
        (C*kh*kw, n*oh*ow) stays in cache between the GEMM that writes it and col2im, which
        measured ~25% faster than one batch-sized matrix on CIFAR-10 shapes."""
        g = self.geom
        N, M, P = dy3.shape
        mg, kg = M // self.group, g.rows // self.group
        nc = self._chunk
        if self._dcols is None:
            self._dcols = xp.empty(g.rows * nc * P, dtype=dx.dtype)
            self._dyc = xp.empty(M * nc * P, dtype=dx.dtype)
        weights = self.lowered_weights()
        for n0 in range(0, N, nc):
            n = min(nc, N - n0)
            if n == 1:
                dyc = dy3[n0]                          # (M, P) already contiguous
            else:
                dyc = self._dyc[:M * n * P].reshape(M, n * P)
                dyc.reshape(M, n, P)[...] = dy3[n0:n0 + n].transpose(1, 0, 2)
            dcols = self._dcols[:g.rows * n * P].reshape(g.rows, n * P)
            for gi, w2d in enumerate(weights):
                rows, ks = slice(gi * mg, (gi + 1) * mg), slice(gi * kg, (gi + 1) * kg)
                ops.gemm(w2d, dyc[rows], out=dcols[ks], trans_a=True)
            ops.col2im_batch(dcols, g, n, out=dx[n0:n0 + n])
