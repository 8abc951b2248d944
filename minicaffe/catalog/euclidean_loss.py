"""EuclideanLoss: half the squared distance between two blobs, averaged over the batch."""
from minicaffe.catalog._loss import LossLayer
from minicaffe.catalog.base import register_layer


@register_layer("EuclideanLoss")
class EuclideanLoss(LossLayer):
    """loss = Σ (a - b)^2 / (2 N), N = a.shape[0].

    bottom[0], bottom[1]: the same count (a, b); top[0]: scalar. Gradients: ±(a - b) · w / N
    for a and b (both may be learned, unlike a label).
    """

    exact_bottoms = 2
    exact_tops = 1

    def allow_force_backward(self, bottom_index):
        return True

    def reshape(self, bottom, top):
        a, b = bottom
        if a.count != b.count or (a.ndim and b.ndim and a.shape[0] != b.shape[0]):
            raise self.error(f"inputs must have the same count and first dimension: "
                             f"{tuple(a.shape)} vs {tuple(b.shape)}", bottom)
        top[0].reshape(())

    def forward(self, bottom, top):
        a, b = bottom
        self._delta = a.data - b.data.reshape(a.shape)
        n = a.shape[0] if a.ndim else 1
        top[0].data[...] = (self._delta * self._delta).sum() / (2.0 * n)

    def backward(self, top, propagate_down, bottom):
        n = bottom[0].shape[0] if bottom[0].ndim else 1
        scale = self.loss_scale(top) / n
        for sign, blob, down in ((1.0, bottom[0], propagate_down[0]), (-1.0, bottom[1], propagate_down[1])):
            if down:
                blob.diff[...] = (sign * scale * self._delta).reshape(blob.shape)
