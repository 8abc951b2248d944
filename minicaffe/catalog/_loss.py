"""LossLayer: shared checks of Caffe's loss layers (two bottoms, a scalar top 0)."""
from minicaffe.catalog.base import Layer


class LossLayer(Layer):
    """Base of loss layers: bottoms (predictions, label[, ...]), top[0] a scalar loss whose
    loss_weight defaults to 1. Backward scales by `top[0].diff` (the Net seeds it with the
    loss weight)."""

    min_bottoms = 2
    is_loss = True

    def check_counts(self, bottom, top):
        if len(bottom) < 2:
            names = ", ".join(f"'{b}'" for b in self.layer_param.bottom) or "none"
            raise self.error(f"loss layer without label: needs 2 bottoms (predictions, label), "
                             f"got {len(bottom)} ({names})", bottom)
        super().check_counts(bottom, top)

    def allow_force_backward(self, bottom_index):
        return bottom_index == 0

    @staticmethod
    def loss_scale(top):
        """The loss weight seeded into the scalar top diff."""
        return float(top[0].diff.reshape(-1)[0])
