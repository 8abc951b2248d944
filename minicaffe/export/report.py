"""What an export did: inputs, outputs, the ONNX operators of each layer, the layers left out,
notes, and the multiply-add work ONNX Runtime does next to minicaffe's compacted layers.

ONNX has no structured-sparse convolution, so a layer minicaffe runs compacted
(conv_mode LOWERED_CCNMM: only the kept filters x kept shape fibres of each group) or as CSR
(LOWERED_CSRMM) is exported with its weights dense, zeros included, and ONNX Runtime computes
the whole product. `flops` counts both, per sample.
"""
import json
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LayerFlops:
    """FLOPs per sample of one layer: `dense` (what the ONNX graph computes) and `minicaffe`
    (what minicaffe computes in the layer's conv_mode); 2 per multiply-add."""

    layer: str
    type: str
    mode: str
    dense: int
    minicaffe: int


@dataclass
class ExportReport:
    """The export of one net. `str(report)` is a readable summary; `as_dict()` is JSON-ready."""

    net: str
    opset: int
    inputs: list = field(default_factory=list)       # (name, shape with 'N' for the batch)
    outputs: list = field(default_factory=list)
    layers: list = field(default_factory=list)       # (layer name, type, [ONNX op types])
    dropped: list = field(default_factory=list)      # (layer name, type, reason)
    notes: list = field(default_factory=list)
    flops: list = field(default_factory=list)        # LayerFlops
    path: str = None
    model: object = None                             # the onnx.ModelProto

    @property
    def dense_flops(self):
        return sum(f.dense for f in self.flops)

    @property
    def minicaffe_flops(self):
        return sum(f.minicaffe for f in self.flops)

    def flops_summary(self):
        """One sentence on what ONNX Runtime loses to the dense weights ('' when nothing)."""
        sparse = [f for f in self.flops if f.minicaffe != f.dense]
        if not sparse:
            return ""
        names = ", ".join(f"{f.layer} ({f.mode})" for f in sparse)
        d, m = self.dense_flops, self.minicaffe_flops
        verb = "is" if len(sparse) == 1 else "are"
        return (f"ONNX has no structured-sparse convolution: {names} {verb} exported with dense "
                f"weights (removed filters and shape fibres as zeros). Per sample, ONNX Runtime "
                f"computes {d / 1e6:.3f} MFLOP in the convolutions and inner products where "
                f"minicaffe computes {m / 1e6:.3f} MFLOP ({d / max(m, 1):.2f}x the work).")

    def as_dict(self):
        return {
            "net": self.net, "opset": self.opset, "path": self.path,
            "inputs": [{"name": n, "shape": list(s)} for n, s in self.inputs],
            "outputs": [{"name": n, "shape": list(s)} for n, s in self.outputs],
            "layers": [{"name": n, "type": t, "onnx": ops} for n, t, ops in self.layers],
            "dropped": [{"name": n, "type": t, "reason": r} for n, t, r in self.dropped],
            "notes": list(self.notes),
            "flops": [vars(f) for f in self.flops],
            "dense_flops": self.dense_flops, "minicaffe_flops": self.minicaffe_flops,
        }

    def to_json(self):
        return json.dumps(self.as_dict(), indent=1)

    def __str__(self):
        lines = [f"ONNX export of net '{self.net}' (opset {self.opset})"
                 + (f" -> {self.path}" if self.path else "")]
        lines.append("inputs:  " + ", ".join(f"{n} {_shape_text(s)}" for n, s in self.inputs))
        lines.append("outputs: " + ", ".join(f"{n} {_shape_text(s)}" for n, s in self.outputs))
        if self.layers:
            wn = max([len(n) for n, _, _ in self.layers] + [5])
            wt = max([len(t) for _, t, _ in self.layers] + [4])
            lines.append("")
            lines.append(f"{'layer':<{wn}}  {'type':<{wt}}  ONNX")
            for n, t, ops in self.layers:
                lines.append(f"{n:<{wn}}  {t:<{wt}}  {' + '.join(ops) or '(no node: same value)'}")
        if self.dropped:
            lines.append("")
            lines.append("left out:")
            lines.extend(f"  {n} ({t}): {r}" for n, t, r in self.dropped)
        if self.flops:
            lines.append("")
            wn = max([len(f.layer) for f in self.flops] + [5])
            lines.append(f"{'layer':<{wn}}  {'conv_mode':<13}  {'ONNX MFLOP':>10}  "
                         f"{'minicaffe MFLOP':>15}")
            for f in self.flops:
                lines.append(f"{f.layer:<{wn}}  {f.mode:<13}  {f.dense / 1e6:>10.3f}  "
                             f"{f.minicaffe / 1e6:>15.3f}")
            lines.append(f"{'total':<{wn}}  {'':<13}  {self.dense_flops / 1e6:>10.3f}  "
                         f"{self.minicaffe_flops / 1e6:>15.3f}   (per sample)")
        summary = self.flops_summary()
        if summary or self.notes:
            lines.append("")
        if summary:
            lines.append(summary)
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _kept(w2d):
    """(kept rows, kept columns) of a lowered weight matrix: those with a non-zero entry."""
    nz = w2d != 0
    return int(nz.any(axis=1).sum()), int(nz.any(axis=0).sum())


def layer_flops(layer, top_shape, batch):
    """LayerFlops of a Convolution, Deconvolution or InnerProduct (None for other layers);
    `top_shape` is its output's shape in the net, `batch` the net's batch size."""
    t = layer.type
    if t == "Convolution":
        P = int(np.prod(top_shape[2:]))
        mode = layer.conv_mode
        groups = [np.asarray(w) for w in layer.lowered_weights()]
        dense = sum(2 * w.size * P for w in groups)
        if mode == "LOWERED_CCNMM":
            work = sum(2 * r * c * P for r, c in (_kept(w) for w in groups))
        elif mode == "LOWERED_CSRMM":
            work = sum(2 * int(np.count_nonzero(w)) * P for w in groups)
        else:
            work = dense
        return LayerFlops(layer.name, t, mode, dense, work)
    if t == "Deconvolution":
        H, W = layer.geom.oh, layer.geom.ow            # the input plane of the transposed conv
        dense = 2 * layer.blobs[0].count * H * W
        return LayerFlops(layer.name, t, "LOWERED_GEMM", dense, dense)
    if t == "InnerProduct":
        rows = int(np.prod(top_shape[:-1])) // max(batch, 1)
        dense = 2 * layer.blobs[0].count * max(rows, 1)
        return LayerFlops(layer.name, t, "dense", dense, dense)
    return None
