"""FLOPs left in a net as compaction would leave them, dead paths included (for the budget).

The budget controller (budget.py) steers towards a share of the dense multiply-adds, so it must
count what `minicaffe.compact` will really remove, not only the all-zero rows and columns of
each layer (solver/report.py). Compaction also removes, in both directions along a chain of
Convolution / InnerProduct layers joined by channel-wise layers (ReLU, Pooling, Dropout, ...):

- a filter of a producer whose output channel no kept weight of any consumer reads (its
  consumers' columns of that channel are all zero): "dead forward";
- the columns of a consumer that read a producer channel whose filter is all zero: that
  channel is the constant act(bias), which compaction folds into the consumer's bias
  (InnerProduct consumers, Convolutions without padding) or drops (the constant is 0);
  otherwise the columns stay. "Dead backward".
Removing one may make another removable (a row whose live weights all sit in dead columns), so
the rules run to a fixed point. This is the counter the controller calls every `interval`
iterations: NumPy on the weights' non-zero patterns, no net surgery.

It sees through the same layers compaction does for chains; a layer it has no rule for
(Concat, Eltwise, Slice, ...) ends the chain there, so the count is never lower than what
compaction leaves (tests/solver/test_budget_flops.py holds it equal to compaction's count on
LeNet and the CIFAR-10 quick net with planted zeros).

count(net, scope) -> list of {"layer", "type", "dense", "left"} (FLOPs per image, 2 x
multiply-adds), one per Convolution (scope "CONV") or Convolution and InnerProduct ("ALL").
"""
import numpy as np

from minicaffe import backend, groups

GEMM_TYPES = ("Convolution", "InnerProduct")
# layers that map channel c of their bottom to channel c of their top (what compaction follows)
CHANNEL_WISE = {"ReLU", "Pooling", "Dropout", "TanH", "Sigmoid", "AbsVal", "ELU", "BNLL",
                "Power", "Exp", "Log", "Swish", "Clip", "Threshold", "BatchNorm", "Scale",
                "Bias", "Split", "Flatten", "PReLU", "LRN"}
# channel-wise layers through which an exactly-zero channel stays exactly zero
ZERO_KEEPING = {"ReLU", "Pooling", "Dropout", "TanH", "AbsVal", "Split", "Flatten", "PReLU",
                "ELU", "Clip", "Swish"}


def _passes(layer):
    lp = layer.layer_param
    if layer.type == "LRN":
        return lp.lrn_param.norm_region == "WITHIN_CHANNEL"
    if layer.type == "Pooling":
        return not (lp.pooling_param.pool == "AVE" and _pads(lp.pooling_param))
    return layer.type in CHANNEL_WISE


def _pads(p):
    return bool(getattr(p, "pad", 0) or getattr(p, "pad_h", 0) or getattr(p, "pad_w", 0))


def _conv_pads(layer):
    p = layer.layer_param.convolution_param
    return any(int(v) for v in p.pad) or bool(p.pad_h or p.pad_w)


class Structure:
    """The Convolution / InnerProduct layers of a net and the channel links between them.

    Built once per net (the topology does not change during training); `count` reads the
    current weights.
    """

    def __init__(self, net):
        self.net = net
        names = list(net._layer_names)
        self.gemm = []                 # (index, name, layer)
        readers = {}                   # blob name -> [layer indices reading it]
        # (reader index, blob) -> index of the layer whose output it reads: in-place layers
        # (a ReLU writing its bottom) make one name stand for several values
        self.source = {}
        last_writer = {}
        for i, (name, layer) in enumerate(zip(names, net.layers)):
            lp = layer.layer_param
            for b in lp.bottom:
                readers.setdefault(b, []).append(i)
                self.source[(i, b)] = last_writer.get(b)
            for t in lp.top:
                last_writer[t] = i
            if layer.type in GEMM_TYPES and layer.blobs:
                self.gemm.append((i, name, layer))
        self.names = names
        self.index = {i: k for k, (i, _, _) in enumerate(self.gemm)}
        # producer gemm k -> (consumers [(gemm j, zero_keeping chain)], every reader is a gemm)
        self.consumers = {}
        self.producer_of = {}          # gemm j -> (gemm k, zero_keeping chain)
        for k, (i, _name, layer) in enumerate(self.gemm):
            if _group(layer) != 1:
                continue
            found, closed = [], True
            stack = [(t, (), i) for t in layer.layer_param.top]
            seen = set()
            while stack:
                blob, chain, after = stack.pop()
                for r in readers.get(blob, []):
                    if r <= after or (blob, r) in seen or self.source[(r, blob)] != after:
                        continue
                    seen.add((blob, r))
                    rl = net.layers[r]
                    if r in self.index and _group(rl) == 1 and \
                            list(rl.layer_param.bottom) == [blob]:
                        found.append((self.index[r], chain))
                    elif _passes(rl) and len(rl.layer_param.bottom) == 1:
                        stack.extend((t, chain + (rl,), r) for t in rl.layer_param.top)
                    else:
                        closed = False
            self.consumers[k] = (found, closed)
            for j, chain in found:
                self.producer_of[j] = (k, chain)

    def _spatial(self, layer):
        if layer.type != "Convolution":
            return 1
        return int(layer.geom.oh) * int(layer.geom.ow)

    def _fixpoint(self):
        """(non-zero patterns, live rows, live columns) per GEMM layer, each (g, M[, K])."""
        nz = []
        for _, _, layer in self.gemm:
            w = backend.asnumpy(layer.blobs[0].data)
            if layer.type == "InnerProduct" and layer.layer_param.inner_product_param.transpose:
                w = w.T
            g, m, kk = groups.lowered_shape(w.shape, _group(layer))
            nz.append(w.reshape(g, m, kk) != 0)
        rows = [a.any(axis=2) for a in nz]
        cols = [a.any(axis=1) for a in nz]
        changed = True
        while changed:
            changed = False
            for j, (k, chain) in self.producer_of.items():
                if nz[j].shape[0] != 1 or rows[k].shape[0] != 1:
                    continue
                c_out = rows[k].shape[1]
                per = cols[j].shape[1] // c_out if c_out else 0
                if per * c_out != cols[j].shape[1]:
                    continue
                # dead backward: a consumer's columns reading an all-zero producer filter
                layer_j = self.gemm[j][2]
                layer_k = self.gemm[k][2]
                foldable = layer_j.type == "InnerProduct" or not _conv_pads(layer_j)
                removable = np.full(c_out, foldable) | _zero_after(layer_k, chain, c_out)
                if removable.any():
                    dead = np.repeat(~rows[k][0] & removable, per)
                    new = cols[j][0] & ~dead
                    if (new != cols[j][0]).any():
                        cols[j][0] = new
                        changed = True
            for k, (found, closed) in self.consumers.items():
                if not found or not closed or rows[k].shape[0] != 1:
                    continue
                c_out = rows[k].shape[1]
                read = np.zeros(c_out, dtype=bool)
                ok = True
                for j, _ in found:
                    per = cols[j].shape[1] // c_out if c_out else 0
                    if nz[j].shape[0] != 1 or per * c_out != cols[j].shape[1]:
                        ok = False
                        break
                    read |= cols[j][0].reshape(c_out, per).any(axis=1)
                if not ok:
                    continue
                # dead forward: a producer filter no kept consumer weight reads
                new = rows[k][0] & read
                if (new != rows[k][0]).any():
                    rows[k][0] = new
                    changed = True
            for t in range(len(nz)):
                # a row whose live weights all sit in removed columns goes, and vice versa
                r_new = (nz[t] & cols[t][:, None, :]).any(axis=2) & rows[t]
                c_new = (nz[t] & r_new[:, :, None]).any(axis=1) & cols[t]
                if (r_new != rows[t]).any() or (c_new != cols[t]).any():
                    rows[t], cols[t] = r_new, c_new
                    changed = True
        return nz, rows, cols

    def live(self):
        """{layer name: (live rows (g, M), live columns (g, K))} of every GEMM layer, bool."""
        _, rows, cols = self._fixpoint()
        return {name: (rows[t], cols[t]) for t, (_, name, _) in enumerate(self.gemm)}

    def count(self, scope="CONV"):
        """Per-layer dense and left FLOPs per image (see the module doc), in net order."""
        nz, rows, cols = self._fixpoint()
        out = []
        for t, (_, name, layer) in enumerate(self.gemm):
            if scope == "CONV" and layer.type != "Convolution":
                continue
            spatial = self._spatial(layer)
            g, m, kk = nz[t].shape
            left = sum(int(rows[t][i].sum()) * int(cols[t][i].sum()) for i in range(g))
            out.append({"layer": name, "type": layer.type, "dense": 2 * g * m * kk * spatial,
                        "left": 2 * left * spatial, "rows": [int(rows[t].sum()), g * m],
                        "cols": [int(cols[t].sum()), g * kk]})
        return out


def _group(layer):
    return int(layer.layer_param.convolution_param.group) if layer.type == "Convolution" else 1


def _zero_after(layer, chain, n):
    """Per filter of `layer`: whether the filter, were it all zero, would reach the consumer as
    exactly 0: its bias (0 without one) carried through the channel-wise `chain` (ReLU clamps
    a negative bias to 0, pooling and Dropout at TEST keep a constant). A channel that is 0
    goes from any consumer, padded or not."""
    if len(layer.blobs) < 2:
        v = np.zeros(n, dtype=np.float64)
    else:
        v = backend.asnumpy(layer.blobs[1].data).astype(np.float64).reshape(-1)[:n]
    for link in chain:
        t = link.type
        if t == "ReLU":
            slope = float(link.layer_param.relu_param.negative_slope)
            v = np.where(v > 0, v, v * slope)
        elif t == "AbsVal":
            v = np.abs(v)
        elif t == "TanH":
            v = np.tanh(v)
        elif t not in ("Pooling", "Dropout", "Split", "Flatten"):
            return v == 0 if t in ZERO_KEEPING else np.zeros(n, dtype=bool)
    return v == 0


def count(net, scope="CONV"):
    """Per-layer FLOPs of `net` (see the module doc); builds the structure each call."""
    return Structure(net).count(scope)
