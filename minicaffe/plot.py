"""`python -m minicaffe.plot LOG.jsonl [LOG2.jsonl ...] [--out PNG]`: the curves of a run.

Reads the `<snapshot_prefix>_log.jsonl` files the solver writes (see minicaffe/solver/runlog.py)
and draws three panels over iterations: the training loss (smoothed, as displayed) with the
test losses, the test accuracies, and the multiply-adds left after removing zero rows and
columns (% of dense, total and per Convolution / InnerProduct layer): what SSL removes and when.
Several files (or a log with resumed sections) are drawn one after another on one iteration
axis, each start marked by a dashed line with its label: the stages of a pipeline (dense
baseline, SSL, fine-tuning) as one picture.

Needs matplotlib (`pip install "minicaffe[experiments]"`); without it the command says so.
"""
import argparse
import os
import sys

from minicaffe.solver.runlog import read_log


def require_matplotlib():
    """matplotlib.pyplot on the Agg backend; raises ImportError with the install hint."""
    try:
        import matplotlib  # noqa: PLC0415  (optional dependency, imported on use)
    except ImportError as exc:
        raise ImportError("drawing figures needs matplotlib: pip install "
                          "\"minicaffe[experiments]\" (or pip install matplotlib)") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


class Curves:
    """The series of one stage, iterations shifted by `offset` (to follow a previous stage).

    FLOPs are fractions of `dense` ({layer: dense FLOPs}) when given (a compacted net's
    fine-tuning drawn against the original net), else of the stage's own dense net."""

    def __init__(self, label, records, offset=0, dense=None):
        self.label, self.offset = label, offset
        self.train = [(r["iter"] + offset, r["loss"]) for r in records
                      if r.get("kind") == "train" and "loss" in r]
        self.test = [(r["iter"] + offset, r.get("outputs", {})) for r in records
                     if r.get("kind") == "test" and r.get("net", 0) == 0]
        self.flops = []
        for r in records:
            rows = r.get("sparsity")
            if not rows:
                continue
            ref = {x["layer"]: (dense or {}).get(x["layer"], x["flops_dense"]) for x in rows}
            per = {x["layer"]: x["flops_left"] / max(ref[x["layer"]], 1) for x in rows}
            per["total"] = sum(x["flops_left"] for x in rows) / max(sum(ref.values()), 1)
            self.flops.append((r["iter"] + offset, per))
        iters = [i for i, _ in self.train] + [i for i, _ in self.test]
        self.end = max(iters) if iters else offset
        self.start = offset


def stages_from_logs(paths, labels=None):
    """[Curves] for the runs in `paths`, laid end to end: a resumed section continues at its
    own iteration, a new file starts where the previous one ended. FLOPs left are counted
    against the dense net of the first log (a later stage on a compacted net included)."""
    out, offset, dense = [], 0, None
    for k, path in enumerate(paths):
        runs = read_log(path)
        if not runs:
            raise ValueError(f"{path}: no records (is it a <snapshot_prefix>_log.jsonl file?)")
        name = (labels[k] if labels and k < len(labels)
                else os.path.basename(os.fspath(path)).removesuffix("_log.jsonl"))
        base = offset
        for j, (header, records) in enumerate(runs):
            label = name if len(runs) == 1 else f"{name} (run {header.get('run', j + 1)})"
            if dense is None:
                first = next((r["sparsity"] for r in records if r.get("sparsity")), None)
                if first:
                    dense = {x["layer"]: x["flops_dense"] for x in first}
            c = Curves(label, records, base, dense)
            c.start = base + int(header.get("iter", 0) or 0)
            out.append(c)
            offset = max(offset, c.end)
    return out


def _numeric(outputs, key):
    v = outputs.get(key)
    return v if isinstance(v, (int, float)) else None


def draw_curves(stages, path, title=None):
    """Write the three-panel figure of `stages` ([Curves]) to `path` (PNG); returns the path."""
    plt = require_matplotlib()
    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    ax_loss, ax_acc, ax_flops = axes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    layer_colors = {}
    for k, st in enumerate(stages):
        color = colors[k % len(colors)]
        if st.train:
            x, y = zip(*st.train)
            ax_loss.plot(x, y, color=color, lw=1, label=f"{st.label}: train loss")
        keys = sorted({name for _, outs in st.test for name in outs})
        for name in keys:
            pts = [(i, _numeric(o, name)) for i, o in st.test if _numeric(o, name) is not None]
            if not pts:
                continue
            x, y = zip(*pts)
            if "acc" in name:
                ax_acc.plot(x, [100 * v for v in y], "o-", color=color, ms=3,
                            label=f"{st.label}: {name}")
            elif "loss" in name:
                ax_loss.plot(x, y, "s--", color=color, ms=3, lw=1, label=f"{st.label}: test {name}")
        if st.flops:
            x = [i for i, _ in st.flops]
            names = [n for n in st.flops[-1][1] if n != "total"]
            for n in names:
                c = layer_colors.setdefault(n, colors[(len(layer_colors) + 3) % len(colors)])
                ax_flops.plot(x, [100 * per.get(n, float("nan")) for _, per in st.flops], color=c,
                              lw=1, label=n if k == 0 or n not in _labels(ax_flops) else None)
            ax_flops.plot(x, [100 * per["total"] for _, per in st.flops], color="black", lw=2,
                          label="total" if k == 0 else None)
        if k > 0:
            for ax in axes:
                ax.axvline(st.start, color="grey", ls=":", lw=1)
            ax_flops.annotate(st.label, (st.start, 98), fontsize=7, rotation=90, va="top",
                              ha="right", color="grey")
    ax_loss.set_ylabel("loss")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_flops.set_ylabel("multiply-adds left (% of dense)")
    ax_flops.set_ylim(0, 105)
    ax_flops.set_xlabel("iteration")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _labels(ax):
    return set(ax.get_legend_handles_labels()[1])


def default_output(path):
    """LOG_log.jsonl -> LOG_curves.png (next to the log)."""
    path = os.fspath(path)
    base = path[:-len("_log.jsonl")] if path.endswith("_log.jsonl") else os.path.splitext(path)[0]
    return base + "_curves.png"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m minicaffe.plot",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("logs", nargs="+", metavar="LOG.jsonl",
                    help="solver logs (<snapshot_prefix>_log.jsonl), drawn one after another")
    ap.add_argument("--out", "-o", help="PNG to write (default: the first log's name, "
                    "_log.jsonl -> _curves.png)")
    ap.add_argument("--label", action="append", help="label of each log (repeat, in order)")
    ap.add_argument("--title", help="figure title")
    args = ap.parse_args(argv)
    out = args.out or default_output(args.logs[0])
    try:
        stages = stages_from_logs(args.logs, args.label)
        draw_curves(stages, out, args.title)
    except (OSError, ValueError, ImportError) as exc:
        print(f"python -m minicaffe.plot: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
