"""Convolution layer (Caffe's ConvolutionLayer), lowered to GEMMs a cache-sized block of images at a time."""
import numpy as np

from minicaffe import backend, fillers, ops
from minicaffe.blob import Blob
from minicaffe.catalog._spatial import pair
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.phase import phase_name

_CHUNK_BYTES = 1 << 20
_FORMATS = {"LOWERED_GEMM": "dense", "LOWERED_CCNMM": "compact", "LOWERED_CSRMM": "csr"}


@register_layer("Convolution")
class Convolution(Layer):
    """2-D convolution (cross-correlation) with groups, padding, stride and dilation.

    bottom[0]: (N, C, H, W); top[0]: (N, num_output, oh, ow) with
    oh = (H + 2 ph - (dh (kh - 1) + 1)) // sh + 1 (likewise ow).
    blobs[0]: weights (num_output, C/group, kh, kw); blobs[1]: bias (num_output,) if bias_term.

    y[n, m] = b[m] + W_g[m] @ im2col(x[n])_g, with the lowered weights of group g
    (num_output/group, C/group*kh*kw) (rows = filters, columns = shape fibres). The batch is
    lowered a chunk of images at a time, so the lowered block (C*kh*kw, n*oh*ow) stays in cache
    between the lowering and its GEMMs: a whole batch lowered at once is tens of MB (82 MB for
    CIFAR-10 quick's conv2), written and read back through main memory. Backward lowers each
    chunk again (cheap, in cache) for dW_g += dY_g @ cols_g^T, then dcols_g = W_g^T @ dY_g and
    dx = col2im(dcols). With several threads the batch is split by whole images, each thread
    with its own chunks and dW partial sum (ops.conv_forward_nchw / ops.conv_backward).

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
            self._out = None
            self._shape_key = key
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
        y = top[0].data.reshape(N, self.num_output, g.cols)
        bias = self.blobs[1].data if self.bias_term else None
        if self._sparse_mode():
            formats = self._weight_formats()
            if self.group == 1 and isinstance(formats[0], ops.CompactWeights):
                # Kept columns lowered, kept filters multiplied, the batch split by images.
                ops.conv_forward_nchw(x, g, formats[0], 1, bias, out=y, block_bytes=_CHUNK_BYTES)
                return
            # One call per group; ops.conv_forward lowers (kept columns only) by image blocks.
            if self._out is None:
                self._out = backend.xp_of(x).empty((self.num_output, N * g.cols), dtype=x.dtype)
            self._forward_sparse(x, self._out)
            self._store_top(self._out, y, 0, N)
            return
        w2d = self.blobs[0].data.reshape(self.num_output, -1)
        ops.conv_forward_nchw(x, g, w2d, self.group, bias, out=y, block_bytes=_CHUNK_BYTES)

    def bind_forward(self, bottom, top, program):
        """Dense weights, and compacted weights of one group (behind a guard that stops the
        run when the weights changed since their format was built); CSR and grouped sparse
        modes run `forward`."""
        x = bottom[0].data
        g = self.geom
        y = top[0].data.reshape(x.shape[0], self.num_output, g.cols)
        bias = self.blobs[1].data if self.bias_term else None
        if self._sparse_mode():
            formats = self._weight_formats()
            if self.group != 1 or not isinstance(formats[0], ops.CompactWeights):
                return False
            program.guard(self.blobs[0].data, self._formats_of)
            program.conv_forward_nchw(x, g, formats[0], 1, bias, y, block_bytes=_CHUNK_BYTES)
            return True
        w2d = self.blobs[0].data.reshape(self.num_output, -1)
        program.conv_forward_nchw(x, g, w2d, self.group, bias, y, block_bytes=_CHUNK_BYTES)
        return True

    def _store_top(self, out, y, n0, n):
        """GEMM output (M, n*P) -> top images n0..n0+n (n, M, P), fused with the bias add."""
        out3 = out.reshape(self.num_output, n, self.geom.cols).transpose(1, 0, 2)
        if self.bias_term:
            backend.xp_of(out).add(out3, self.blobs[1].data[:, None], out=y[n0:n0 + n])
        else:
            y[n0:n0 + n] = out3

    def _forward_sparse(self, x, out):
        g = self.geom
        mg, cg = self.num_output // self.group, self.channels // self.group
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
        """dW += dY lowered(x)^T and db += sum(dY) per group; dx = col2im(W^T dY) when asked
        (ops.conv_backward: a chunk of images lowered again at a time, the batch split over
        threads by images)."""
        g = self.geom
        x = bottom[0].data
        M = self.num_output
        dy = top[0].diff.reshape(x.shape[0], M, g.cols)
        w2d = self.blobs[0].data.reshape(M, -1)
        dw = self.blobs[0].diff.reshape(M, -1)
        db = self.blobs[1].diff if self.bias_term else None
        dx = bottom[0].diff if propagate_down[0] else None
        ops.conv_backward(x, g, w2d, dy, dw, self.group, db=db, dx=dx, block_bytes=_CHUNK_BYTES)
