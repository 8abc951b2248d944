"""Measured per-layer costs of compacted layers on this machine, for a latency budget.

A compacted Convolution / InnerProduct is a smaller dense layer of the same geometry (fewer
filters, fewer input channels). `calibrate` times, with the engine's own layer timing
(minicaffe.timing.compare_nets, every size interleaved), each controlled layer alone at full
size and with 1/2 and 1/4 of its filters and channels, at the batch of the deploy net (the
first TEST net's, else the train net's), and fits ms = a + b * FLOPs per image by least
squares. b (ms per FLOP) is what one removed FLOP buys in that layer; the controller's
per-layer share follows it. The layers SSL cannot shrink (pooling, ReLU, loss, ...) are timed
once in the same net and held constant ("other_ms"); data layers are not timed (a deploy net
reads an Input).

The fit is cached in a JSON file (MINICAFFE_CACHE_DIR, else ~/.cache/minicaffe,
`budget_costs.json`), keyed by the machine (CPU model, architecture), the build
(minicaffe.build_info's ISA and BLAS), the thread count, the layer's parameters and input shape
and the batch, so the calibration (a few seconds) runs once per machine and build.
"""
import copy
import json
import logging
import os
import platform
import time

import numpy as np

from minicaffe import timing
from minicaffe.files import write_atomic

log = logging.getLogger("minicaffe.solver")

FRACTIONS = (1.0, 0.5, 0.25)
ROUNDS = 7
SKIP = ("Data", "Input", "Loss", "Accuracy", "Silence")


def cache_path():
    """The calibration cache file."""
    folder = os.environ.get("MINICAFFE_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "minicaffe")
    return os.path.join(folder, "budget_costs.json")


def machine_key():
    """'cpu | arch | build | threads': what the measured costs depend on besides the layer."""
    from minicaffe.ops import native

    try:
        info = native.build_info()
        build = f"{info.get('isa', '?')}/{info.get('blas', '?')}" if isinstance(info, dict) \
            else str(info)
    except Exception:  # noqa: BLE001  (NumPy-only install: no kernels to describe)
        build = "numpy"
    return f"{timing.cpu_model()} | {platform.machine()} | {build} | threads {native.get_num_threads()}"


def _timed_net(solver):
    return solver.test_nets[0] if solver.test_nets else solver.net


def _layer_net(layer_param, in_shape, filters, channels, dtype):
    """A Net of an Input and one copy of `layer_param` with `filters` outputs reading
    `channels` input channels (InnerProduct: `channels` inputs)."""
    from minicaffe.net import Net
    from minicaffe.phase import TEST
    from minicaffe.prototxt import message_class

    net_param = message_class("NetParameter")(name="budget_calibration")
    shape = [int(in_shape[0]), int(channels)] + [int(d) for d in in_shape[2:]]
    inp = message_class("LayerParameter")(name="data", type="Input", top=["data"])
    inp.input_param.shape = [message_class("BlobShape")(dim=shape)]
    lp = copy.deepcopy(layer_param)
    for f in ("bottom", "top", "param", "include", "exclude", "loss_weight"):
        lp.clear(f)
    lp.bottom, lp.top = ["data"], ["out"]
    if lp.type == "Convolution":
        lp.convolution_param.num_output = int(filters)
        lp.convolution_param.group = 1
        lp.convolution_param.conv_mode = "LOWERED_GEMM"
    else:
        lp.inner_product_param.num_output = int(filters)
    net_param.layer = [inp, lp]
    net = Net(net_param, TEST, dtype=dtype)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.random(net.blobs["data"].shape)
    for b in net.layers[1].blobs:
        b.data[...] = rng.standard_normal(b.shape).astype(b.data.dtype)
    return net


def _shapes(net, name):
    i = list(net._layer_names).index(name)
    layer = net.layers[i]
    bottom = net.blobs[layer.layer_param.bottom[0]].shape
    return layer, tuple(int(d) for d in bottom)


def calibrate(solver, layers, rounds=ROUNDS):
    """{"layers": {name: [a_ms, b_ms_per_flop]}, "other_ms", "dense_ms", "batch", "key"} for
    the controlled `layers` of `solver`'s nets (see the module doc); reads and updates the
    cache."""
    net = _timed_net(solver)
    key = machine_key()
    path = cache_path()
    try:
        with open(path) as f:
            cache = json.load(f)
    except (OSError, ValueError):
        cache = {}
    fits, missing = {}, []
    batch = None
    for name in layers:
        layer, in_shape = _shapes(net, name)
        batch = batch or in_shape[0]
        entry = f"{key} | {layer.type} {_layer_key(layer)} in {in_shape}"
        if entry in cache:
            fits[name] = cache[entry]
        else:
            missing.append((name, layer, in_shape, entry))
    if missing:
        log.info("Budget: measuring the compacted forms of %s on this machine (cached in %s)",
                 ", ".join(n for n, *_ in missing), path)
        nets, sizes = {}, {}
        for name, layer, in_shape, _ in missing:
            m = int(layer.layer_param.convolution_param.num_output if layer.type ==
                    "Convolution" else layer.layer_param.inner_product_param.num_output)
            c = int(in_shape[1]) if layer.type == "Convolution" else int(np.prod(in_shape[1:]))
            for frac in FRACTIONS:
                mf, cf = max(1, round(m * frac)), max(1, round(c * frac))
                shape = in_shape if layer.type == "Convolution" else (in_shape[0], cf)
                small = _layer_net(layer.layer_param, shape, mf, cf, layer.blobs[0].data.dtype)
                label = f"{name}@{frac}"
                nets[label] = small
                sizes[label] = timing.layer_flops(small.layers[1])
        res = timing.compare_nets(nets, rounds=rounds, gemm=False)
        for name, _layer, _shape, entry in missing:
            xs = [sizes[f"{name}@{f}"] for f in FRACTIONS]
            ys = [res[f"{name}@{f}"]["layers"][small_name(res, name, f)]["forward_ms"]
                  for f in FRACTIONS]
            b, a = np.polyfit(np.asarray(xs, dtype=np.float64), np.asarray(ys), 1)
            fits[name] = [max(float(a), 0.0), max(float(b), 1e-15)]
            cache[entry] = fits[name]
        try:
            write_atomic(path, lambda f: json.dump(cache, f, indent=1))
        except OSError as exc:
            log.warning("Budget: cannot write the calibration cache %s (%s)", path, exc)
    other = _other_ms(net, set(layers), rounds)
    dense = other
    for name in layers:
        layer, _ = _shapes(net, name)
        a, b = fits[name]
        dense += a + b * timing.layer_flops(layer, "LOWERED_GEMM")
    return {"layers": fits, "other_ms": other, "dense_ms": dense, "batch": int(batch or 1),
            "key": key}


def small_name(res, name, frac):
    """The timed layer's name in a calibration net (its second layer)."""
    layers = list(res[f"{name}@{frac}"]["layers"])
    return layers[1]


def _layer_key(layer):
    from minicaffe.prototxt import to_text

    lp = copy.deepcopy(layer.layer_param)
    for f in ("name", "bottom", "top", "param", "include", "exclude"):
        lp.clear(f)
    return " ".join(to_text(lp).split())


def _other_ms(net, gemm_names, rounds):
    """ms per batch of the layers outside the budget, timed one by one in `net` (median of
    `rounds`). Data layers are neither timed nor run: the net's data cursor and the training
    run stay as they were (the blobs hold whatever they held; the cost does not depend on it)."""
    timed = [i for i, (name, layer) in enumerate(zip(net._layer_names, net.layers))
             if name not in gemm_names and not any(layer.type.endswith(s) for s in SKIP)]
    first = min((i for i, layer in enumerate(net.layers) if not layer.type.endswith("Data")),
                default=0)
    samples = {i: [] for i in timed}
    for r in range(rounds + 1):
        for i in range(first, len(net.layers)):
            t = time.perf_counter()
            net._forward_range(i, i)
            if r and i in samples:
                samples[i].append(1e3 * (time.perf_counter() - t))
    return float(sum(np.median(v) for v in samples.values()))
