"""ContrastiveLoss layer (Caffe's ContrastiveLossLayer), for Siamese networks."""
from minicaffe import backend
from minicaffe.catalog._loss import LossLayer
from minicaffe.catalog.base import register_layer

# Caffe adds this to the distance in the dissimilar pairs' gradient (not in the loss), so that
# identical pairs do not divide by zero.
_DIST_EPS = 1e-4


@register_layer("ContrastiveLoss")
class ContrastiveLoss(LossLayer):
    """loss = 1/(2N) * sum_n [ y_n d_n^2 + (1 - y_n) max(margin - d_n, 0)^2 ], d_n = ||a_n - b_n||.

    With `legacy_version` the dissimilar term is max(margin - d_n^2, 0) instead.
    contrastive_loss_param: margin (1), legacy_version (false).
    bottom[0], bottom[1]: a, b of shape (N, C) or (N, C, 1, 1); bottom[2]: y, N similarity
    labels ((N,) or (N, 1, 1, 1)), read as Caffe does: a pair is similar when int(y) != 0.
    Backward (to a; b gets the negative): similar pairs w/N * (a - b); dissimilar pairs with
    margin - d > 0: -w/N * (margin - d) / (d + 1e-4) * (a - b) (Caffe's 1e-4 keeps identical
    pairs finite; it makes the gradient differ from the exact one by a factor d/(d + 1e-4)),
    legacy: -w/N * (a - b); 0 otherwise. No gradient reaches the labels.
    Raises LayerSetupError for shapes that are not (N, C[, 1, 1]) or disagree.
    """

    exact_bottoms = 3
    exact_tops = 1

    def reshape(self, bottom, top):
        a, b, y = bottom
        for blob, what in ((a, "bottom 0"), (b, "bottom 1")):
            if blob.ndim < 2 or any(d != 1 for d in blob.shape[2:]):
                raise self.error(f"{what} must be (N, C) or (N, C, 1, 1), got "
                                 f"{tuple(blob.shape)}", bottom)
        if a.shape[:2] != b.shape[:2]:
            raise self.error(f"the two inputs must have the same (N, C): {tuple(a.shape)} vs "
                             f"{tuple(b.shape)}", bottom)
        if y.ndim < 1 or y.shape[0] != a.shape[0] or y.count != a.shape[0]:
            raise self.error(f"the similarity labels must be {a.shape[0]} values, one per pair, "
                             f"got shape {tuple(y.shape)}", bottom)
        top[0].reshape(())

    def forward(self, bottom, top):
        p = self.layer_param.contrastive_loss_param
        a, b, y = bottom
        n = a.shape[0]
        xp = backend.xp_of(a.data)
        self._diff = a.data.reshape(n, -1) - b.data.reshape(n, -1)
        self._dist_sq = (self._diff * self._diff).sum(axis=1)
        self._similar = y.data.reshape(-1).astype(xp.int64) != 0
        if p.legacy_version:
            far = xp.maximum(p.margin - self._dist_sq, 0)
        else:
            far = xp.maximum(p.margin - xp.sqrt(self._dist_sq), 0) ** 2
        per_pair = xp.where(self._similar, self._dist_sq, far)
        top[0].data[...] = per_pair.sum() / n / 2

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def backward(self, top, propagate_down, bottom):
        if propagate_down[2]:
            raise self.error("cannot backpropagate to the similarity labels (bottom 2); set "
                             "propagate_down: false for it", bottom)
        if not (propagate_down[0] or propagate_down[1]):
            return
        p = self.layer_param.contrastive_loss_param
        xp = backend.xp_of(self._diff)
        n = bottom[0].shape[0]
        if p.legacy_version:
            coeff = xp.where(p.margin - self._dist_sq > 0, -1.0, 0.0)
        else:
            dist = xp.sqrt(self._dist_sq)
            mdist = p.margin - dist
            coeff = xp.where(mdist > 0, -mdist / (dist + _DIST_EPS), 0.0)
        coeff = xp.where(self._similar, 1.0, coeff).astype(self._diff.dtype, copy=False)
        grad = self._diff * coeff[:, None] * (self.loss_scale(top) / n)
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                bottom[i].diff[...] = (sign * grad).reshape(bottom[i].shape)
