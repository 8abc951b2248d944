"""Tile layer (Caffe's TileLayer): repeat a blob along one axis."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.flatten import canonical_axis


@register_layer("Tile")
class Tile(Layer):
    """top = `tiles` copies of bottom laid end to end along `axis` (NumPy's tile with reps 1
    except at axis): top[..., t * D + d, ...] = bottom[..., d, ...], D = bottom.shape[axis].

    tile_param: axis (1), tiles (required, > 0). Backward sums the copies' diffs.
    Raises LayerSetupError for a missing or non-positive `tiles` or an axis out of range.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.tile_param
        if not p.has("tiles"):
            raise self.error("tile_param.tiles (the number of copies) must be given", bottom,
                             at=(p, "tiles"))
        if p.tiles <= 0:
            raise self.error(f"tile_param.tiles = {p.tiles} must be positive", bottom,
                             at=(p, "tiles"))
        self.tiles = int(p.tiles)

    def reshape(self, bottom, top):
        shape = tuple(bottom[0].shape)
        self.axis = canonical_axis(self, int(self.layer_param.tile_param.axis), len(shape), bottom)
        a = self.axis
        self._dims = (int(_prod(shape[:a])), int(_prod(shape[a:])))
        top[0].reshape(shape[:a] + (shape[a] * self.tiles,) + shape[a + 1:])

    def forward(self, bottom, top):
        outer, inner = self._dims
        x = bottom[0].data.reshape(outer, 1, inner)
        y = top[0].data.reshape(outer, self.tiles, inner)
        y[...] = x

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        outer, inner = self._dims
        dy = top[0].diff.reshape(outer, self.tiles, inner)
        dx = bottom[0].diff.reshape(outer, inner)
        backend.xp_of(dy).sum(dy, axis=1, out=dx)


def _prod(dims):
    n = 1
    for d in dims:
        n *= d
    return n
