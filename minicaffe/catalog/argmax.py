"""ArgMax layer (Caffe's ArgMaxLayer): indices (and optionally values) of the top_k maxima."""
import numpy as np

from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.flatten import canonical_axis


@register_layer("ArgMax")
class ArgMax(Layer):
    """The top_k largest entries, ranked by value descending; equal values rank the larger
    index first (Caffe's partial sort of (value, index) pairs with std::greater).

    argmax_param: out_max_val (false), top_k (1), axis (unset).
    Without axis each sample (bottom[0] flattened from axis 1) gives top[0] of shape
    (N, 1, top_k) padded with 1s to bottom's axis count, holding indices; with out_max_val
    (N, 2, top_k, ...): the indices in row 0 and the values in row 1.
    With axis the result replaces that axis: shape[axis] = top_k, holding indices, or the
    values when out_max_val is set.
    No gradient: backward raises if a diff is asked of it (as Caffe's NOT_IMPLEMENTED).
    Raises LayerSetupError for top_k < 1, top_k beyond the ranked length or a bad axis.
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.argmax_param
        self.top_k = int(p.top_k)
        if self.top_k < 1:
            raise self.error(f"argmax_param.top_k = {self.top_k} must be at least 1", bottom,
                             at=(p, "top_k"))
        self.has_axis = p.has("axis")

    def reshape(self, bottom, top):
        p = self.layer_param.argmax_param
        shape = tuple(bottom[0].shape)
        if self.has_axis:
            self.axis = canonical_axis(self, int(p.axis), len(shape), bottom)
            length = shape[self.axis]
            out = shape[:self.axis] + (self.top_k,) + shape[self.axis + 1:]
        else:
            if not shape:
                raise self.error("expects a bottom with at least one axis (N, ...)", bottom)
            length = int(np.prod(shape[1:], dtype=np.int64))
            out = [1] * max(len(shape), 3)
            out[0], out[2] = shape[0], self.top_k
            if p.out_max_val:
                out[1] = 2
            out = tuple(out)
        if self.top_k > length:
            what = f"axis {self.axis}" if self.has_axis else "each flattened sample"
            raise self.error(f"argmax_param.top_k = {self.top_k} exceeds the {length} entries of "
                             f"{what}", bottom, at=(p, "top_k"))
        top[0].reshape(out)

    def forward(self, bottom, top):
        x = backend.asnumpy(bottom[0].data)
        shape = x.shape
        if self.has_axis:
            outer = int(np.prod(shape[:self.axis], dtype=np.int64))
            x3 = x.reshape(outer, shape[self.axis], -1)
        else:
            x3 = x.reshape(shape[0], -1, 1)
        dim = x3.shape[1]
        # Sorting the reversed axis stably by -value puts ties in descending index order.
        order = np.argsort(-x3[:, ::-1, :], axis=1, kind="stable")[:, :self.top_k, :]
        index = (dim - 1) - order
        value = np.take_along_axis(x3, index, axis=1)
        out_max_val = self.layer_param.argmax_param.out_max_val
        if self.has_axis:
            result = value if out_max_val else index
        elif out_max_val:
            result = np.concatenate([index, value], axis=1)   # (N, 2 * top_k, 1)
        else:
            result = index
        xp = backend.xp_of(top[0].data)
        top[0].data[...] = xp.asarray(result.astype(top[0].dtype).reshape(top[0].shape))

    def allow_force_backward(self, bottom_index):
        return False

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error("has no gradient (a ranking is piecewise constant); set "
                             "propagate_down: false or keep it off the path to a loss", bottom)
