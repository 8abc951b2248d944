"""HingeLoss layer (Caffe's HingeLossLayer): one-versus-all hinge loss."""
from minicaffe import backend
from minicaffe.catalog._loss import LossLayer
from minicaffe.catalog.base import register_layer
from minicaffe.catalog.softmax_with_loss import labels_as_int


@register_layer("HingeLoss")
class HingeLoss(LossLayer):
    """loss = 1/N * sum_n sum_k m_nk^p, m_nk = max(0, 1 - t_nk x_nk), t_nk = 1 if k = l_n else -1;
    p = 1 for `hinge_loss_param.norm: L1` (default), 2 for L2.

    bottom[0]: scores (N, ...) flattened to (N, K) per sample; bottom[1]: N labels in [0, K).
    Backward: dL/dx_nk = -t_nk * w/N * sign(m_nk) for L1 (0 where m_nk = 0), -t_nk * w/N * 2 m_nk
    for L2. No gradient reaches the labels.
    Raises LayerSetupError when the label count is not N or a label is not a whole number in
    [0, K) (Caffe does not check).
    """

    exact_bottoms = 2
    exact_tops = 1

    def reshape(self, bottom, top):
        x, label = bottom
        if x.ndim < 1 or label.count != x.shape[0]:
            raise self.error(f"needs one label per sample: {x.shape[0] if x.ndim else 1} "
                             f"samples, {label.count} labels", bottom)
        top[0].reshape(())

    def forward(self, bottom, top):
        x = bottom[0].data
        n = x.shape[0]
        x2 = x.reshape(n, -1)
        xp = backend.xp_of(x)
        label = labels_as_int(self, bottom[1].data.reshape(-1), x2.shape[1], None, bottom)
        sign = xp.full(x2.shape, -1.0, dtype=x.dtype)
        sign[xp.arange(n), label] = 1.0
        self._sign = sign
        self._margin = xp.maximum(1 - sign * x2, 0)
        if self.layer_param.hinge_loss_param.norm == "L2":
            loss = (self._margin * self._margin).sum()
        else:
            loss = self._margin.sum()
        top[0].data[...] = loss / n

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the labels (bottom 1); set "
                             "propagate_down: false for it", bottom)
        if not propagate_down[0]:
            return
        xp = backend.xp_of(self._margin)
        n = bottom[0].shape[0]
        if self.layer_param.hinge_loss_param.norm == "L2":
            g = 2 * self._margin
        else:
            g = xp.sign(self._margin)
        g *= -self._sign * (self.loss_scale(top) / n)
        bottom[0].diff[...] = g.reshape(bottom[0].shape)
