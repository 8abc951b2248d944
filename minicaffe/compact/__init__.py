"""Compaction: the zeros SSL learned, removed from the network for good.

    param, weights = compact_net(net)            # a TEST net with its (sparse) weights loaded
    result = compact_net(net); result.report     # the per-layer table as data (report.py)
    small = build_net(param, weights)            # a minicaffe.Net of the compacted net
    python -m minicaffe.compact --model M --weights W --out DIR [--report F] [--json F]

`compact_net` returns the NetParameter of a deploy net and its weights `[(layer name, type,
[arrays])]` (write them with `minicaffe.weights.save_layers` / `write_caffemodel`), computing the
same outputs as `net` within float rounding. What it removes, and why what it keeps stays:

- zero filters of a Convolution and zero output neurons of an InnerProduct, and every filter or
  neuron whose output no kept weight reads, with the matching input channels / inputs of their
  consumers, followed through unit-wise layers (ReLU and the other element-wise layers,
  Pooling, LRN within a channel, Dropout, BatchNorm, Scale, Bias, Split), Flatten and Reshape
  that keep whole channels, Concat and Slice along channels (offsets shift), Eltwise (a
  channel goes only when it goes from every input) and LRN across channels (exactly: see
  plan.py);
- a removed filter whose output is not zero but input-independent (its bias, a BatchNorm
  shift) is folded into each consumer's bias where that is exact: InnerProduct consumers
  always, Convolutions without padding when the value is constant over the map. Otherwise the
  filter stays (its weights are zero; LOWERED_CCNMM skips it) and the report says why;
- a residual sum whose branch is input-independent (all its convolutions zero) loses the
  branch, which is replaced by a constant (rewrite.py);
- shape fibres that are zero inside a kept channel stay in the blob (a filter of irregular
  shape cannot be written as a smaller dense one) and that layer gets `conv_mode:
  LOWERED_CCNMM`, so its compacted lowering reads only the kept columns;
- zero input connections of the first layer (input pixels nothing reads) are reported: the
  net's input keeps its shape.

A layer compaction has no rule for stops it at that point: everything it reads and writes keeps
its shape, and a `CompactionWarning` names it when a pruned producer or consumer sits next to
it. The result is never silently wrong: what is not understood is kept.
"""
import warnings

import numpy as np

from minicaffe.compact import emit, fixed, graph, plan, report, rewrite
from minicaffe.compact.report import format_markdown, measure, report_json
from minicaffe.errors import ShapeError
from minicaffe.phase import TEST


class CompactionWarning(UserWarning):
    """A layer compaction does not see through sits next to pruned structure."""


class CompactResult(tuple):
    """`(net_param, weights)`, unpackable as a pair, with `.report` (report.Report: the per-layer
    table, notes and warnings as data) and `.warnings` (list of str)."""

    def __new__(cls, net_param, weights, report_data, warning_list):
        self = super().__new__(cls, (net_param, weights))
        self.report = report_data
        self.warnings = warning_list
        return self

    @property
    def net_param(self):
        return self[0]

    @property
    def weights(self):
        return self[1]


def _barrier_warnings(g, p):
    out = []
    for node in g.nodes:
        if node.kind != "barrier" or not plan.barrier_live(p, g, node):
            continue
        pruned_in = [g.v(b).emit_name for b in node.bottoms if g.v(b).fixed]
        pruned_out = []
        for vid in node.tops:
            for i, _ in g.v(vid).readers:
                reader = g.nodes[i]
                if reader.kind in ("conv", "ip") and (~reader.nz.any(axis=0)).any():
                    pruned_out.append(reader.name)
        if not pruned_in and not pruned_out:
            continue
        where = []
        if pruned_in:
            where.append("its input " + ", ".join(f"'{n}'" for n in pruned_in)
                         + " has input-independent (pruned) channels")
        if pruned_out:
            where.append("its output feeds " + ", ".join(f"'{n}'" for n in pruned_out)
                         + ", which reads some channels with all-zero weights")
        out.append(f"layer '{node.name}' ({node.type}): compaction stops here ({node.why}); "
                   + " and ".join(where) + "; those channels are kept")
    return out


def compact_net(net, deploy=True):
    """The compacted deploy net of `net` (a minicaffe.Net with its trained weights).

    Returns a CompactResult: `(NetParameter, [(layer name, type, [arrays])])` plus `.report`.
    The net is analysed as it runs at TEST (Dropout passes through, BatchNorm uses its stored
    statistics unless `use_global_stats: false`). With `deploy`, data layers become Input
    layers of the same shapes. Warns CompactionWarning for each layer it cannot see through
    next to pruned structure. Raises ShapeError when the net has no channel structure to read
    (e.g. an empty net).
    """
    if not net.layers:
        raise ShapeError(f"compact_net: net '{net.name}' has no layers")
    g = graph.from_net(net)
    fixed.compute(g)
    rewrite.drop_fixed_sum_inputs(g)
    p = plan.decide(g)
    while rewrite.drop_fixed_sum_inputs(g, p):
        p = plan.decide(g)
    em = emit.Emitter(g, p, deploy=deploy)
    net_param, weights = em.run()
    notes = _barrier_warnings(g, p)
    for text in notes:
        warnings.warn(text, CompactionWarning, stacklevel=2)
    data = report.build(net, g, p, em, net_param, weights, notes)
    return CompactResult(net_param, weights, data, notes)


def build_net(net_param, weights, phase=TEST, dtype=np.float32):
    """A minicaffe.Net of `net_param` holding `weights` ([(name, type, [arrays])])."""
    from minicaffe.net import Net  # noqa: PLC0415 (import on use; net is below compact)

    net = Net(net_param, phase, dtype=dtype)
    net.copy_from(list(weights))
    return net


__all__ = ["compact_net", "build_net", "CompactResult", "CompactionWarning", "measure",
           "format_markdown", "report_json"]
