"""The compaction table, in the form of the SSL paper's Tables 1-3, as data, Markdown and JSON.

One row per Convolution / InnerProduct layer of the original net:
  filters        rows of the lowered weights (num_output), before -> after
  channels       input channels (InnerProduct: inputs), before -> after
  filter size    columns of one group's lowered matrix (C/g*kh*kw; InnerProduct: inputs),
                 before -> the columns the compacted layer still reads (zero shape fibres left
                 in a LOWERED_CCNMM layer are not read)
  row / column sparsity   fraction of all-zero rows / columns of the learned weights (the
                 paper's definition), per group then averaged
  FLOPs          per image, 2 x multiply-adds of the GEMM, before (dense) -> after (as the
                 compacted layer runs); ideal speedup = their ratio
  forward ms     measured by `measure` (both nets interleaved in one process), and the speedup
Plus totals, the whole forward pass, notes (kept zero filters and why, folded biases, dropped
residual branches), warnings (layers compaction does not see through) and the first layer's
unconnected inputs (the paper's Fig. 4b).
"""
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from minicaffe import groups, timing


@dataclass
class Report:
    """What compaction did, as data (see the module docstring for the row fields)."""

    net: str
    rows: list
    first_layer: list
    notes: list
    warnings: list
    removed_layers: list
    totals: dict
    timing: dict = field(default_factory=dict)

    def to_dict(self):
        return asdict(self)


def _sparsity(w, group):
    zr = groups.zero_groups(w, "row", group)
    zc = groups.zero_groups(w, "column", group)
    return float(zr.mean()) if zr.size else 0.0, float(zc.mean()) if zc.size else 0.0


def _after_shape(lp, blobs, positions):
    """(filters, channels, filter-size list per group, FLOPs) of a written conv / ip layer."""
    w = blobs[0]
    if lp.type == "Convolution":
        p = lp.convolution_param
        group = int(p.group)
        m = w.shape[0]
        lowered = w.reshape(group, m // group, -1)
        nz = lowered != 0
        if p.conv_mode == "LOWERED_CCNMM":
            rows = nz.any(axis=2).sum(axis=1)
            cols = nz.any(axis=1).sum(axis=1)
        else:
            rows = np.full(group, m // group)
            cols = np.full(group, lowered.shape[2])
        flops = 2 * int((rows * cols).sum()) * positions
        return m, w.shape[1] * group, [int(c) for c in cols], flops
    p = lp.inner_product_param
    m, k = (w.shape[1], w.shape[0]) if p.transpose else w.shape
    return m, k, [int(k)], 2 * m * k


def build(net, g, p, em, net_param, weights, warning_list):
    """The Report of one compaction (times are filled in later by `measure`)."""
    written = {lp.name: lp for lp in net_param.layer}
    blobs = {name: arrays for name, _, arrays in weights}
    rows, notes, first = [], [], []
    for node in g.nodes:
        info = em.info.get(node.name, {})
        if node.kind not in ("conv", "ip"):
            if info.get("note"):
                notes.append(f"{node.name}: {info['note']}")
            continue
        layer = node.layer
        w = node.blobs[0]
        group = layer.group if node.kind == "conv" else 1
        if node.kind == "ip" and layer.transpose:
            w = w.T
        row_sp, col_sp = _sparsity(w, group)
        positions = layer.geom.cols if node.kind == "conv" else 1
        before_flops = timing.layer_flops(layer, "LOWERED_GEMM")
        k_before = w.size // w.shape[0]
        channels_before = layer.channels if node.kind == "conv" else k_before
        row = {"layer": node.name, "type": node.type, "removed": node.name not in written,
               "filters": [int(w.shape[0]), 0], "channels": [int(channels_before), 0],
               "filter_size": [int(k_before), []], "row_sparsity": row_sp,
               "column_sparsity": col_sp, "flops": [int(before_flops), 0],
               "conv_mode": None, "group": [int(group), 0], "time_ms": [None, None]}
        if not row["removed"]:
            lp = written[node.name]
            m, c, ksize, flops = _after_shape(lp, blobs[node.name], positions)
            row.update({"filters": [row["filters"][0], int(m)],
                        "channels": [row["channels"][0], int(c)],
                        "filter_size": [row["filter_size"][0], ksize],
                        "flops": [row["flops"][0], int(flops)],
                        "group": [int(group), int(lp.convolution_param.group)
                                  if node.kind == "conv" else 1]})
            if node.kind == "conv":
                row["conv_mode"] = lp.convolution_param.conv_mode
            notes.extend(_layer_notes(g, p, node, info))
        rows.append(row)
        if node.bottoms[0] in g.inputs:
            first.append(_first_layer(g, node, w))
    removed = [name for name, info in em.info.items() if info.get("removed")]
    totals = {"flops": [sum(r["flops"][0] for r in rows), sum(r["flops"][1] for r in rows)]}
    return Report(net.name, rows, first, notes, list(warning_list), removed, totals)


def _layer_notes(g, p, node, info):
    out = []
    top = g.v(node.tops[0])
    what = "filter" if node.kind == "conv" else "neuron"
    by_reason = {}
    for r in info.get("rows_kept", []):
        if r in top.fixed:
            by_reason.setdefault(p.why(top.id, r), []).append(r)
    for reason, rs in by_reason.items():
        kind = "a zero" if not any(np.any(top.fixed[r]) for r in rs) else "an input-independent"
        out.append(f"{node.name}: {len(rs)} {what}(s) with {kind} output kept "
                   f"({', '.join(map(str, rs[:8]))}{'...' if len(rs) > 8 else ''}): {reason}")
    folded = info.get("folded_units", [])
    if folded:
        out.append(f"{node.name}: the constant outputs of {len(folded)} removed input unit(s) of "
                   f"'{info['input']}' folded into its bias"
                   + (" (bias_term turned on)" if info.get("bias_added") else ""))
    if node.kind == "conv" and node.layer.group != info.get("group_after", node.layer.group):
        out.append(f"{node.name}: group {node.layer.group} -> {info['group_after']} (groups "
                   "that lost every filter and input channel removed)")
    return out


def _first_layer(g, node, w):
    """Connections of every input of a layer that reads the net's input (Fig. 4b)."""
    x = g.v(node.bottoms[0])
    if node.kind == "ip":
        counts = (w != 0).sum(axis=0)
        what = "inputs"
        shape = list(x.shape[1:])
    else:
        lowered = w.reshape(w.shape[0], -1)
        counts = (lowered != 0).sum(axis=0)
        what = "shape fibres"
        shape = [int(w.shape[1]), int(w.shape[2]), int(w.shape[3])]
    return {"layer": node.name, "input": x.emit_name, "what": what, "count": int(counts.size),
            "unconnected": int((counts == 0).sum()), "shape": shape,
            "connections": [int(c) for c in counts]}


def _random_inputs(net, rng):
    for name in net.inputs:
        blob = net.blobs[name]
        if "label" in name:
            blob.data[...] = 0
        else:
            blob.data[...] = rng.random(blob.shape).astype(blob.dtype)


def measure(report, before, after, rounds=20, seed=0):
    """Time the forward of `before` and `after` (nets), interleaved, and fill the report's
    times (ms, medians): per Convolution / InnerProduct row, the other layers together, and
    the whole forward pass. Both nets get the same random inputs. Returns the report."""
    rng = np.random.default_rng(seed)
    _random_inputs(before, rng)
    for name in after.inputs:
        if name in before.blobs and tuple(after.blobs[name].shape) == tuple(before.blobs[name].shape):
            after.blobs[name].data[...] = before.blobs[name].data
    res = timing.compare_nets({"before": before, "after": after}, rounds=rounds, gemm=False)
    b, a = res["before"]["layers"], res["after"]["layers"]
    for row in report.rows:
        t0 = b[row["layer"]]["forward_ms"]
        t1 = a[row["layer"]]["forward_ms"] if row["layer"] in a else 0.0
        row["time_ms"] = [t0, t1]
    gemm_names = {r["layer"] for r in report.rows}
    other = [sum(v["forward_ms"] for k, v in layers.items() if k not in gemm_names)
             for layers in (b, a)]
    batch = before.blobs[before.inputs[0]].shape[0] if before.inputs else None
    report.timing = {"rounds": rounds, "batch": batch, "threads": _threads(),
                     "forward_ms": [res["before"]["forward_ms"], res["after"]["forward_ms"]],
                     "other_layers_ms": other}
    return report


def _threads():
    from minicaffe import ops  # noqa: PLC0415

    return ops.get_num_threads()


def _mega(flops):
    if flops >= 1e9:
        return f"{flops / 1e9:.2f}G"
    if flops >= 1e6:
        return f"{flops / 1e6:.2f}M"
    return f"{flops / 1e3:.1f}K"


def _ratio(a, b):
    if a is None or b is None:
        return "–"
    if b == 0:
        return "removed" if a else "–"
    return f"{a / b:.2f}x"


def _ms(t):
    return "–" if t is None else f"{t:.3f}"


def format_markdown(report):
    """The report as Markdown: the table, the whole-forward line, first-layer inputs, notes
    and warnings."""
    lines = [f"## Compaction of '{report.net}'", "",
             "| layer | filters | channels | filter size | row sparsity | column sparsity | "
             "FLOPs | ideal speedup | forward ms | speedup |",
             "|---|---|---|---|---:|---:|---|---:|---|---:|"]
    for r in report.rows:
        if r["removed"]:
            after = ["removed"] * 3
        else:
            ks = r["filter_size"][1]
            size = str(ks[0]) if len(set(ks)) == 1 else "/".join(map(str, ks))
            after = [str(r["filters"][1]), str(r["channels"][1]), size]
        mode = " (CCNMM)" if r["conv_mode"] == "LOWERED_CCNMM" else ""
        t0, t1 = r["time_ms"]
        lines.append(
            f"| {r['layer']}{mode} | {r['filters'][0]} → {after[0]} | {r['channels'][0]} → "
            f"{after[1]} | {r['filter_size'][0]} → {after[2]} | {100 * r['row_sparsity']:.1f}% | "
            f"{100 * r['column_sparsity']:.1f}% | {_mega(r['flops'][0])} → {_mega(r['flops'][1])} | "
            f"{_ratio(r['flops'][0], r['flops'][1])} | {_ms(t0)} → {_ms(t1)} | {_ratio(t0, t1)} |")
    f0, f1 = report.totals["flops"]
    tm = report.timing
    if tm:
        o0, o1 = tm["other_layers_ms"]
        lines.append(f"| other layers | | | | | | | | {_ms(o0)} → {_ms(o1)} | {_ratio(o0, o1)} |")
        w0, w1 = tm["forward_ms"]
        lines.append(f"| **whole forward** | | | | | | {_mega(f0)} → {_mega(f1)} | "
                     f"{_ratio(f0, f1)} | {_ms(w0)} → {_ms(w1)} | {_ratio(w0, w1)} |")
        lines += ["", f"Batch {tm['batch']}, {tm['threads']} thread(s), medians of "
                  f"{tm['rounds']} interleaved rounds; FLOPs per image (2 x multiply-adds)."]
    else:
        lines.append(f"| **total** | | | | | | {_mega(f0)} → {_mega(f1)} | {_ratio(f0, f1)} | | |")
    for fl in report.first_layer:
        pct = 100 * fl["unconnected"] / max(fl["count"], 1)
        lines += ["", f"First layer '{fl['layer']}' reads '{fl['input']}': {fl['unconnected']} "
                  f"of {fl['count']} {fl['what']} have no connection ({pct:.1f}%); the input "
                  "keeps its shape."]
    if report.removed_layers:
        lines += ["", "Removed layers: " + ", ".join(report.removed_layers) + "."]
    if report.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in report.notes]
    if report.warnings:
        lines += ["", "Warnings:"] + [f"- {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def report_json(report):
    """The report as a JSON string."""
    return json.dumps(report.to_dict(), indent=1)
