"""InfogainLoss layer (Caffe's InfogainLossLayer): softmax log loss weighted by a matrix H."""
import os

import numpy as np

from minicaffe import backend, wire
from minicaffe.catalog._loss import LossLayer
from minicaffe.catalog.base import register_layer
from minicaffe.catalog.flatten import canonical_axis
from minicaffe.catalog.multinomial_logistic_loss import LOG_THRESHOLD
from minicaffe.catalog.softmax import softmax
from minicaffe.catalog.softmax_with_loss import labels_as_int, loss_normalizer
from minicaffe.errors import DataError


@register_layer("InfogainLoss")
class InfogainLoss(LossLayer):
    """loss = -1/norm * sum_{i not ignored} sum_k H[l_i, k] log(max(p_ik, 1e-20)), p = softmax
    of bottom[0] along `infogain_loss_param.axis` (default 1). With H = I this is
    SoftmaxWithLoss.

    bottom[0]: scores (outer..., K, inner...); bottom[1]: outer*inner labels in [0, K);
    optional bottom[2]: H (K*K values, row l for label l). Without a third bottom H comes from
    `infogain_loss_param.source`, a BlobProto (.binaryproto) read once at setup (a relative
    path is tried against the working directory, then the prototxt's folder).
    loss_param: ignore_label, normalization (VALID default); the deprecated `normalize` is
    refused, as Caffe does for this layer. top[0]: the loss; optional top[1]: the
    probabilities.
    Backward: dL/dx_ik = w/norm * (p_ik * sum_k' H[l_i, k'] - H[l_i, k]), 0 for ignored
    positions. No gradient reaches the labels or H.
    Raises LayerSetupError for a missing or unreadable source, an H of the wrong size, label
    count mismatches and labels out of range.
    """

    min_bottoms, max_bottoms = 2, 3
    min_tops, max_tops = 1, 2

    def setup(self, bottom, top):
        lp = self.layer_param.loss_param
        if lp.has("normalize"):
            raise self.error("loss_param.normalize is deprecated and refused by InfogainLoss; "
                             "use normalization: VALID | BATCH_SIZE | FULL | NONE", bottom,
                             at=(lp, "normalize"))
        self._H = None
        if len(bottom) < 3:
            self._H = self._read_source(bottom)

    def _read_source(self, bottom):
        p = self.layer_param.infogain_loss_param
        if not p.source:
            raise self.error("infogain_loss_param.source (the H matrix as a .binaryproto) must be "
                             "given when there is no third bottom", bottom)
        path = p.source
        pos = getattr(self.layer_param, "position", None)
        if not os.path.exists(path) and not os.path.isabs(path) and pos and pos[0]:
            beside = os.path.join(os.path.dirname(pos[0]), path)
            if os.path.exists(beside):
                path = beside
        try:
            with open(path, "rb") as f:
                buf = f.read()
            data, _ = wire.decode_blob_proto(buf, what=path)
        except OSError as e:
            raise self.error(f"infogain_loss_param.source: cannot read '{p.source}' "
                             f"({e.strerror})", bottom, at=(p, "source")) from None
        except DataError as e:
            raise self.error(f"infogain_loss_param.source: {e}", bottom,
                             at=(p, "source")) from None
        return data

    def reshape(self, bottom, top):
        shape = tuple(bottom[0].shape)
        axis = canonical_axis(self, int(self.layer_param.infogain_loss_param.axis), len(shape),
                              bottom)
        outer = int(np.prod(shape[:axis], dtype=np.int64))
        inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
        k = shape[axis]
        if bottom[1].count != outer * inner:
            raise self.error(f"number of labels must match number of predictions: with axis "
                             f"{axis} and scores {shape} expected {outer * inner} labels, got "
                             f"{bottom[1].count}", bottom)
        h_count = bottom[2].count if len(bottom) == 3 else self._H.size
        if h_count != k * k:
            where = "bottom 2" if len(bottom) == 3 else "infogain_loss_param.source"
            raise self.error(f"H ({where}) must hold {k}x{k} = {k * k} values for {k} classes, "
                             f"got {h_count}", bottom)
        self._dims = (outer, k, inner)
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(shape)

    def _matrix(self, bottom, dtype):
        xp = backend.xp_of(bottom[0].data)
        if len(bottom) == 3:
            return bottom[2].data.reshape(self._dims[1], self._dims[1])
        return xp.asarray(self._H.reshape(self._dims[1], self._dims[1]).astype(dtype))

    def forward(self, bottom, top):
        outer, k, inner = self._dims
        lp = self.layer_param.loss_param
        ignore = int(lp.ignore_label) if lp.has("ignore_label") else None
        xp = backend.xp_of(bottom[0].data)
        prob = softmax(bottom[0].data.reshape(outer, k, inner), 1)
        label = labels_as_int(self, bottom[1].data.reshape(outer, inner), k, ignore, bottom)
        valid = xp.ones(label.shape, bool) if ignore is None else label != ignore
        safe = xp.where(valid, label, 0)
        H = self._matrix(bottom, prob.dtype)
        rows = H[safe]                                      # (outer, inner, k)
        logp = xp.log(xp.maximum(prob, LOG_THRESHOLD))      # (outer, k, inner)
        per = (rows * xp.moveaxis(logp, 1, 2)).sum(axis=2)
        loss = -(per * valid).sum()
        self._prob, self._rows, self._valid = prob, rows, valid
        self._norm = loss_normalizer(lp, outer, inner, int(valid.sum()))
        top[0].data[...] = loss / self._norm
        if len(top) > 1:
            top[1].data[...] = prob.reshape(top[1].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the labels (bottom 1); set "
                             "propagate_down: false for it", bottom)
        if len(propagate_down) > 2 and propagate_down[2]:
            raise self.error("cannot backpropagate to the infogain matrix (bottom 2); set "
                             "propagate_down: false for it", bottom)
        if not propagate_down[0]:
            return
        xp = backend.xp_of(self._prob)
        rows = xp.moveaxis(self._rows, 2, 1)                # (outer, k, inner)
        grad = self._prob * rows.sum(axis=1, keepdims=True) - rows
        grad *= self._valid[:, None, :]
        grad *= self.loss_scale(top) / self._norm
        bottom[0].diff[...] = grad.reshape(bottom[0].shape)
