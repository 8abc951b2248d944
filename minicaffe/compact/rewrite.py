"""Residual sums with a dead input: the input goes, its value is added as a constant.

An Eltwise SUM input whose units are all fixed (a residual branch whose convolutions are all
zero: depth sparsity, Fig. 6 of the paper) contributes the same map to every sample. It is
dropped from the sum and its map, times its coefficient, is added after it:

  2+ inputs left   Eltwise of the others, then an in-place Bias `<name>_const` if the map is
                   not zero;
  1 input left     the Eltwise becomes a Bias (coefficient 1) or a Scale with a bias (other
                   coefficients), or nothing at all (coefficient 1, zero map: the shortcut is
                   passed through, see emit.py).

The Bias holds one value per channel when the map is constant over each channel, and the whole
(C, *rest) map otherwise (a padded convolution of a constant is not constant at the border).
Nothing then reads the branch, so the plan removes it whole.
"""
import numpy as np

from minicaffe.compact import fixed
from minicaffe.compact.graph import Node
from minicaffe.prototxt import BiasParameter, LayerParameter, ScaleParameter


def _unique(names, base):
    name, k = base, 1
    while name in names:
        k += 1
        name = f"{base}{k}"
    names.add(name)
    return name


def _param_array(const):
    """(array, num_axes) for a Bias / Scale operand from a (C, *rest) map."""
    flat = const.reshape(const.shape[0], -1)
    if flat.shape[1] == 0 or np.all(flat == flat[:, :1]):
        return flat[:, 0].copy() if flat.shape[1] else np.zeros(const.shape[0]), 1
    return const.copy(), -1


def drop_fixed_sum_inputs(g, plan=None):
    """Rewrite every Eltwise SUM of `g` that has some (not all) inputs entirely fixed; returns
    the number rewritten. Recomputes the fixed maps when anything changed.

    With a `plan`, an input counts as entirely fixed when the units the plan keeps are: the
    others go anyway (compact_net alternates planning and this rewrite until it changes
    nothing, which is what makes compacting a compacted net a no-op)."""
    names = g.layer_names()
    out, count = [], 0
    for node in g.nodes:
        out.append(node)
        if node.kind != "eltwise" or node.lp.eltwise_param.operation != "SUM":
            continue
        xs = [g.v(b) for b in node.bottoms]
        full = []
        for x in xs:
            kept = plan.is_kept(x.id) if plan is not None else np.ones(x.n, dtype=bool)
            full.append(bool(kept.any()) and bool(x.fixed_mask()[kept].all()))
        top = g.v(node.tops[0])
        dropped = [i for i, f in enumerate(full) if f]
        if not dropped or len(dropped) == len(xs):
            continue
        if top.emit_name in {xs[i].emit_name for i in dropped}:
            continue            # in place on a dropped input: its name would be produced twice
        coeff = [float(c) for c in node.lp.eltwise_param.coeff] or [1.0] * len(xs)
        const = sum(coeff[i] * fixed.sample_array(xs[i])[0] for i in dropped)
        left = [i for i in range(len(xs)) if i not in dropped]
        count += 1
        node.extra["dropped"] = [xs[i].emit_name for i in dropped]
        value, num_axes = _param_array(const)
        nonzero = bool(np.any(const))
        if len(left) >= 2:
            node.bottoms = [node.bottoms[i] for i in left]
            node.extra["coeff"] = [coeff[i] for i in left]
            if nonzero:
                mid = g.new_version(top.name + "/sum", top.emit_name, top.shape, None)
                g.v(mid).bounds = top.bounds.copy()
                node.tops = [mid]
                name = _unique(names, f"{node.name}_const")
                lp = LayerParameter(name=name, type="Bias", bottom=[top.emit_name],
                                    top=[top.emit_name],
                                    bias_param=BiasParameter(axis=1, num_axes=num_axes))
                out.append(Node(-1, name, "Bias", lp, None, [mid], [top.id], [value],
                                kind="unitwise", extra={"added_for": node.name}))
            continue
        (i,) = left
        s = xs[i]
        node.bottoms = [s.id]
        if coeff[i] == 1.0 and not nonzero:
            node.kind = "identity"
            continue
        if coeff[i] == 1.0:
            lp = LayerParameter(name=node.name, type="Bias", bottom=[s.emit_name],
                                top=[top.emit_name],
                                bias_param=BiasParameter(axis=1, num_axes=num_axes))
            blobs = [value]
        else:
            lp = LayerParameter(name=node.name, type="Scale", bottom=[s.emit_name],
                                top=[top.emit_name],
                                scale_param=ScaleParameter(axis=1, num_axes=num_axes,
                                                           bias_term=nonzero))
            blobs = [np.full(value.shape, coeff[i])] + ([value] if nonzero else [])
        node.type, node.lp, node.blobs, node.kind = lp.type, lp, blobs, "unitwise"
        node.layer = None
    if count:
        g.nodes = out
        g.renumber()
        fixed.compute(g)
    return count
