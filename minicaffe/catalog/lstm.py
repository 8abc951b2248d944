"""LSTM layer (Caffe's LSTMLayer): a long short-term memory over time-major sequences."""
from minicaffe import backend, ops
from minicaffe.catalog._recurrent import Recurrent, unit_backward, unit_forward
from minicaffe.catalog.base import register_layer


@register_layer("LSTM")
class LSTM(Recurrent):
    """h_t, c_t from x_t, h_{t-1}, c_{t-1} with H = num_output units (Caffe's LSTM):

      a_t = W_xc x_t + b_c + W_hc (cont_t h_{t-1}) [+ W_xc_static x_static]   (4H gate inputs)
      [i, f, o, g] = [sigmoid, sigmoid, sigmoid, tanh](a_t split in four, in that order)
      c_t = cont_t f * c_{t-1} + i * g,   h_t = o * tanh(c_t).

    bottoms: x (T, N, ...), cont (T, N), [x_static (N, ...)], [h_0, c_0 (1, N, H) when
    expose_hidden]; tops: h (T, N, H), [h_T, c_T (1, N, H) when expose_hidden].
    blobs, in Caffe's order: W_xc (4H, I), b_c (4H,), [W_xc_static (4H, S) with x_static],
    W_hc (4H, H), with I = prod(x.shape[2:]) and S = prod(x_static.shape[1:]); weights from
    recurrent_param.weight_filler, b_c from bias_filler.
    PyTorch's nn.LSTM orders its gates i, f, g, o and has two biases; the maths is otherwise
    the same. See Recurrent for the state carried between batches and the gradients.
    Raises LayerSetupError for num_output <= 0 and bottoms whose shapes disagree.
    """

    state_names = ("h", "c")

    def _param_specs(self, n_in, n_static):
        G = 4 * self.num_output
        specs = [("W_xc", (G, n_in), "weight"), ("b_c", (G,), "bias")]
        if n_static is not None:
            specs.append(("W_xc_static", (G, n_static), "weight"))
        specs.append(("W_hc", (G, self.num_output), "weight"))
        return specs

    def _run(self, x, cont, xs, initial, h_out):
        """x (T*N, I), cont (T, N), xs (N, S) or None, initial [h_0, c_0] (N, H);
        writes h_out (T, N, H) and returns [h_T, c_T]."""
        xp = backend.xp_of(x)
        T, N = cont.shape
        H = self.num_output
        w_hc = self.blobs[-1].data
        a = self._affine(x, self.blobs[0].data, self.blobs[1].data).reshape(T, N, 4 * H)
        if xs is not None:
            a += self._affine(xs, self.blobs[2].data)
        self._acts = xp.empty_like(a)
        self._hc = xp.empty((T, N, H), dtype=x.dtype)       # cont_t * h_{t-1}
        self._c = xp.empty((T, N, H), dtype=x.dtype)
        self._tanh_c = xp.empty((T, N, H), dtype=x.dtype)
        h_prev, c_prev = initial
        for t in range(T):
            xp.multiply(cont[t][:, None], h_prev, out=self._hc[t])
            ops.gemm(self._hc[t], w_hc, out=a[t], beta=1.0, trans_b=True)
            self._acts[t], self._c[t], self._tanh_c[t], h_out[t] = unit_forward(c_prev, a[t], cont[t])
            h_prev, c_prev = h_out[t], self._c[t]
        self._h = h_out.copy()      # an in-place layer on the top (Dropout) may rewrite it
        return [h_prev.copy(), c_prev.copy()]

    def _run_backward(self, dh_out, d_final, x, cont, xs, need, want):
        xp = backend.xp_of(x)
        T, N = cont.shape
        H = self.num_output
        w_hc = self.blobs[-1].data
        h0, c0 = self._initial
        da = xp.empty((T, N, 4 * H), dtype=x.dtype)
        dcont = xp.empty((T, N), dtype=x.dtype) if want["cont"] else None
        if d_final is not None:
            dh_next, dc_next = d_final[0].copy(), d_final[1].copy()
        else:
            dh_next, dc_next = xp.zeros((N, H), x.dtype), xp.zeros((N, H), x.dtype)
        for t in reversed(range(T)):
            c_prev = self._c[t - 1] if t else c0
            dc_prev, da[t], dc_cont = unit_backward(dc_next, dh_out[t] + dh_next, c_prev, cont[t],
                                                    self._acts[t], self._tanh_c[t], want["cont"])
            dhc = ops.gemm(da[t], w_hc)                         # d / d(cont_t h_{t-1})
            if dcont is not None:
                h_prev = self._h[t - 1] if t else h0
                dcont[t] = dc_cont + (dhc * h_prev).sum(axis=1)
            dh_next = cont[t][:, None] * dhc
            dc_next = dc_prev
        da2 = da.reshape(T * N, 4 * H)
        grads = {"cont": dcont, "states": [dh_next, dc_next]}
        if need[0]:
            self._accumulate_weight_grad(self.blobs[0], da2, x)
        if need[1]:
            self.blobs[1].diff[...] += da2.sum(axis=0)
        if need[-1]:
            self._accumulate_weight_grad(self.blobs[-1], da2, self._hc.reshape(T * N, H))
        if want["x"]:
            grads["x"] = ops.gemm(da2, self.blobs[0].data)
        if xs is not None:
            da_static = da.sum(axis=0)                          # x_static feeds every step
            if need[2]:
                self._accumulate_weight_grad(self.blobs[2], da_static, xs)
            if want["static"]:
                grads["static"] = ops.gemm(da_static, self.blobs[2].data)
        return grads
