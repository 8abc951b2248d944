"""Program: op calls bound to fixed arrays once and run many times (an inference forward).

At batch 1 a small net's kernels take microseconds, and each op call from Python costs about as
much again: arguments converted and checked, shapes compared, outputs looked up. A Program
checks every call once, when it is added (the same checks as the op of the same name), and
keeps it; `run` then executes a range of calls. Consecutive compiled calls run inside one C++
call without the GIL (kernels/program.cc); a Python callable can sit between them.

    prog = Program()
    prog.conv_forward_nchw(x, geom, w2d, 1, bias, y)        # y (N, M, oh*ow)
    prog.max_pool_forward(y4, (2, 2), (0, 0), (2, 2), (12, 12), p, mask)
    prog.run()                                              # as often as x changes

The arrays must stay where they are (the same memory, shape and layout) while the Program is
used; whoever builds one rebuilds it when they move (minicaffe.plan does, for a Net).
Needs the compiled kernels: `Program.available()` says whether they are loaded.
"""
import numpy as np

from minicaffe.errors import KernelError
from minicaffe.ops import _checks, native
from minicaffe.ops.conv import BLOCK_BYTES, _forward_args
from minicaffe.ops.pooling import _ave_pool_args, _max_pool_args


class Program:
    """A list of bound op calls (steps), numbered from 0 in the order they were added.

    Each op method checks its arguments like the op of the same name in `minicaffe.ops` and
    returns the new step's index; outputs must be given (they are the arrays the steps write).
    Raises RuntimeError when the compiled kernels are not available.
    """

    def __init__(self):
        k = native.kernels()
        if k is None:
            raise RuntimeError(f"ops.Program needs the compiled kernels ({native.unavailable_reason()})")
        self._native = k.Program()
        self._steps = []          # per step: index into the compiled program, or a callable
        self._guards = set()      # steps added by guard()
        self._ranges = {}         # (first, last) -> [(callable or None, a, b)], built on first use

    @staticmethod
    def available():
        """Whether Programs can be built (the compiled kernels are loaded)."""
        return native.available()

    def __len__(self):
        return len(self._steps)

    def _add_native(self, index):
        self._steps.append(index)
        self._ranges.clear()
        return len(self._steps) - 1

    # -- ops -------------------------------------------------------------------------------------
    def conv_forward_nchw(self, x, geom, w, group=1, bias=None, out=None, block_bytes=BLOCK_BYTES):
        """ops.conv_forward_nchw(x, geom, w, group, bias, out): out (N, M, oh*ow) required;
        w a lowered (M, C/group*kh*kw) array or the CompactWeights of one group."""
        if out is None:
            raise KernelError("Program.conv_forward_nchw: out must be given")
        return self._add_native(self._native.conv_forward_nchw(
            *_forward_args(x, geom, w, group, bias, out, block_bytes)))

    def max_pool_forward(self, x, kernel, pad, stride, out_size, out, mask):
        """ops.max_pool_forward with out and the int32 argmax mask given; mask None: the
        values only (no argmax kept: an inference forward)."""
        x, g, out, mask = _max_pool_args(x, kernel, pad, stride, out_size, out, mask,
                                         argmax=mask is not None)
        return self._add_native(self._native.max_pool_forward(x, g[2:], out, mask))

    def ave_pool_forward(self, x, kernel, pad, stride, out_size, out):
        """ops.ave_pool_forward with out given."""
        x, g, out = _ave_pool_args(x, kernel, pad, stride, out_size, out)
        return self._add_native(self._native.ave_pool_forward(x, g[2:], out))

    def linear_forward(self, x, w, bias, out, trans_w=True):
        """out (M, N) = x (M, K) @ op(w) + bias (N,) (bias may be None); op(w) = w.T (w is
        (N, K), InnerProduct's layout) when trans_w, else w (K, N)."""
        op = "linear_forward"
        x = _checks.float_array(op, "x", x)
        w = _checks.float_array(op, "w", w)
        dtype = _checks.same_dtype(op, x=x, w=w)
        _checks.check_ndim(op, "x", x, 2, "(M, K)")
        _checks.check_ndim(op, "w", w, 2, "(N, K)" if trans_w else "(K, N)")
        n, k = w.shape if trans_w else w.shape[::-1]
        if x.shape[1] != k:
            raise KernelError(f"{op}: x has shape {tuple(x.shape)} but w {tuple(w.shape)} expects "
                              f"K = {k} inputs (trans_w={bool(trans_w)})")
        if bias is not None:
            bias = _checks.float_array(op, "bias", bias)
            if bias.shape != (n,) or bias.dtype != dtype:
                raise KernelError(f"{op}: bias has shape {tuple(bias.shape)} and dtype "
                                  f"{bias.dtype}; expected ({n},) {dtype}")
        out = _checks.output(op, out, (x.shape[0], n), dtype)
        return self._add_native(self._native.linear_forward(x, w, bias, out, bool(trans_w)))

    def relu_forward(self, x, y, negative_slope=0.0):
        """y = x > 0 ? x : negative_slope * x, elementwise; y may be x."""
        x, y = self._same_shape("relu_forward", x, y)
        return self._add_native(self._native.relu_forward(x, y, float(negative_slope)))

    def softmax_forward(self, x, y, axis=1):
        """y = exp(x - max) / sum exp(x - max) along `axis`; y may be x."""
        x, y = self._same_shape("softmax_forward", x, y)
        if not -x.ndim <= axis < x.ndim:
            raise KernelError(f"softmax_forward: axis = {axis} is out of range for x of shape "
                              f"{tuple(x.shape)}")
        axis %= x.ndim
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
        return self._add_native(self._native.softmax_forward(x, y, outer, x.shape[axis], inner))

    def copy(self, x, y):
        """y[...] = x (same shape and dtype)."""
        x, y = self._same_shape("copy", x, y)
        return self._add_native(self._native.copy(x, y))

    def guard(self, current, snapshot):
        """A step that stops the run when `current` no longer equals `snapshot` bit for bit:
        the weights a derived format (compact, CSR) was built from have changed since."""
        op = "guard"
        current = _checks.float_array(op, "current", current)
        snapshot = _checks.float_array(op, "snapshot", snapshot)
        if snapshot.shape != current.shape or snapshot.dtype != current.dtype:
            raise KernelError(f"{op}: snapshot has shape {tuple(snapshot.shape)} {snapshot.dtype}; "
                              f"expected {tuple(current.shape)} {current.dtype}")
        step = self._add_native(self._native.guard(current, snapshot))
        self._guards.add(step)
        return step

    def python(self, fn):
        """A step that calls fn(); a true result stops the run there."""
        if not callable(fn):
            raise TypeError(f"Program.python: fn must be callable, got {type(fn).__name__}")
        self._steps.append(fn)
        self._ranges.clear()
        return len(self._steps) - 1

    def is_guard(self, step):
        """Whether step `step` was added by guard()."""
        return step in self._guards

    def is_python(self, step):
        """Whether step `step` was added by python()."""
        return callable(self._steps[step])

    @staticmethod
    def _same_shape(op, x, y):
        x = _checks.float_array(op, "x", x)
        return x, _checks.output(op, y, x.shape, x.dtype, name="y")

    # -- running -------------------------------------------------------------------------------
    def _split(self, first, last):
        """Runs of consecutive compiled steps and single Python steps covering first..last."""
        parts = []
        for i in range(first, last + 1):
            step = self._steps[i]
            if callable(step):
                parts.append((step, i, i))
            elif parts and parts[-1][0] is None and parts[-1][2] == i - 1:
                parts[-1] = (None, parts[-1][1], i)
            else:
                parts.append((None, i, i))
        return parts

    def run(self, first=0, last=None):
        """Run steps first..last (inclusive; default all). Returns the index of the step that
        stopped the run (a guard that failed, a Python step that returned true) or None.

        An exception from a step propagates with the step's index in its `program_step`.
        """
        if last is None:
            last = len(self._steps) - 1
        parts = self._ranges.get((first, last))
        if parts is None:
            if not (0 <= first and last < len(self._steps)) or first > last + 1:
                raise IndexError(f"Program.run: steps {first}..{last} are not a range of the "
                                 f"{len(self._steps)} steps")
            parts = self._ranges[(first, last)] = self._split(first, last)
        steps = self._steps
        for fn, a, b in parts:
            if fn is not None:
                try:
                    if fn():
                        return a
                except Exception as exc:
                    exc.program_step = a
                    raise
                continue
            try:
                stopped = self._native.run(steps[a], steps[b])
            except Exception as exc:
                failed = self._native.failed_step()
                exc.program_step = next((i for i in range(a, b + 1) if steps[i] == failed), a)
                raise
            if stopped >= 0:
                return next(i for i in range(a, b + 1) if steps[i] == stopped)
        return None
