"""LSTMUnit layer (Caffe's LSTMUnitLayer): one step of an LSTM's cell and hidden state."""
from minicaffe.catalog._recurrent import unit_backward, unit_forward
from minicaffe.catalog.base import Layer, register_layer


@register_layer("LSTMUnit")
class LSTMUnit(Layer):
    """c_t, h_t from c_{t-1} and the gate inputs [i', f', o', g'] of one timestep:

      i = sigmoid(i'), f = cont * sigmoid(f'), o = sigmoid(o'), g = tanh(g')
      c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t).

    bottoms: c_{t-1} (1, N, H), gate inputs (1, N, 4H) ordered i, f, o, g, cont (1, N);
    tops: c_t (1, N, H), h_t (1, N, H). No parameters.
    Backward: see `_recurrent.unit_backward` (exact for any cont; Caffe's matches for cont in
    {0, 1}). cont gets its gradient only when asked for explicitly (Caffe refuses);
    force_backward never asks for it.
    Raises LayerSetupError when the shapes break the rules above.
    """

    exact_bottoms, exact_tops = 3, 2

    def reshape(self, bottom, top):
        c_prev, gates, cont = bottom
        if c_prev.ndim != 3 or c_prev.shape[0] != 1:
            raise self.error(f"bottom 0 (c_prev) must have shape (1, N, H), got "
                             f"{tuple(c_prev.shape)}", bottom)
        _, N, H = c_prev.shape
        if tuple(gates.shape) != (1, N, 4 * H):
            raise self.error(f"bottom 1 (gate inputs) must have shape (1, N, 4H) = "
                             f"(1, {N}, {4 * H}), got {tuple(gates.shape)}", bottom)
        if tuple(cont.shape) != (1, N):
            raise self.error(f"bottom 2 (cont) must have shape (1, N) = (1, {N}), got "
                             f"{tuple(cont.shape)}", bottom)
        top[0].reshape(1, N, H)
        top[1].reshape(1, N, H)

    def forward(self, bottom, top):
        c_prev, gates, cont = (b.data[0] for b in bottom)
        self._acts, top[0].data[0], self._tanh_c, top[1].data[0] = unit_forward(c_prev, gates, cont)

    def backward(self, top, propagate_down, bottom):
        if not any(propagate_down):
            return
        c_prev, _, cont = (b.data[0] for b in bottom)
        dc_prev, da, dcont = unit_backward(top[0].diff[0], top[1].diff[0], c_prev, cont,
                                           self._acts, self._tanh_c, propagate_down[2])
        for i, grad in enumerate((dc_prev, da, dcont)):
            if propagate_down[i]:
                bottom[i].diff[0] = grad

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2        # Caffe: no backward into the sequence indicators
