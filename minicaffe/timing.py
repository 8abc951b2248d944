"""Forward timings of nets, per layer: whole layers (lowering included) and their GEMMs alone,
the multiply-adds each Convolution / InnerProduct asks for in each convolution mode, and the
per-layer choice of the fastest mode (`Net(conv_mode="auto")`).

Several nets are timed *interleaved*: every round runs each net once, in turn, so that a ratio
between two nets is taken under the same machine load (docs/BENCHMARKS.md explains why only
such ratios are worth comparing). Times are medians over rounds, in milliseconds.

FLOPs follow the sparsity report: 2 x multiply-adds per image, a convolution group counted as
its lowered GEMM (rows x columns x output positions): all of them for dense weights, the kept
rows x kept columns for LOWERED_CCNMM, the non-zeros for LOWERED_CSRMM.
"""
import platform
import statistics
import time

import numpy as np

from minicaffe import backend, ops
from minicaffe.phase import phase_name

# Short mode names (the `--modes` of `python -m minicaffe.time`) and Caffe's conv_mode names.
CONV_MODES = {"dense": "LOWERED_GEMM", "ccnmm": "LOWERED_CCNMM", "csr": "LOWERED_CSRMM"}
SHORT_NAMES = {v: k for k, v in CONV_MODES.items()}
GEMM_TYPES = ("Convolution", "InnerProduct")


def cpu_model():
    """The CPU's model name (/proc/cpuinfo's "model name"; elsewhere what `platform` reports):
    what every measured time depends on, for reports and for caches of measured costs."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _now():
    backend.synchronize()
    return time.perf_counter()


def _effective_mode(net, layer):
    """The conv_mode a Convolution layer actually runs (sparse modes act at TEST only)."""
    if phase_name(net.phase) != "TEST":
        return "LOWERED_GEMM"
    return layer.conv_mode


def _group_inputs(layer, x):
    """[(x_g (N, C/g, H, W) contiguous, geometry of one group)] of a Convolution's input."""
    g = layer.geom
    if layer.group == 1:
        return [(x, g)]
    cg = layer.channels // layer.group
    geom = ops.ConvGeometry(cg, g.H, g.W, g.kh, g.kw, g.ph, g.pw, g.sh, g.sw, g.dh, g.dw)
    return [(np.ascontiguousarray(x[:, i * cg:(i + 1) * cg]), geom) for i in range(layer.group)]


def layer_flops(layer, mode="LOWERED_GEMM"):
    """FLOPs per image (2 x multiply-adds) of a Convolution / InnerProduct layer's GEMMs with its
    current weights in `mode` (a Caffe conv_mode or dense / ccnmm / csr); 0 for other layers.
    InnerProduct layers always count dense (conv_mode is a convolution field)."""
    mode = CONV_MODES.get(mode, mode)
    if layer.type == "InnerProduct":
        return 2 * int(layer.blobs[0].count)
    if layer.type != "Convolution":
        return 0
    positions = layer.geom.cols
    total = 0
    for w2d in layer.lowered_weights():
        w2d = backend.asnumpy(w2d)
        if mode == "LOWERED_CCNMM":
            nz = w2d != 0
            total += int(nz.any(axis=1).sum()) * int(nz.any(axis=0).sum())
        elif mode == "LOWERED_CSRMM":
            total += int(np.count_nonzero(w2d))
        else:
            total += w2d.size
    return 2 * total * positions


def net_flops(net, mode=None):
    """{layer name: FLOPs per image} of every Convolution / InnerProduct layer, each in `mode`
    (None: the mode the layer runs now)."""
    return {layer.name: layer_flops(layer, mode or _effective_mode(net, layer)
                                    if layer.type == "Convolution" else "LOWERED_GEMM")
            for layer in net.layers if layer.type in GEMM_TYPES}


def gemm_call(net, index):
    """A callable that runs only the GEMM(s) of layer `index`'s forward (Convolution: each
    group's lowered weights, in the layer's mode, times its input lowered once here, the kept
    columns only for LOWERED_CCNMM; InnerProduct: x W^T), or None for other layers. Run a
    forward first: the bottom blobs must hold the layer's input. The callable returns its
    outputs: a list of (M/group, N*oh*ow) per group, or (N, num_output)."""
    layer = net.layers[index]
    if layer.type not in GEMM_TYPES:
        return None
    x = net._bottom_vecs[index][0].data
    if layer.type == "InnerProduct":
        x2d = layer._x2d(net._bottom_vecs[index][0])
        w = layer.blobs[0].data
        out = np.empty((x2d.shape[0], layer.num_output), dtype=x2d.dtype)
        trans_b = not layer.transpose
        return lambda: ops.gemm(x2d, w, out=out, trans_b=trans_b)  # noqa: E731
    mode = _effective_mode(net, layer)
    calls = []
    for (xg, geom), w2d in zip(_group_inputs(layer, x), layer.lowered_weights()):
        fmt = ops.make_weights(np.ascontiguousarray(w2d), mode)
        cols = ops.lower(xg, geom, fmt)
        calls.append((fmt, cols, np.empty((fmt.shape[0], cols.shape[1]), dtype=cols.dtype)))

    def run():
        return [ops.matmul(fmt, cols, out=out) for fmt, cols, out in calls]
    return run


def _median_ms(values):
    return 1e3 * statistics.median(values) if values else float("nan")


def compare_nets(nets, rounds=20, warmup=2, gemm=True):
    """Interleaved forward timings of several nets (their input blobs as they are).

    nets: {label: Net}. Each round runs, for every net in turn: one whole forward, one forward
    layer by layer (each layer timed), and, with `gemm`, each Convolution / InnerProduct GEMM
    alone. Returns {label: {"forward_ms": median whole forward, "layers": {name: {"forward_ms",
    "gemm_ms" (None for layers without a GEMM)}}, "gemm_ms": sum of the layers' GEMM medians,
    "layers_ms": sum of the per-layer medians}}.
    """
    state = {}
    for label, net in nets.items():
        for _ in range(max(1, warmup)):
            net.forward()
        calls = {}
        if gemm:
            for i in range(len(net.layers)):
                call = gemm_call(net, i)
                if call is not None:
                    call()
                    calls[i] = call
        state[label] = {"whole": [], "layer": [[] for _ in net.layers],
                        "gemm": {i: [] for i in calls}, "calls": calls}
    for _ in range(rounds):
        for label, net in nets.items():
            s = state[label]
            last = len(net.layers) - 1
            t = _now()
            net._forward_range(0, last)
            s["whole"].append(_now() - t)
            for i in range(last + 1):
                t = _now()
                net._forward_range(i, i)
                s["layer"][i].append(_now() - t)
            for i, call in s["calls"].items():
                t = _now()
                call()
                s["gemm"][i].append(_now() - t)
    out = {}
    for label, net in nets.items():
        s = state[label]
        layers = {}
        for i, name in enumerate(net._layer_names):
            layers[name] = {"forward_ms": _median_ms(s["layer"][i]),
                            "gemm_ms": _median_ms(s["gemm"][i]) if i in s["gemm"] else None}
        out[label] = {
            "forward_ms": _median_ms(s["whole"]),
            "layers": layers,
            "layers_ms": sum(v["forward_ms"] for v in layers.values()),
            "gemm_ms": sum(v["gemm_ms"] for v in layers.values() if v["gemm_ms"] is not None),
        }
    return out


def choose_conv_modes(net, rounds=5, modes=("LOWERED_GEMM", "LOWERED_CCNMM", "LOWERED_CSRMM")):
    """Give each Convolution layer of `net` the fastest of `modes`, measured on its current
    input blobs: `rounds` rounds that, for every mode in turn, switch the layer to it, run one
    untimed forward (the weight format is built there) and time the next. Sets the layer's `conv_mode` (and its layer_param's) and
    returns {layer name: chosen Caffe conv_mode}. At TRAIN all layers get LOWERED_GEMM."""
    convs = [(i, layer) for i, layer in enumerate(net.layers) if layer.type == "Convolution"]
    if phase_name(net.phase) != "TEST":
        chosen = {layer.name: "LOWERED_GEMM" for _, layer in convs}
    else:
        net.forward()
        chosen = {}
        for i, layer in convs:
            times = {m: [] for m in modes}
            for _ in range(rounds):
                for mode in modes:
                    _set_mode(net, layer, mode)
                    net._forward_range(i, i)
                    t = _now()
                    net._forward_range(i, i)
                    times[mode].append(_now() - t)
            chosen[layer.name] = min(modes, key=lambda m: statistics.median(times[m]))
    for _, layer in convs:
        _set_mode(net, layer, chosen[layer.name])
    return chosen


def _set_mode(net, layer, mode):
    if layer.conv_mode != mode:
        layer.conv_mode = mode
        layer.layer_param.convolution_param.conv_mode = mode
        layer.refresh_weights()
        if net.use_plan:             # the inference plan bound the old mode's kernels
            net.use_plan = False
            net.use_plan = True
