"""SigmoidCrossEntropyLoss layer (Caffe's SigmoidCrossEntropyLossLayer)."""
from minicaffe import backend
from minicaffe.catalog._loss import LossLayer
from minicaffe.catalog.base import register_layer
from minicaffe.catalog.softmax_with_loss import loss_normalizer


@register_layer("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(LossLayer):
    """loss = -1/norm * sum_i [t_i log s(x_i) + (1 - t_i) log(1 - s(x_i))], s the logistic
    function, computed stably as x (t - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0])).

    bottom[0]: scores x, any shape (N, ...); bottom[1]: targets t in [0, 1], the same count.
    loss_param: ignore_label (entries whose int(t) equals it are skipped), normalization
    (default BATCH_SIZE here, unlike SoftmaxWithLoss: N; VALID: non-ignored entries; FULL: all
    entries; NONE: 1; legacy normalize true → VALID, false → BATCH_SIZE).
    Backward: dL/dx = w/norm * (s(x) - t), 0 for ignored entries. Caffe refuses a gradient for
    the targets, and so does this layer.
    Raises LayerSetupError when the counts differ or the first axes differ.
    """

    exact_bottoms = 2
    exact_tops = 1

    def reshape(self, bottom, top):
        x, t = bottom
        if x.ndim < 1 or t.ndim < 1 or x.shape[0] != t.shape[0] or x.count != t.count:
            raise self.error(f"scores and targets must have the same count and first axis: "
                             f"{tuple(x.shape)} vs {tuple(t.shape)}", bottom)
        top[0].reshape(())

    def forward(self, bottom, top):
        x, t = bottom[0].data, bottom[1].data.reshape(bottom[0].shape)
        xp = backend.xp_of(x)
        p = self.layer_param.loss_param
        if p.has("ignore_label"):
            self._valid = t.astype(xp.int64) != p.ignore_label
        else:
            self._valid = None
        pos = (x >= 0).astype(x.dtype)
        per = x * (t - pos) - xp.log1p(xp.exp(x - 2 * x * pos))
        if self._valid is not None:
            per = per * self._valid
            valid = int(self._valid.sum())
        else:
            valid = x.size
        n = x.shape[0]
        self._norm = loss_normalizer(p, n, x.size // n if n else 0, valid, default="BATCH_SIZE")
        top[0].data[...] = -per.sum() / self._norm

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the targets (bottom 1); set "
                             "propagate_down: false for it", bottom)
        if not propagate_down[0]:
            return
        x = bottom[0].data
        xp = backend.xp_of(x)
        t = x.dtype.type
        s = xp.tanh(x * t(0.5))
        s *= t(0.5)
        s += t(0.5)
        g = s - bottom[1].data.reshape(x.shape)
        if self._valid is not None:
            g *= self._valid
        g *= t(self.loss_scale(top) / self._norm)
        bottom[0].diff[...] = g
