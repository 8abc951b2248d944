"""MVN layer (Caffe's MVNLayer): mean-variance normalization per sample (and channel)."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


def legacy_4d(layer, bottom):
    """(num, channels, height, width) of bottom[0] as Caffe's legacy accessors read it (1 for
    missing axes); LayerSetupError for more than 4 axes, where Caffe's accessors abort."""
    shape = tuple(bottom[0].shape)
    if len(shape) > 4:
        raise layer.error(f"takes a blob of at most 4 axes (num, channels, height, width), got "
                          f"{len(shape)}", bottom)
    return shape + (1,) * (4 - len(shape))


@register_layer("MVN")
class MVN(Layer):
    """y = (x - mean) / (std + eps), mean and std (biased, 1/D) over each group of D values.

    mvn_param: normalize_variance (true; false gives y = x - mean), across_channels (false:
    a group is one (n, c) plane; true: a whole sample n), eps (1e-9, added to the standard
    deviation, not to the variance).
    bottom[0]: up to 4 axes; top[0]: its legacy 4-D shape (num, channels, height, width), as
    Caffe reshapes it ((N, C) gives (N, C, 1, 1)). Safe in place.
    Backward, with s = std + eps: dx = (dy - mean(dy) - y * mean(dy * y) * s / std) / s — the
    exact gradient. Caffe leaves out the factor s / std (its gradient is exact only for eps = 0;
    the two differ by eps / std relative, 1e-9 / std with the default eps). Without
    normalize_variance dx = dy - mean(dy).
    """

    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        n, c, h, w = legacy_4d(self, bottom)
        across = self.layer_param.mvn_param.across_channels
        self._groups = n if across else n * c
        top[0].reshape(n, c, h, w)

    def forward(self, bottom, top):
        p = self.layer_param.mvn_param
        x = bottom[0].data.reshape(self._groups, -1)
        y = top[0].data.reshape(self._groups, -1)
        xp = backend.xp_of(x)
        mean = x.mean(axis=1, keepdims=True)
        xp.subtract(x, mean, out=y)
        if not p.normalize_variance:
            return
        std = xp.sqrt((y * y).mean(axis=1, keepdims=True))
        self._std = std
        self._s = std + x.dtype.type(p.eps)
        y /= self._s

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        p = self.layer_param.mvn_param
        dy = top[0].diff.reshape(self._groups, -1)
        dx = bottom[0].diff.reshape(self._groups, -1)
        if not p.normalize_variance:
            dx[...] = dy - dy.mean(axis=1, keepdims=True)
            return
        y = top[0].data.reshape(self._groups, -1)
        xp = backend.xp_of(y)
        # s / std; where std is 0, y is 0 too and the term vanishes.
        ratio = xp.where(self._std > 0, self._s / xp.where(self._std > 0, self._std, 1), 1)
        proj = (dy * y).mean(axis=1, keepdims=True) * ratio
        g = dy - dy.mean(axis=1, keepdims=True) - y * proj
        g /= self._s
        dx[...] = g
