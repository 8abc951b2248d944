"""SoftmaxWithLoss: softmax followed by the multinomial logistic loss, fused for stability."""
import numpy as np

from minicaffe import backend
from minicaffe.catalog._loss import LossLayer
from minicaffe.catalog.base import register_layer
from minicaffe.catalog.flatten import canonical_axis
from minicaffe.catalog.softmax import softmax

# Caffe clamps probabilities at FLT_MIN before the log whatever the element type.
_FLT_MIN = float(np.finfo(np.float32).tiny)


def loss_normalizer(loss_param, outer, inner, valid_count, default="VALID"):
    """Caffe's LossLayer normalizer: VALID → non-ignored labels, BATCH_SIZE → outer count,
    FULL → outer*inner, NONE → 1; legacy `normalize` when `normalization` is unset
    (true → VALID, false → BATCH_SIZE); `default` when neither is set (VALID, caffe.proto's
    default; SigmoidCrossEntropyLoss uses BATCH_SIZE). Never below 1."""
    if loss_param.has("normalization"):
        mode = loss_param.normalization
    elif loss_param.has("normalize"):
        mode = "VALID" if loss_param.normalize else "BATCH_SIZE"
    else:
        mode = default
    if mode == "FULL":
        n = outer * inner
    elif mode == "VALID":
        n = valid_count
    elif mode == "BATCH_SIZE":
        n = outer
    elif mode == "NONE":
        n = 1
    else:
        raise ValueError(f"unknown loss normalization {mode!r} (VALID, BATCH_SIZE, FULL, NONE)")
    return max(1.0, float(n))


def labels_as_int(layer, label, num_classes, ignore, bottom):
    """Integer labels; LayerSetupError naming the layer when one is out of [0, num_classes)."""
    xp = backend.xp_of(label)
    lab = label.astype(xp.int64)
    if not bool((lab == label).all()):
        raise layer.error("labels must be whole numbers", bottom)
    bad = (lab < 0) | (lab >= num_classes)
    if ignore is not None:
        bad &= lab != ignore
    if bool(bad.any()):
        first = int(backend.asnumpy(lab[bad].reshape(-1))[0])
        raise layer.error(f"label {first} out of range [0, {num_classes})", bottom)
    return lab


@register_layer("SoftmaxWithLoss")
class SoftmaxWithLoss(LossLayer):
    """loss = -Σ_{i, not ignored} log(max(p[i, label_i], FLT_MIN)) / normalizer, p = softmax
    of bottom[0] along `softmax_param.axis` (default 1).

    bottom[0]: scores (outer..., C, inner...); bottom[1]: labels, outer*inner values.
    top[0]: scalar loss; optional top[1]: the probabilities. `loss_param`: ignore_label,
    normalization (VALID default), legacy normalize. No gradient reaches the labels.
    """

    exact_bottoms = 2
    min_tops, max_tops = 1, 2

    def reshape(self, bottom, top):
        shape = tuple(bottom[0].shape)
        self._axis = canonical_axis(self, int(self.layer_param.softmax_param.axis), len(shape), bottom)
        outer = int(np.prod(shape[:self._axis], dtype=np.int64))
        inner = int(np.prod(shape[self._axis + 1:], dtype=np.int64))
        if bottom[1].count != outer * inner:
            raise self.error(
                f"number of labels must match number of predictions: with axis {self._axis} and "
                f"scores {shape} expected {outer * inner} labels, got {bottom[1].count}", bottom)
        self._dims = (outer, shape[self._axis], inner)
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(shape)

    def forward(self, bottom, top):
        outer, C, inner = self._dims
        p = self.layer_param.loss_param
        ignore = int(p.ignore_label) if p.has("ignore_label") else None
        xp = backend.xp_of(bottom[0].data)
        prob = softmax(bottom[0].data.reshape(outer, C, inner), 1)
        label = labels_as_int(self, bottom[1].data.reshape(outer, inner), C, ignore, bottom)
        valid = xp.ones(label.shape, bool) if ignore is None else label != ignore
        safe = xp.where(valid, label, 0)
        picked = xp.take_along_axis(prob, safe[:, None, :], axis=1)[:, 0, :]
        loss = -(xp.log(xp.maximum(picked, _FLT_MIN)) * valid).sum()
        self._prob, self._safe, self._valid = prob, safe, valid
        self._norm = loss_normalizer(p, outer, inner, int(valid.sum()))
        top[0].data[...] = loss / self._norm
        if len(top) > 1:
            top[1].data[...] = prob.reshape(top[1].shape)

    def backward(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            raise self.error("cannot backpropagate to the labels (bottom 1); set propagate_down: "
                             "false for it", bottom)
        if not propagate_down[0]:
            return
        xp = backend.xp_of(self._prob)
        grad = self._prob.copy()
        outer, C, inner = self._dims
        o, i = xp.meshgrid(xp.arange(outer), xp.arange(inner), indexing="ij")
        grad[o, self._safe, i] -= 1
        grad *= self._valid[:, None, :]
        grad *= self.loss_scale(top) / self._norm
        bottom[0].diff[...] = grad.reshape(bottom[0].shape)
