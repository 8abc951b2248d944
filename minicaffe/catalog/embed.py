"""Embed layer (Caffe's EmbedLayer): a lookup table indexed by whole numbers."""
from minicaffe import backend, fillers
from minicaffe.blob import Blob
from minicaffe.catalog.base import Layer, register_layer


@register_layer("Embed")
class Embed(Layer):
    """y[..., :] = W[x[...], :] (+ b): each bottom value selects a row of W.

    embed_param: num_output (N, required), input_dim (K, required: the vocabulary size),
    bias_term (true), weight_filler, bias_filler (constant 0 when not given).
    bottom[0]: any shape, whole numbers in [0, K); top[0]: bottom.shape + (N,).
    blobs[0]: W (K, N) (InnerProduct's weight transposed); blobs[1]: b (N,) with bias_term.
    Backward: dW[k] += sum of dL/dy over positions holding k; db += sum of dL/dy.
    No gradient reaches the indices.
    Raises LayerSetupError for num_output or input_dim of 0, and for an index that is not a
    whole number in [0, K) (Caffe checks this only in debug builds).
    """

    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.embed_param
        for name in ("num_output", "input_dim"):
            if getattr(p, name) <= 0:
                raise self.error(f"embed_param.{name} must be given and positive, got "
                                 f"{getattr(p, name)}", bottom, at=(p, name))
        self.num_output, self.input_dim = int(p.num_output), int(p.input_dim)
        self.bias_term = bool(p.bias_term)
        dtype = bottom[0].dtype
        weight = Blob((self.input_dim, self.num_output), dtype=dtype, name="weight")
        fillers.fill(weight, p.weight_filler)
        self.blobs = [weight]
        if self.bias_term:
            bias = Blob((self.num_output,), dtype=dtype, name="bias")
            fillers.fill(bias, p.bias_filler)
            self.blobs.append(bias)

    def reshape(self, bottom, top):
        top[0].reshape(tuple(bottom[0].shape) + (self.num_output,))

    def _indices(self, bottom):
        x = bottom[0].data.reshape(-1)
        xp = backend.xp_of(x)
        idx = x.astype(xp.int64)
        bad = (idx != x) | (idx < 0) | (idx >= self.input_dim)
        if bool(bad.any()):
            i = int(backend.asnumpy(xp.nonzero(bad)[0])[0])
            raise self.error(f"input {float(x[i]):g} at flat position {i} is not a whole number "
                             f"in [0, {self.input_dim}) (embed_param.input_dim)", bottom)
        return idx

    def forward(self, bottom, top):
        self._idx = self._indices(bottom)
        y = top[0].data.reshape(-1, self.num_output)
        backend.xp_of(y).take(self.blobs[0].data, self._idx, axis=0, out=y)
        if self.bias_term:
            y += self.blobs[1].data

    def allow_force_backward(self, bottom_index):
        return False

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise self.error("cannot backpropagate to the indices (bottom 0); set "
                             "propagate_down: false for it", bottom)
        dy = top[0].diff.reshape(-1, self.num_output)
        if self.param_needs_diff(0):
            w = self.blobs[0].diff
            backend.xp_of(w).add.at(w, self._idx, dy)
        if self.bias_term and self.param_needs_diff(1):
            self.blobs[1].diff[...] += dy.sum(axis=0)
