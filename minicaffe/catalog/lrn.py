"""LRN layer (Caffe's LRNLayer): local response normalisation."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


def _window_sum(a, n, axis, out):
    """out = sum of `a` over a centred window of n (odd) along `axis`, zero outside."""
    half = (n - 1) // 2
    out[...] = a
    size = a.shape[axis]
    for d in range(1, half + 1):
        if d >= size:
            break
        lo = [slice(None)] * a.ndim
        hi = [slice(None)] * a.ndim
        lo[axis], hi[axis] = slice(0, size - d), slice(d, size)
        out[tuple(lo)] += a[tuple(hi)]        # neighbour d after
        out[tuple(hi)] += a[tuple(lo)]        # neighbour d before
    return out


@register_layer("LRN")
class LRN(Layer):
    """Local response normalisation, Caffe's formula.

    ACROSS_CHANNELS: s = k + alpha/n * sum_{c' in [c-(n-1)/2, c+(n-1)/2]} x[c']^2,
    WITHIN_CHANNEL:  s = 1 + alpha/n^2 * sum over the n x n window (zero padded) of x^2
    (k is ignored there, as in Caffe); y = x * s^-beta.
    Backward: dx = dy * s^-beta - (2 alpha beta / size) * x * window_sum(dy * y / s), with
    size = n (across) or n^2 (within); the window is symmetric, so it is its own adjoint.
    bottom[0]: (N, C, H, W); top[0]: same. Not in place (backward needs x and y).
    Raises LayerSetupError for an even local_size or a non-4-D bottom.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.lrn_param
        if p.local_size % 2 == 0 or p.local_size <= 0:
            raise self.error(f"local_size must be odd and positive, got {p.local_size}", bottom)
        if p.norm_region not in ("ACROSS_CHANNELS", "WITHIN_CHANNEL"):
            raise self.error(f"unknown norm_region {p.norm_region!r}", bottom)
        if top[0] is bottom[0]:
            raise self.error("cannot run in place; backward needs the input and the output", bottom)
        self.n = int(p.local_size)
        self.across = p.norm_region == "ACROSS_CHANNELS"
        self.alpha, self.beta = float(p.alpha), float(p.beta)
        self.k = float(p.k) if self.across else 1.0
        self._key = None

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.ndim != 4:
            raise self.error("expects a 4-D bottom (N, C, H, W)", bottom)
        if self._key != (x.shape, x.dtype):
            xp = backend.xp_of(x.data)
            self._scale = xp.empty(x.shape, dtype=x.dtype)
            self._tmp = xp.empty(x.shape, dtype=x.dtype)
            self._tmp2 = xp.empty(x.shape, dtype=x.dtype)
            self._acc = xp.empty(x.shape, dtype=x.dtype)
            self._key = (x.shape, x.dtype)
        top[0].reshape(x.shape)

    def _sum(self, a, out):
        """Window sum of `a` into `out` (three distinct buffers: a, out, self._tmp2)."""
        if self.across:
            return _window_sum(a, self.n, 1, out)
        _window_sum(a, self.n, 2, self._tmp2)
        return _window_sum(self._tmp2, self.n, 3, out)

    def _size(self):
        return self.n if self.across else self.n * self.n

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        xp = backend.xp_of(x)
        t = x.dtype.type
        xp.multiply(x, x, out=self._tmp)
        s = self._sum(self._tmp, self._scale)
        s *= t(self.alpha / self._size())
        s += t(self.k)
        xp.power(s, t(-self.beta), out=y)
        y *= x

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, y, dy, dx = bottom[0].data, top[0].data, top[0].diff, bottom[0].diff
        xp = backend.xp_of(x)
        t = x.dtype.type
        s = self._scale
        # ratio = dy * y / s, summed over the window
        xp.multiply(dy, y, out=self._tmp)
        self._tmp /= s
        acc = self._sum(self._tmp, self._acc)
        acc *= x
        acc *= t(2.0 * self.alpha * self.beta / self._size())
        xp.power(s, t(-self.beta), out=dx)
        dx *= dy
        dx -= acc
