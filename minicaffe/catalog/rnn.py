"""RNN layer (Caffe's RNNLayer): a simple (Elman) recurrent net with a tanh output layer."""
from minicaffe import backend, ops
from minicaffe.catalog._recurrent import Recurrent
from minicaffe.catalog.base import register_layer


@register_layer("RNN")
class RNN(Recurrent):
    """h_t and o_t from x_t and h_{t-1}, H = num_output (Caffe's RNN):

      h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static])
      o_t = tanh(W_ho h_t + b_o).

    bottoms: x (T, N, ...), cont (T, N), [x_static (N, ...)], [h_0 (1, N, H) when
    expose_hidden]; tops: o (T, N, H), [h_T (1, N, H) when expose_hidden].
    blobs, in Caffe's order: W_xh (H, I), b_h (H,), [W_xh_static (H, S) with x_static],
    W_hh (H, H), W_ho (H, H), b_o (H,), with I = prod(x.shape[2:]) and
    S = prod(x_static.shape[1:]); weights from recurrent_param.weight_filler, biases from
    bias_filler. Unlike PyTorch's nn.RNN, the top is o_t (a second tanh layer), not h_t.
    See Recurrent for the state carried between batches and the gradients.
    Raises LayerSetupError for num_output <= 0 and bottoms whose shapes disagree.
    """

    state_names = ("h",)

    def _param_specs(self, n_in, n_static):
        H = self.num_output
        specs = [("W_xh", (H, n_in), "weight"), ("b_h", (H,), "bias")]
        if n_static is not None:
            specs.append(("W_xh_static", (H, n_static), "weight"))
        specs += [("W_hh", (H, H), "weight"), ("W_ho", (H, H), "weight"), ("b_o", (H,), "bias")]
        return specs

    def _run(self, x, cont, xs, initial, o_out):
        """x (T*N, I), cont (T, N), xs (N, S) or None, initial [h_0] (N, H);
        writes o_out (T, N, H) and returns [h_T]."""
        xp = backend.xp_of(x)
        T, N = cont.shape
        H = self.num_output
        w_hh, w_ho, b_o = (b.data for b in self.blobs[-3:])
        z = self._affine(x, self.blobs[0].data, self.blobs[1].data).reshape(T, N, H)
        if xs is not None:
            z += self._affine(xs, self.blobs[2].data)
        self._hc = xp.empty((T, N, H), dtype=x.dtype)       # cont_t * h_{t-1}
        self._h = xp.empty((T, N, H), dtype=x.dtype)
        h_prev = initial[0]
        for t in range(T):
            xp.multiply(cont[t][:, None], h_prev, out=self._hc[t])
            ops.gemm(self._hc[t], w_hh, out=z[t], beta=1.0, trans_b=True)
            xp.tanh(z[t], out=self._h[t])
            h_prev = self._h[t]
        o2 = o_out.reshape(T * N, H)
        self._affine(self._h.reshape(T * N, H), w_ho, b_o, out=o2)
        xp.tanh(o2, out=o2)
        self._o = o_out.copy()      # an in-place layer on the top (Dropout) may rewrite it
        return [h_prev.copy()]

    def _run_backward(self, do_out, d_final, x, cont, xs, need, want):
        xp = backend.xp_of(x)
        T, N = cont.shape
        H = self.num_output
        n = len(self.blobs)
        i_hh, i_ho, i_bo = n - 3, n - 2, n - 1
        w_hh, w_ho = self.blobs[i_hh].data, self.blobs[i_ho].data
        h2 = self._h.reshape(T * N, H)
        o = self._o.reshape(T * N, H)
        dzo = do_out.reshape(T * N, H) * (1.0 - o * o)
        if need[i_ho]:
            self._accumulate_weight_grad(self.blobs[i_ho], dzo, h2)
        if need[i_bo]:
            self.blobs[i_bo].diff[...] += dzo.sum(axis=0)
        dh_from_o = ops.gemm(dzo, w_ho).reshape(T, N, H)
        dz = xp.empty((T, N, H), dtype=x.dtype)
        dcont = xp.empty((T, N), dtype=x.dtype) if want["cont"] else None
        dh_next = d_final[0].copy() if d_final is not None else xp.zeros((N, H), x.dtype)
        for t in reversed(range(T)):
            h = self._h[t]
            dz[t] = (dh_from_o[t] + dh_next) * (1.0 - h * h)
            dhc = ops.gemm(dz[t], w_hh)                          # d / d(cont_t h_{t-1})
            if dcont is not None:
                h_prev = self._h[t - 1] if t else self._initial[0]
                dcont[t] = (dhc * h_prev).sum(axis=1)
            dh_next = cont[t][:, None] * dhc
        dz2 = dz.reshape(T * N, H)
        grads = {"cont": dcont, "states": [dh_next]}
        if need[0]:
            self._accumulate_weight_grad(self.blobs[0], dz2, x)
        if need[1]:
            self.blobs[1].diff[...] += dz2.sum(axis=0)
        if need[i_hh]:
            self._accumulate_weight_grad(self.blobs[i_hh], dz2, self._hc.reshape(T * N, H))
        if want["x"]:
            grads["x"] = ops.gemm(dz2, self.blobs[0].data)
        if xs is not None:
            dz_static = dz.sum(axis=0)                          # x_static feeds every step
            if need[2]:
                self._accumulate_weight_grad(self.blobs[2], dz_static, xs)
            if want["static"]:
                grads["static"] = ops.gemm(dz_static, self.blobs[2].data)
        return grads
