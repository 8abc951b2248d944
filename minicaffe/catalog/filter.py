"""Filter layer (Caffe's FilterLayer): keep the samples whose selector is non-zero."""
from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Filter")
class Filter(Layer):
    """top[t] = the samples of bottom[t] (along axis 0) whose selector entry is non-zero.

    bottom[0..K-1]: (N, ...) blobs to filter; bottom[K] (the last): the selector, shape (N,) or
    (N, 1, ...) with every axis after the first of size 1. top[0..K-1]: (M, ...) with M the
    number of selected samples, in their original order. As in Caffe, the very first reshape
    (while a Net is being set up, before any data exists) sizes the tops for the whole batch.
    Backward: a selected sample's diff is its top row's diff, every other sample's diff is 0.
    No gradient reaches the selector.
    Raises LayerSetupError when the counts of tops and bottoms do not match (K tops for K + 1
    bottoms), the selector has a non-singleton trailing axis or batch sizes differ.
    """

    min_bottoms = 2
    min_tops = 1

    def setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            raise self.error(f"takes one top per filtered bottom: {len(bottom) - 1} top(s) for "
                             f"{len(bottom)} bottoms (the last is the selector), got {len(top)}",
                             bottom)
        self._first_reshape = True

    def reshape(self, bottom, top):
        selector = bottom[-1]
        if selector.ndim < 1 or any(d != 1 for d in selector.shape[1:]):
            raise self.error(f"the selector (last bottom) must be (N,) or (N, 1, ...), got "
                             f"{tuple(selector.shape)}", bottom)
        n = selector.shape[0]
        for b in bottom[:-1]:
            if b.ndim < 1 or b.shape[0] != n:
                raise self.error(f"every bottom must have the selector's {n} samples on axis 0",
                                 bottom)
        xp = backend.xp_of(selector.data)
        self._kept = xp.nonzero(selector.data.reshape(-1) != 0)[0]
        m = n if self._first_reshape else int(self._kept.shape[0])
        self._first_reshape = False
        for b, t in zip(bottom, top):
            t.reshape((m,) + tuple(b.shape[1:]))

    def forward(self, bottom, top):
        for b, t in zip(bottom, top):
            backend.xp_of(b.data).take(b.data, self._kept, axis=0, out=t.data)

    def allow_force_backward(self, bottom_index):
        return bottom_index != len(self.layer_param.bottom) - 1

    def backward(self, top, propagate_down, bottom):
        if propagate_down[-1]:
            raise self.error("cannot backpropagate to the selector (last bottom); set "
                             "propagate_down: false for it", bottom)
        for i, t in enumerate(top):
            if propagate_down[i]:
                dx = bottom[i].diff
                dx[...] = 0
                dx[self._kept] = t.diff
