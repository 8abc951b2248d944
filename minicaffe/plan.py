"""The inference plan of a TEST net: its forward bound once per input shape (a fast path of Net).

Why: at batch 1 a LeNet layer's kernels take a few microseconds, while the plain forward
(net.py) spends about as much again per layer in Python: `reshape` (shapes compared, views
made), the op facade's argument checks, the lookups of blobs and parameters. A plan

- runs every layer's `reshape` once, when it is built (shapes are checked once per input
  shape, not per forward);
- asks each layer to `bind_forward` its forward into an ops.Program: kernels chosen and
  arguments checked ahead, writing into the blobs' own arrays, so a forward allocates nothing;
- runs a range of layers as one Program.run, in which consecutive compiled layers are one C++
  call without the GIL.

Layers that do not bind (data layers, losses, Python layers, grouped sparse convolutions...)
run `reshape` + `forward` from Python between the compiled runs, as in the plain forward, and
loss weights are applied right after their layer, as there.

The plan stays valid while no blob moves. `Blob.layout_version` grows with every change of a
blob's storage or shape; when it has, the (storage, shape) of every blob and parameter blob is
compared with the plan's and the plan is rebuilt if one differs (a new input shape,
`net.reshape()`, `share_with`). Dense weights are read in place, so new values (copy_from, a
training net shared with this one) need nothing; a compacted convolution's format is derived
from its weights, so its step sits behind a guard that stops the run when the weights differ
from the ones the format was built from, and the plan is rebuilt from that layer on. A layer run
from Python that moves a blob stops the plan too; the rest of the range then runs on the plain
path and the next forward builds a new plan.

Net uses a plan for TEST nets on the CPU when the compiled kernels are loaded: `forward()`,
`forward(start=, end=)` and everything built on them take it; `net.use_plan = False`, or
MINICAFFE_PLAN=0 in the environment when the net is made, keeps the plain forward (to debug a
layer, or to compare).
"""
import functools
import os

import numpy as np

from minicaffe import ops
from minicaffe.blob import Blob
from minicaffe.errors import MinicaffeError
from minicaffe.phase import phase_name


def plan_refusal(net, default=False):
    """Why `net` cannot forward through a plan (a TRAIN net, no compiled kernels, GPU arrays),
    or None when it can. default=True also refuses when MINICAFFE_PLAN=0 (the choice for a new
    net)."""
    if default and os.environ.get("MINICAFFE_PLAN", "1") == "0":
        return "MINICAFFE_PLAN=0"
    if phase_name(net.phase) != "TEST":
        return "it is a TRAIN net (plans run TEST nets)"
    if not ops.Program.available():
        return f"the compiled kernels are not loaded ({ops.native.unavailable_reason()})"
    if not all(type(b.data) is np.ndarray for b in net.blobs.values()):
        return "its blobs are GPU arrays (plans run on the CPU)"
    return None


def _layout(net):
    """(blob, storage, shape) of every blob and parameter blob of `net`: where its data lies."""
    blobs = list(net.blobs.values()) + [b for layer in net.layers for b in layer.blobs]
    return [(b, b._data_store, b._shape) for b in blobs]


class ForwardPlan:
    """The bound forward of one net at its current shapes.

    Raises what the layers' `reshape` and `bind_forward` raise (LayerSetupError naming the
    layer) when the net cannot be planned at these shapes.
    """

    def __init__(self, net):
        self.net = net
        self.program = program = ops.Program()
        self._first_step = []          # per layer: its first step (the next layer's when none)
        self._step_layer = []          # per step: its layer
        self.loss = 0.0
        for i, layer in enumerate(net.layers):
            bottom, top = net._bottom_vecs[i], net._top_vecs[i]
            first = len(program)
            with _named(layer, bottom, "forward failed"):
                layer.reshape(bottom, top)
                bound = layer.bind_forward(bottom, top, program)
            if not bound:
                assert len(program) == first, f"{layer!r}: bind_forward added steps, returned False"
                program.python(functools.partial(self._python_layer, i))
            if bound and any(w != 0 for w in layer.loss_weights):
                program.python(functools.partial(self._add_loss, i))
            self._first_step.append(first)
            self._step_layer.extend([i] * (len(program) - first))
        self._first_step.append(len(program))
        self._layout = _layout(net)
        self.version = Blob.layout_version

    def steps_of(self, i):
        """(first, last) program steps of layer i; first > last when it has none."""
        return self._first_step[i], self._first_step[i + 1] - 1

    def unmoved(self):
        """True when every blob still lies where the plan's steps point (then the plan is
        marked current again); False when one moved (the plan must be rebuilt)."""
        if any(b._data_store is not store or b._shape != shape for b, store, shape in self._layout):
            return False
        self.version = Blob.layout_version
        return True

    # -- steps run from Python -------------------------------------------------------------------
    def _add_loss(self, i):
        for blob, w in zip(self.net._top_vecs[i], self.net.layers[i].loss_weights):
            if w != 0:
                self.loss += w * float(blob.data.sum())
                blob.diff[...] = w            # the loss weight seeds backward
        return False

    def _python_layer(self, i):
        layer, bottom, top = self.net.layers[i], self.net._bottom_vecs[i], self.net._top_vecs[i]
        with _named(layer, bottom, "forward failed"):
            layer.reshape(bottom, top)
            layer.forward(bottom, top)
        self._add_loss(i)
        # A layer whose reshape moved a blob (a data-dependent top shape) invalidates what
        # follows: stop, and let the caller finish on the plain path.
        return Blob.layout_version != self.version and not self.unmoved()

    # -- running -----------------------------------------------------------------------------------
    def run(self, first, last):
        """Forward layers first..last; the loss they add is in `self.loss`.

        Returns None when done, else (kind, j): "guard" when layer j's weights changed since
        they were bound (layer j has not run: rebuild and continue from j), "moved" when layer
        j ran from Python and moved a blob (continue from j + 1 without this plan).
        """
        self.loss = 0.0
        a, b = self._first_step[first], self._first_step[last + 1] - 1
        if a > b:
            return None
        try:
            stopped = self.program.run(a, b)
        except (ValueError, IndexError) as exc:
            step = getattr(exc, "program_step", None)
            if step is None or self.program.is_python(step):
                raise                          # a layer run from Python names itself (_named)
            j = self._step_layer[step]
            raise self.net.layers[j].error(f"forward failed: {exc}", self.net._bottom_vecs[j]) \
                from exc
        if stopped is None:
            return None
        j = self._step_layer[stopped]
        return ("guard" if self.program.is_guard(stopped) else "moved"), j


class _named:
    """Context manager: ValueError / IndexError from a layer's code become the layer's error
    (as the plain forward reports them); minicaffe errors pass unchanged."""

    def __init__(self, layer, bottom, what):
        self.layer, self.bottom, self.what = layer, bottom, what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, MinicaffeError):
            return False
        if isinstance(exc, (ValueError, IndexError)):
            raise self.layer.error(f"{self.what}: {exc}", self.bottom) from exc
        return False


class Planner:
    """Keeps a net's current ForwardPlan: builds it on the first forward, checks on each forward
    that no blob moved, rebuilds it when one did."""

    def __init__(self, net):
        self.net = net
        self.plan = None
        self._unplannable_at = None    # layout version at which building failed

    def current(self):
        """The valid plan for the net as it is now, or None (the plain path must run)."""
        plan = self.plan
        if plan is not None and (plan.version == Blob.layout_version or plan.unmoved()):
            return plan
        self.plan = None
        if self._unplannable_at == Blob.layout_version:
            return None
        try:
            self.plan = ForwardPlan(self.net)
        except (MinicaffeError, ValueError, IndexError, TypeError):
            # The plain forward reports the problem if the range it runs has it.
            self._unplannable_at = Blob.layout_version
            return None
        return self.plan

    def forward(self, first, last):
        """Forward layers first..last through the plan; returns the loss, or None when there is
        no plan for the net as it is (the caller runs the plain forward)."""
        plan = self.plan
        if plan is None or plan.version != Blob.layout_version:
            plan = self.current()
            if plan is None:
                return None
        stop = plan.run(first, last)
        if stop is None:                        # the common case: done in one run
            return plan.loss
        return self._resume(plan, plan.loss, stop, last)

    def _resume(self, plan, loss, stop, last):
        """Finish a forward that `plan` stopped at `stop` (see ForwardPlan.run)."""
        start, refreshed = None, set()
        while True:
            if start is not None:
                stop = plan.run(start, last)
                loss += plan.loss
                if stop is None:
                    return loss
            kind, j = stop
            if kind == "guard":
                # Layer j's weights changed: its derived format is rebuilt from them (refresh:
                # even where the old one compares equal, e.g. -0.0 for 0.0, so that the new
                # guard's snapshot holds the same bits), then the plan, from layer j on.
                self.plan = None
                layer = self.net.layers[j]
                refresh = getattr(layer, "refresh_weights", None)
                if refresh is not None:
                    refresh()
                plan = self.current() if j not in refreshed else None
                refreshed.add(j)
                if plan is not None:
                    start = j
                    continue
                return loss + self.net._forward_layers(j, last)
            self.plan = None
            return loss + self.net._forward_layers(j + 1, last) if j < last else loss
