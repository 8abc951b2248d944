"""SSL's group Lasso over groups of the lowered weight matrix (Wen et al. 2016, Eq. 1-3)."""
from dataclasses import dataclass

from minicaffe import backend, groups
from minicaffe.solver.regularizers.base import Regularizer, register_regularizer


@register_regularizer("group_lasso")
class GroupLasso(Regularizer):
    """R(W) = sum over groups g of ||W_g||_2; groups come from `minicaffe.groups`.

    Subgradient: W_g / ||W_g||_2, exactly 0 for a group whose norm is 0 (no epsilon, no
    sqrt(group size) weighting, as the SSL fork). Proximal step (group soft threshold):
    W_g <- W_g * max(0, 1 - step / ||W_g||_2), so groups with norm <= step become exactly 0.
    """

    @dataclass(frozen=True)
    class Params:
        kind: str = "row"      # row | column | channel | filter2d | block | layer
        group: int = 1         # conv `group`: each filter group is its own lowered matrix
        xdimen: int = 0        # block tile width (columns), kind == "block" only
        ydimen: int = 0        # block tile height (rows)

    def _norms(self, w, keep_shape=False):
        p = self.params
        return groups.norms(w, p.kind, p.group, p.xdimen, p.ydimen, keep_shape=keep_shape)

    def validate(self, shape):
        """Raise SolverError when this grouping does not fit weights of `shape`."""
        p = self.params
        groups.tile_dims(shape, p.kind, p.group, p.xdimen, p.ydimen)

    def penalty(self, w):
        return float(self._norms(w.astype("float64")).sum())

    def add_grad(self, w, diff, scale):
        xp = backend.xp_of(w)
        n = self._norms(w, keep_shape=True)
        live = n > 0
        diff += xp.where(live, scale * w / xp.where(live, n, 1), 0)

    def prox(self, w, step):
        xp = backend.xp_of(w)
        n = self._norms(w, keep_shape=True)
        live = n > 0
        factor = xp.where(live, xp.maximum(1 - step / xp.where(live, n, 1), 0), 0)
        w *= factor.astype(w.dtype, copy=False)
