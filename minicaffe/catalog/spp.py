"""SPP layer (Caffe's SPPLayer): spatial pyramid pooling into a fixed-length vector."""
import math

import numpy as np

from minicaffe import backend, ops
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.pooling import pooled_shape


def spp_level_geometry(level, height, width):
    """(kernel, pad) pairs (h, w) of pyramid level `level` (2^level bins per axis), as Caffe
    picks them: kernel = ceil(size / bins), pad = (kernel * bins - size + 1) // 2; the stride
    equals the kernel."""
    bins = 2 ** level
    out = []
    for size in (height, width):
        kernel = math.ceil(size / bins)
        out.append((kernel, (kernel * bins - size + 1) // 2))
    (kh, ph), (kw, pw) = out
    return (kh, kw), (ph, pw)


@register_layer("SPP")
class SPP(Layer):
    """Pools bottom (N, C, H, W) at `spp_param.pyramid_height` levels; level l divides each
    axis into 2^l bins (kernel, pad and stride from spp_level_geometry, output sizes by the
    Pooling layer's rules) with `spp_param.pool` MAX (default) or AVE.

    top[0]: (N, sum over levels of C * oh_l * ow_l), each level flattened per sample (channel,
    row, column) and the levels concatenated from level 0 on; with pyramid_height 1 the single
    level's (N, C, oh, ow) is the top unflattened, as in Caffe.
    Backward: the sum of the levels' pooling gradients.
    Raises LayerSetupError for a missing pyramid_height, STOCHASTIC pooling (Caffe runs it on
    GPU only), a bottom that is not 4-D, and a level whose padding reaches its kernel (Caffe's
    Pooling check; happens when the image is smaller than about half the bin count).
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.spp_param
        if p.pyramid_height < 1:
            raise self.error(f"spp_param.pyramid_height = {p.pyramid_height} must be at least 1",
                             bottom, at=(p, "pyramid_height"))
        if p.pool == "STOCHASTIC":
            raise self.error("spp_param.pool STOCHASTIC is not supported (Caffe implements it on "
                             "GPU only); use MAX or AVE", bottom, at=(p, "pool"))
        self._key = None
        self._masks = []

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.ndim != 4:
            raise self.error("expects a 4-D bottom (N, C, H, W)", bottom)
        N, C, H, W = x.shape
        if self._key != (H, W):
            levels = []
            for level in range(self.layer_param.spp_param.pyramid_height):
                (kh, kw), (ph, pw) = spp_level_geometry(level, H, W)
                if ph >= kh or pw >= kw:
                    raise self.error(f"pyramid level {level} ({2 ** level} bins) on a {H}x{W} "
                                     f"input needs pad ({ph}, {pw}) >= kernel ({kh}, {kw}); "
                                     f"lower pyramid_height or enlarge the input", bottom)
                oh, ow = pooled_shape(H, W, (kh, kw), (ph, pw), (kh, kw))
                levels.append(((kh, kw), (ph, pw), (kh, kw), (oh, ow)))
            self._levels = levels
            self._key = (H, W)
        if len(self._levels) == 1:
            oh, ow = self._levels[0][3]
            top[0].reshape(N, C, oh, ow)
        else:
            top[0].reshape(N, sum(C * oh * ow for *_, (oh, ow) in self._levels))

    def forward(self, bottom, top):
        x = bottom[0].data
        N, C = x.shape[:2]
        xp = backend.xp_of(x)
        y = top[0].data.reshape(N, -1)
        self._masks = []
        offset = 0
        for kernel, pad, stride, size in self._levels:
            if self.layer_param.spp_param.pool == "AVE":
                out = ops.ave_pool_forward(x, kernel, pad, stride, size)
                self._masks.append(None)
            else:
                mask = np.empty((N, C) + size, dtype=np.int32)
                out, _ = ops.max_pool_forward(x, kernel, pad, stride, size, mask=mask)
                self._masks.append(mask)
            width = C * size[0] * size[1]
            y[:, offset:offset + width] = xp.reshape(out, (N, width))
            offset += width

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        N, C, H, W = dx.shape
        dy_all = top[0].diff.reshape(N, -1)
        xp = backend.xp_of(dx)
        dx[...] = 0
        scratch = xp.empty_like(dx)
        offset = 0
        for (kernel, pad, stride, size), mask in zip(self._levels, self._masks):
            width = C * size[0] * size[1]
            dy = xp.ascontiguousarray(dy_all[:, offset:offset + width]).reshape((N, C) + size)
            offset += width
            if mask is None:
                ops.ave_pool_backward(dy, (H, W), kernel, pad, stride, dx=scratch)
            else:
                ops.max_pool_backward(dy, mask, (H, W), kernel, pad, stride, dx=scratch)
            dx += scratch
