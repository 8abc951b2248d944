"""Sparsity report: what SSL has removed from each Convolution / InnerProduct layer.

Per layer (weights blob 0, lowered as in `minicaffe.groups`): element sparsity, row sparsity
(all-zero filters / output neurons), column sparsity (all-zero shape fibres / inputs), filters
and channels left (for InnerProduct, "channels" are inputs), whether the whole layer is zero,
and the multiply-adds left when zero rows and columns are compacted away, per image.
"""
import json
import os

import numpy as np

from minicaffe import backend, groups

REPORTED_TYPES = ("Convolution", "InnerProduct")


def weight_sparsity(w, group=1, spatial=1):
    """Sparsity figures of one weight array.

    w: `(N, C/g, kh, kw)` or `(N_out, K)`; spatial: output positions per image (oh*ow, 1 for
    InnerProduct). Returns a dict of plain Python numbers.
    """
    w = backend.asnumpy(w)
    g, m, k = groups.lowered_shape(w.shape, group)
    zr = groups.zero_groups(w, "row", group)
    zc = groups.zero_groups(w, "column", group)
    zch = groups.zero_groups(w, "channel", group)
    kept = sum(int((~zr[i]).sum()) * int((~zc[i]).sum()) for i in range(g))
    dense = g * m * k
    return {
        "elements": int(w.size),
        "element_sparsity": float((w == 0).sum() / max(w.size, 1)),
        "row_sparsity": float(zr.mean()) if zr.size else 0.0,
        "column_sparsity": float(zc.mean()) if zc.size else 0.0,
        "filters": int(zr.size), "filters_left": int((~zr).sum()),
        "channels": int(zch.size), "channels_left": int((~zch).sum()),
        "all_zero": bool(not np.any(w)),
        "flops_dense": 2 * dense * spatial,
        "flops_left": 2 * kept * spatial,
    }


def layer_sparsity(net):
    """One dict per Convolution / InnerProduct layer of `net` (name, type, figures)."""
    rows = []
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type not in REPORTED_TYPES or not layer.blobs:
            continue
        lp = layer.layer_param
        group = int(lp.convolution_param.group) if layer.type == "Convolution" else 1
        spatial = 1
        if layer.type == "Convolution" and lp.top and lp.top[0] in net.blobs:
            spatial = int(np.prod(net.blobs[lp.top[0]].shape[2:]))
        row = {"layer": name, "type": layer.type}
        row.update(weight_sparsity(layer.blobs[0].data, group, spatial))
        rows.append(row)
    return rows


def format_table(rows):
    """Log lines for `layer_sparsity` rows, plus a total FLOPs line."""
    lines = []
    width = max([len(r["layer"]) for r in rows] + [5])
    for r in rows:
        what = "channels" if r["type"] == "Convolution" else "inputs"
        lines.append(
            f"sparsity {r['layer']:<{width}} elem {100 * r['element_sparsity']:5.1f}%  "
            f"rows {100 * r['row_sparsity']:5.1f}%  cols {100 * r['column_sparsity']:5.1f}%  "
            f"filters {r['filters_left']}/{r['filters']}  {what} {r['channels_left']}/"
            f"{r['channels']}  flops {100 * r['flops_left'] / max(r['flops_dense'], 1):5.1f}%"
            + ("  ALL ZERO" if r["all_zero"] else ""))
    if rows:
        left = sum(r["flops_left"] for r in rows)
        dense = sum(r["flops_dense"] for r in rows)
        lines.append(f"sparsity {'total':<{width}} flops left {left}/{dense} "
                     f"({100 * left / max(dense, 1):.1f}% of dense)")
    return lines


def append_jsonl(path, record):
    """Append one JSON record as a line to `path` (folders created as needed)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
