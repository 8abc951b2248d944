"""Accuracy: fraction of samples whose label is among the top_k scores."""
import numpy as np

from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.flatten import canonical_axis
from minicaffe.catalog.softmax_with_loss import labels_as_int


@register_layer("Accuracy")
class Accuracy(Layer):
    """accuracy = #{i not ignored : rank(label_i) < top_k} / #{i not ignored}.

    Ranks order the scores of a sample descending; a tie goes to the larger class index (a
    class with an equal score and a larger index ranks before the label), as the partial sort
    of (score, index) pairs in the SSL fork does. (BVLC 1.0 later counts every tie against the
    label; the two differ only on exactly equal scores.) bottom[0]: scores
    (outer..., C, inner...) with C along `accuracy_param.axis`; bottom[1]: outer*inner labels.
    top[0]: scalar; optional top[1]: per-class accuracy (C,), 0 for classes never seen.
    No gradient.
    """

    exact_bottoms = 2
    min_tops, max_tops = 1, 2

    def reshape(self, bottom, top):
        p = self.layer_param.accuracy_param
        shape = tuple(bottom[0].shape)
        axis = canonical_axis(self, int(p.axis), len(shape), bottom)
        outer = int(np.prod(shape[:axis], dtype=np.int64))
        inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
        C = shape[axis]
        if int(p.top_k) > C:
            raise self.error(f"top_k {p.top_k} must not exceed the number of classes {C}", bottom)
        if bottom[1].count != outer * inner:
            raise self.error(f"number of labels must match number of predictions: expected "
                             f"{outer * inner} labels for scores {shape} (axis {axis}), got "
                             f"{bottom[1].count}", bottom)
        self._dims = (outer, C, inner)
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((C,))

    def forward(self, bottom, top):
        p = self.layer_param.accuracy_param
        outer, C, inner = self._dims
        ignore = int(p.ignore_label) if p.has("ignore_label") else None
        xp = backend.xp_of(bottom[0].data)
        scores = bottom[0].data.reshape(outer, C, inner)
        label = labels_as_int(self, bottom[1].data.reshape(outer, inner), C, ignore, bottom)
        valid = xp.ones(label.shape, bool) if ignore is None else label != ignore
        safe = xp.where(valid, label, 0)
        true_score = xp.take_along_axis(scores, safe[:, None, :], axis=1)
        classes = xp.arange(C).reshape(1, C, 1)
        ahead = (scores > true_score) | ((scores == true_score) & (classes > safe[:, None, :]))
        correct = (ahead.sum(axis=1) < int(p.top_k)) & valid
        count = int(valid.sum())
        top[0].data[...] = float(correct.sum()) / count if count else 0.0
        if len(top) > 1:
            seen = xp.bincount(safe[valid], minlength=C)
            hits = xp.bincount(safe[correct], minlength=C)
            top[1].data[...] = xp.where(seen > 0, hits / xp.maximum(seen, 1), 0.0)

    def allow_force_backward(self, bottom_index):
        return False
