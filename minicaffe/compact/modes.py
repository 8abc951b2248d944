"""Execution modes of one trained net, timed side by side.

  dense    every convolution LOWERED_GEMM (the full lowering, dense GEMM)
  ccnmm    every convolution LOWERED_CCNMM (zero rows and columns skipped inside the layer)
  csr      every convolution LOWERED_CSRMM (sparse weights times the full lowering)
  auto     each convolution the fastest of the three, from a short measurement
  compact  the compacted net (compact_net): smaller layers, zeros gone for good

All nets are timed interleaved in one process (timing.compare_nets). For every Convolution /
InnerProduct layer and in total: the GEMM alone (its input lowered beforehand) and the whole
layer (lowering included), each mode's speedup over dense beside the ideal one (the FLOP
ratio). InnerProduct layers run dense in every mode but compact (conv_mode is a convolution
field).
"""
import numpy as np

from minicaffe import ops, timing
from minicaffe.phase import TEST

MODES = ("dense", "ccnmm", "csr", "auto", "compact")


def parse_modes(text):
    """['dense', ...] from "dense,ccnmm,..."; ValueError naming a mode that is not known."""
    modes = [m.strip().lower() for m in str(text).split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"--modes: unknown mode(s) {', '.join(bad) or '(none)'}; expected a "
                         f"comma-separated list of {', '.join(MODES)}")
    return list(dict.fromkeys(modes))


def build_mode_nets(model, weights, modes, dtype=np.float32, rounds=5):
    """{mode: Net} of `model` with `weights` at TEST, one per mode (see the module docstring).
    `compact` compacts the dense net's weights."""
    from minicaffe.compact import build_net, compact_net  # noqa: PLC0415 (same package)
    from minicaffe.net import Net  # noqa: PLC0415

    nets = {}
    for mode in modes:
        if mode == "compact":
            dense = nets.get("dense") or Net(model, TEST, weights=weights, dtype=dtype,
                                             conv_mode="dense")
            param, arrays = compact_net(dense)
            nets[mode] = build_net(param, arrays, dtype=dtype)
        else:
            nets[mode] = Net(model, TEST, weights=weights, dtype=dtype, conv_mode=mode)
    return nets


def _fill_inputs(nets, seed=0):
    rng = np.random.default_rng(seed)
    first = next(iter(nets.values()))
    values = {}
    for name in first.inputs:
        blob = first.blobs[name]
        values[name] = (np.zeros(blob.shape) if "label" in name
                        else rng.random(blob.shape)).astype(blob.dtype)
    for net in nets.values():
        for name, value in values.items():
            if name in net.blobs and tuple(net.blobs[name].shape) == value.shape:
                net.blobs[name].data[...] = value


def compare_modes(nets, rounds=20):
    """Time {mode: Net} interleaved; returns the data `format_modes` prints:
    {"modes", "layers": [{"layer", "type", mode: {"forward_ms", "gemm_ms", "flops"} or None}],
    "totals": {mode: {"forward_ms", "gemm_ms", "layers_ms", "flops"}}, "auto": choices}."""
    _fill_inputs(nets)
    res = timing.compare_nets(nets, rounds=rounds, gemm=True)
    flops = {mode: timing.net_flops(net) for mode, net in nets.items()}
    reference = nets.get("dense") or next(iter(nets.values()))
    names = list(reference._layer_names)
    for net in nets.values():
        names += [n for n in net._layer_names if n not in names]
    types = {}
    for net in nets.values():
        types.update({layer.name: layer.type for layer in net.layers})
    layers = []
    for name in names:
        row = {"layer": name, "type": types[name]}
        for mode in nets:
            got = res[mode]["layers"].get(name)
            row[mode] = None if got is None else dict(got, flops=flops[mode].get(name))
        layers.append(row)
    totals = {mode: {"forward_ms": res[mode]["forward_ms"], "gemm_ms": res[mode]["gemm_ms"],
                     "layers_ms": res[mode]["layers_ms"], "flops": sum(flops[mode].values())}
              for mode in nets}
    auto = getattr(nets.get("auto"), "conv_modes", None) if "auto" in nets else None
    return {"modes": list(nets), "layers": layers, "totals": totals, "auto": auto,
            "rounds": rounds, "threads": ops.get_num_threads()}


def _cell(entry, base, key, ideal_base=None):
    if entry is None or entry.get(key) is None:
        return "removed" if entry is None else "–"
    t = entry[key]
    if base is None or base.get(key) is None or entry is base:
        return f"{t:.3f}"
    speed = base[key] / t if t else float("inf")
    text = f"{t:.3f} ({speed:.2f}x"
    if ideal_base is not None and entry.get("flops"):
        text += f" / ideal {ideal_base / entry['flops']:.2f}x"
    return text + ")"


def format_modes(data):
    """Two Markdown tables (GEMM only; whole layers, lowering included) of `compare_modes`."""
    modes = data["modes"]
    base_mode = "dense" if "dense" in modes else modes[0]
    head = "| layer | " + " | ".join(modes) + " |"
    rule = "|---|" + "---:|" * len(modes)
    out = [f"Forward times in ms (medians of {data['rounds']} interleaved rounds, "
           f"{data['threads']} thread(s)); in brackets the speedup over {base_mode} and the "
           "ideal (FLOP ratio).", ""]
    if data.get("auto"):
        short = {v: k for k, v in timing.CONV_MODES.items()}
        out += ["auto chose: " + ", ".join(f"{k} {short.get(v, v)}"
                                           for k, v in data["auto"].items()), ""]
    for title, key, only_gemm in (("GEMM only (input lowered beforehand)", "gemm_ms", True),
                                  ("Whole layers, lowering included", "forward_ms", False)):
        out += [f"### {title}", "", head, rule]
        for row in data["layers"]:
            if row["type"] not in timing.GEMM_TYPES:
                continue
            base = row.get(base_mode)
            ideal = base.get("flops") if base else None
            cells = [_cell(row.get(m), base, key, ideal) for m in modes]
            out.append(f"| {row['layer']} | " + " | ".join(cells) + " |")
        tot = data["totals"]
        b = tot[base_mode]
        if only_gemm:
            cells = [_cell({"gemm_ms": tot[m]["gemm_ms"], "flops": tot[m]["flops"]},
                           None if m == base_mode else b, "gemm_ms", b["flops"]) for m in modes]
            out.append("| **all GEMMs** | " + " | ".join(cells) + " |")
        else:
            other = {m: tot[m]["layers_ms"] - sum((r[m] or {}).get("forward_ms") or 0.0
                                                 for r in data["layers"]
                                                 if r["type"] in timing.GEMM_TYPES)
                     for m in modes}
            out.append("| other layers | " + " | ".join(
                _cell({"o": other[m]}, None if m == base_mode else {"o": other[base_mode]}, "o")
                for m in modes) + " |")
            cells = [_cell({"forward_ms": tot[m]["forward_ms"], "flops": tot[m]["flops"]},
                           None if m == base_mode else b, "forward_ms", b["flops"]) for m in modes]
            out.append("| **whole forward** | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)
