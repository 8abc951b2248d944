"""What Caffe's recurrent layers (RNN, LSTM) and LSTMUnit share: the LSTM unit's math and the
bookkeeping of RecurrentLayer (time-major blobs, sequence continuation, static input, exposed
or carried hidden state).

Caffe builds these layers as an unrolled net of InnerProduct / Eltwise / Scale / LSTMUnit
layers; minicaffe runs the same math directly, with the same learnable blobs in the same order
and shapes, so a .caffemodel trained by Caffe loads as it is.
"""
import numpy as np

from minicaffe import backend, fillers, ops
from minicaffe.blob import Blob
from minicaffe.catalog.base import Layer


def sigmoid(x):
    """1 / (1 + exp(-x)), written as (1 + tanh(x/2)) / 2: no overflow for large |x|."""
    xp = backend.xp_of(x)
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


def unit_forward(c_prev, a, cont):
    """One LSTM step (Caffe's LSTMUnit) for N streams of H units.

    c_prev (N, H), gate inputs a (N, 4H) ordered [i', f', o', g'], cont (N,):
      i = sigmoid(i'), f = cont * sigmoid(f'), o = sigmoid(o'), g = tanh(g')
      c = f * c_prev + i * g,  h = o * tanh(c).
    Returns (acts, c, tanh_c, h) with acts (N, 4H) = [i, sigmoid(f'), o, g], the values
    `unit_backward` needs.
    """
    xp = backend.xp_of(a)
    H = c_prev.shape[1]
    acts = xp.empty_like(a)
    acts[:, :3 * H] = sigmoid(a[:, :3 * H])
    acts[:, 3 * H:] = xp.tanh(a[:, 3 * H:])
    i, fs, o, g = acts[:, :H], acts[:, H:2 * H], acts[:, 2 * H:3 * H], acts[:, 3 * H:]
    c = (cont[:, None] * fs) * c_prev + i * g
    tanh_c = xp.tanh(c)
    return acts, c, tanh_c, o * tanh_c


def unit_backward(dc, dh, c_prev, cont, acts, tanh_c, want_cont=False):
    """Gradients of `unit_forward` from dc = dL/dc and dh = dL/dh (N, H).

    Returns (dc_prev (N, H), da (N, 4H), dcont (N,) or None), with
      dc~ = dc + dh * o * (1 - tanh(c)^2),  dc_prev = dc~ * f,
      di' = dc~ g i (1-i),  df' = dc~ c_prev cont s (1-s) (s = sigmoid(f')),
      do' = dh tanh(c) o (1-o),  dg' = dc~ i (1-g^2),  dcont = sum_H dc~ c_prev s.
    Caffe's CPU code writes df' = dc~ c_prev f (1-f) with f = cont * s, which is the same for
    cont in {0, 1} (its only intended values) and not the derivative otherwise; this is.
    """
    xp = backend.xp_of(acts)
    H = c_prev.shape[1]
    i, fs, o, g = acts[:, :H], acts[:, H:2 * H], acts[:, 2 * H:3 * H], acts[:, 3 * H:]
    k = cont[:, None]
    dct = dc + dh * o * (1.0 - tanh_c * tanh_c)
    da = xp.empty_like(acts)
    da[:, :H] = dct * g * i * (1.0 - i)
    da[:, H:2 * H] = dct * c_prev * k * fs * (1.0 - fs)
    da[:, 2 * H:3 * H] = dh * tanh_c * o * (1.0 - o)
    da[:, 3 * H:] = dct * i * (1.0 - g * g)
    dcont = (dct * c_prev * fs).sum(axis=1) if want_cont else None
    return dct * (k * fs), da, dcont


class Recurrent(Layer):
    """Base of RNN and LSTM (Caffe's RecurrentLayer): parameters from `recurrent_param`.

    bottoms: x (T, N, ...) time-major; cont (T, N), the sequence continuation indicators
    (0 where a new sequence starts: the carried state is multiplied by cont_t); optionally
    x_static (N, ...), an input seen at every step; with `expose_hidden`, the initial states
    (1, N, H) each. tops: the output (T, N, num_output); with `expose_hidden`, the final
    states (1, N, H) each.

    Without `expose_hidden` the state carries over from one forward to the next, as in Caffe
    (the last step's states become the next batch's initial states; they start at 0 and are
    reset to 0 when N changes); no gradient flows into the carried state. With it, gradients
    flow into the initial-state bottoms and from the final-state tops (Caffe's unrolled net
    ignores both, since it shares only their data), so encoder-decoder chains train end to end.
    cont gets its exact gradient when asked for explicitly (Caffe refuses); force_backward never
    asks for it. `debug_info` is accepted and has no effect (there is no unrolled net to trace),
    and T may change between forwards.

    Subclasses set `state_names` and implement `_param_specs`, `_run` and `_run_backward`.
    """

    state_names = ()            # names of the recurrent states, in Caffe's bottom/top order

    def __init__(self, layer_param, phase="TRAIN"):
        super().__init__(layer_param, phase)
        exposed = len(self.state_names) if layer_param.recurrent_param.expose_hidden else 0
        self.min_bottoms, self.max_bottoms = 2 + exposed, 3 + exposed
        self.exact_tops = 1 + exposed

    # -- setup --------------------------------------------------------------------------------
    def setup(self, bottom, top):
        p = self.layer_param.recurrent_param
        self.num_output = int(p.num_output)
        if self.num_output <= 0:
            raise self.error("recurrent_param.num_output must be given and positive, got "
                             f"{self.num_output}", bottom, at=(p, "num_output"))
        self.expose_hidden = bool(p.expose_hidden)
        n_states = len(self.state_names) if self.expose_hidden else 0
        self.static_input = len(bottom) > 2 + n_states
        self._check_bottoms(bottom)
        x = bottom[0]
        n_in = int(np.prod(x.shape[2:], dtype=np.int64))
        n_static = int(np.prod(bottom[2].shape[1:], dtype=np.int64)) if self.static_input else None
        self.blobs = []
        for name, shape, kind in self._param_specs(n_in, n_static):
            blob = Blob(shape, dtype=x.dtype, name=name)
            fillers.fill(blob, p.weight_filler if kind == "weight" else p.bias_filler)
            self.blobs.append(blob)
        self._state = None

    def _check_bottoms(self, bottom):
        x, cont = bottom[0], bottom[1]
        if x.ndim < 2:
            raise self.error("bottom 0 (x) must have at least 2 axes (T timesteps, N streams, "
                             "...)", bottom)
        T, N = x.shape[:2]
        if cont.shape != (T, N):
            raise self.error(f"bottom 1 (cont) must have shape (T, N) = ({T}, {N}) to match x, "
                             f"got {tuple(cont.shape)}", bottom)
        if self.static_input:
            xs = bottom[2]
            if xs.ndim < 1 or xs.shape[0] != N:
                raise self.error(f"bottom 2 (x_static) must have shape (N, ...) with N = {N}, "
                                 f"got {tuple(xs.shape)}", bottom)
        if self.expose_hidden:
            first = 2 + self.static_input
            want = (1, N, self.num_output)
            for j, name in enumerate(self.state_names):
                b = bottom[first + j]
                if tuple(b.shape) != want:
                    raise self.error(f"bottom {first + j} (initial {name}) must have shape "
                                     f"(1, N, num_output) = {want}, got {tuple(b.shape)}", bottom)

    # -- reshape ------------------------------------------------------------------------------
    def reshape(self, bottom, top):
        self._check_bottoms(bottom)
        x = bottom[0]
        n_in = int(np.prod(x.shape[2:], dtype=np.int64))
        w_in = self.blobs[0].shape[1]
        if n_in != w_in:
            raise self.error(f"bottom 0 (x) gives {n_in} inputs per step and stream; the weights "
                             f"{tuple(self.blobs[0].shape)} expect {w_in}", bottom)
        if self.static_input:
            n_static = int(np.prod(bottom[2].shape[1:], dtype=np.int64))
            ws = self.blobs[2]
            if n_static != ws.shape[1]:
                raise self.error(f"bottom 2 (x_static) gives {n_static} inputs per stream; the "
                                 f"weights {tuple(ws.shape)} expect {ws.shape[1]}", bottom)
        T, N = x.shape[:2]
        H = self.num_output
        top[0].reshape(T, N, self._output_width())
        for t in top[1:]:
            t.reshape(1, N, H)
        if self._state is None or self._state[0].shape != (N, H) or \
                self._state[0].dtype != x.dtype:
            xp = backend.xp_of(x.data)
            self._state = [xp.zeros((N, H), dtype=x.dtype) for _ in self.state_names]

    def _output_width(self):
        return self.num_output

    # -- forward / backward -------------------------------------------------------------------
    def forward(self, bottom, top):
        T, N = bottom[0].shape[:2]
        x = bottom[0].data.reshape(T * N, -1)
        cont = bottom[1].data
        xs = bottom[2].data.reshape(N, -1) if self.static_input else None
        if self.expose_hidden:
            first = 2 + self.static_input
            states = [bottom[first + j].data.reshape(N, -1)
                      for j in range(len(self.state_names))]
        else:
            states = self._state
        self._initial = [s.copy() for s in states]
        final = self._run(x, cont, xs, self._initial, top[0].data.reshape(T, N, -1))
        if self.expose_hidden:
            for t, s in zip(top[1:], final):
                t.data[...] = s.reshape(t.shape)
        else:
            for s, f in zip(self._state, final):
                s[...] = f

    def backward(self, top, propagate_down, bottom):
        T, N = bottom[0].shape[:2]
        need = [self.param_needs_diff(j) for j in range(len(self.blobs))]
        first = 2 + self.static_input
        d_final = ([t.diff.reshape(N, -1) for t in top[1:]] if self.expose_hidden else None)
        want = {
            "x": propagate_down[0], "cont": propagate_down[1],
            "static": self.static_input and propagate_down[2],
            "states": self.expose_hidden and any(propagate_down[first:]),
        }
        grads = self._run_backward(top[0].diff.reshape(T, N, -1), d_final,
                                   bottom[0].data.reshape(T * N, -1), bottom[1].data,
                                   bottom[2].data.reshape(N, -1) if self.static_input else None,
                                   need, want)
        if want["x"]:
            bottom[0].diff.reshape(T * N, -1)[...] = grads["x"]
        if want["cont"]:
            bottom[1].diff[...] = grads["cont"]
        if want["static"]:
            bottom[2].diff.reshape(N, -1)[...] = grads["static"]
        if self.expose_hidden:
            for j in range(len(self.state_names)):
                if propagate_down[first + j]:
                    bottom[first + j].diff.reshape(N, -1)[...] = grads["states"][j]

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1        # Caffe: no backward into the sequence indicators

    # -- helpers for subclasses ---------------------------------------------------------------
    @staticmethod
    def _affine(x, w, b=None, out=None):
        """out (R, M) = x (R, K) @ w (M, K)^T (+ b): InnerProduct's forward."""
        out = ops.gemm(x, w, out=out, trans_b=True)
        if b is not None:
            out += b
        return out

    @staticmethod
    def _accumulate_weight_grad(blob, dy, x):
        """blob.diff (M, K) += dy (R, M)^T @ x (R, K)."""
        ops.gemm(np.ascontiguousarray(dy), np.ascontiguousarray(x), out=blob.diff, beta=1.0,
                 trans_a=True)
