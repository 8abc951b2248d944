"""Split: hands one blob to several consumers (the Net inserts it) and sums their diffs."""
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Split")
class Split(Layer):
    """top[i] = bottom[0] (shared data, no copy); d bottom = Σ_i d top[i].

    bottom[0]: any shape; top[i]: the same shape, sharing bottom's values.
    """

    exact_bottoms = 1
    min_tops = 1

    def reshape(self, bottom, top):
        for t in top:
            t.share_data(bottom[0])            # each top keeps a diff of its own

    def forward(self, bottom, top):
        pass                                   # tops already view bottom's data

    def bind_forward(self, bottom, top, program):
        return True                            # the tops view bottom's data (shared in reshape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        diff = bottom[0].diff
        diff[...] = top[0].diff
        for t in top[1:]:
            diff += t.diff
