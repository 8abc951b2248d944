"""MultinomialLogisticLoss layer (Caffe's MultinomialLogisticLossLayer)."""
from minicaffe import backend
from minicaffe.catalog._loss import LossLayer
from minicaffe.catalog.base import register_layer
from minicaffe.catalog.softmax_with_loss import labels_as_int

# Caffe's kLOG_THRESHOLD: probabilities are clamped here before the log.
LOG_THRESHOLD = 1e-20


@register_layer("MultinomialLogisticLoss")
class MultinomialLogisticLoss(LossLayer):
    """loss = -1/N * sum_n log(max(p[n, l_n], 1e-20)).

    bottom[0]: probabilities (N, ...) flattened to (N, K) per sample (e.g. a Softmax's
    output); bottom[1]: N labels in [0, K), shape (N,) or (N, 1, 1, 1).
    Backward: dL/dp[n, l_n] = -w/N / max(p[n, l_n], 1e-20), 0 elsewhere (as Caffe, also where
    the clamp is active). No gradient reaches the labels.
    Raises LayerSetupError when the label blob is not one value per sample or a label is not a
    whole number in [0, K).
    """

    exact_bottoms = 2
    exact_tops = 1

    def reshape(self, bottom, top):
        prob, label = bottom
        if prob.ndim < 1 or label.ndim < 1 or label.shape[0] != prob.shape[0] \
                or label.count != label.shape[0]:
            raise self.error(f"needs labels of shape (N,) or (N, 1, 1, 1) for "
                             f"{prob.shape[0] if prob.ndim else 1} samples, got "
                             f"{tuple(label.shape)}", bottom)
        top[0].reshape(())

    def forward(self, bottom, top):
        prob = bottom[0].data
        n = prob.shape[0]
        p2 = prob.reshape(n, -1)
        xp = backend.xp_of(prob)
        self._label = labels_as_int(self, bottom[1].data.reshape(-1), p2.shape[1], None, bottom)
        self._picked = xp.maximum(p2[xp.arange(n), self._label], LOG_THRESHOLD)
        top[0].data[...] = -xp.log(self._picked).sum() / n

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the labels (bottom 1); set "
                             "propagate_down: false for it", bottom)
        if not propagate_down[0]:
            return
        n = bottom[0].shape[0]
        dx = bottom[0].diff.reshape(n, -1)
        xp = backend.xp_of(dx)
        dx[...] = 0
        dx[xp.arange(n), self._label] = -(self.loss_scale(top) / n) / self._picked
