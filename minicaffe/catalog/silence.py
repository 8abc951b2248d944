"""Silence: consumes blobs nobody else reads, so they are not reported as net outputs."""
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Silence")
class Silence(Layer):
    """No tops; backward writes zero diffs (nothing downstream depends on these blobs).

    bottom[i]: any shapes; top: none.
    """

    min_bottoms = 1
    exact_tops = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def bind_forward(self, bottom, top, program):
        return True                            # nothing to compute

    def backward(self, top, propagate_down, bottom):
        for b, down in zip(bottom, propagate_down):
            if down:
                b.diff[...] = 0
