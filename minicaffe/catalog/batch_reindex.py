"""BatchReindex layer (Caffe's BatchReindexLayer): pick and reorder samples by index."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("BatchReindex")
class BatchReindex(Layer):
    """top[0][i] = bottom[0][idx[i]] along axis 0.

    bottom[0]: (N, ...); bottom[1]: idx, a 1-D blob of M whole numbers in [0, N) (repeats
    allowed); top[0]: (M, ...). Backward accumulates: dL/dx[n] = sum of dL/dy[i] over the
    i with idx[i] == n (0 for samples never picked). No gradient reaches the indices.
    Raises LayerSetupError for a non-1-D index blob or an index that is not a whole number in
    range.
    """

    exact_bottoms = 2
    exact_tops = 1

    def reshape(self, bottom, top):
        if bottom[1].ndim != 1:
            raise self.error(f"the index bottom must be 1-D, got shape {tuple(bottom[1].shape)}",
                             bottom)
        if bottom[0].ndim < 1:
            raise self.error("expects a bottom with a batch axis (N, ...)", bottom)
        top[0].reshape((bottom[1].shape[0],) + tuple(bottom[0].shape[1:]))

    def _indices(self, bottom):
        idx = bottom[1].data
        xp = backend.xp_of(idx)
        n = bottom[0].shape[0]
        as_int = idx.astype(xp.int64)
        bad = (as_int != idx) | (as_int < 0) | (as_int >= n)
        if bool(bad.any()):
            i = int(backend.asnumpy(xp.nonzero(bad)[0])[0])
            raise self.error(f"index {float(idx[i]):g} at position {i} is not a whole number in "
                             f"[0, {n})", bottom)
        return as_int

    def forward(self, bottom, top):
        self._idx = self._indices(bottom)
        xp = backend.xp_of(bottom[0].data)
        xp.take(bottom[0].data, self._idx, axis=0, out=top[0].data)

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    def backward(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            raise self.error("cannot backpropagate to the indices (bottom 1); set "
                             "propagate_down: false for it", bottom)
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        dx[...] = 0
        backend.xp_of(dx).add.at(dx, self._idx, top[0].diff)
