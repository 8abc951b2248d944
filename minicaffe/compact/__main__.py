"""`python -m minicaffe.compact`: write the compacted (physically smaller) net of SSL weights.

    python -m minicaffe.compact --model M --weights W --out DIR [--report FILE] [--json FILE]
                                [--png FILE] [--modes [LIST]] [--rounds N] [--threads N]
                                [--name NAME]

Writes DIR/<name>.prototxt (a deploy net) and DIR/<name>.caffemodel (<name>: the model file's
stem unless --name), loads them back, checks that they compute the original's outputs on random
inputs, times both nets layer by layer and prints the per-layer table (Tables 1-3 of the SSL
paper) as Markdown; --report writes that Markdown to a file, --json the data, --png a figure
(FLOPs and forward time per layer before and after, and the first layer's connections per
input; needs matplotlib). --modes adds the
comparison of execution modes (dense, ccnmm, csr, compact by default). Exit status 0 on
success, 1 on a bad input or a failed check.
"""
import argparse
import logging
import os
import sys
import warnings

import numpy as np

log = logging.getLogger("minicaffe")


def _parser():
    ap = argparse.ArgumentParser(prog="python -m minicaffe.compact",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--model", "-model", required=True, help="net .prototxt (a deploy net)")
    ap.add_argument("--weights", "-weights", required=True, help="trained .caffemodel / .npz")
    ap.add_argument("--out", "-out", required=True, help="folder for the compacted net")
    ap.add_argument("--name", help="file name stem (default: the model file's)")
    ap.add_argument("--report", help="also write the Markdown table here")
    ap.add_argument("--json", help="write the report as JSON here")
    ap.add_argument("--png", help="draw the report (needs matplotlib)")
    ap.add_argument("--modes", nargs="?", const="dense,ccnmm,csr,compact",
                    help="also compare execution modes (comma-separated, default "
                         "dense,ccnmm,csr,compact; auto is one more)")
    ap.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds (0: no "
                    "timing)")
    ap.add_argument("--threads", type=int, help="compute threads (default: the library's)")
    ap.add_argument("--float64", action="store_true", help="analyse and check in float64")
    return ap


def load_checked(model, weights_path, dtype=np.float32):
    """Net(model, TEST) with the weights of `weights_path`; ShapeError naming the layer when a
    layer with parameters has none in the file or their shapes differ."""
    from minicaffe import weights as weights_io
    from minicaffe.errors import ShapeError
    from minicaffe.net import Net
    from minicaffe.phase import TEST

    net = Net(model, TEST, dtype=dtype)
    entries = weights_io.load(weights_path)
    present = {name for name, _, arrays in entries if arrays}
    missing = [layer for layer in net.layers if layer.blobs and layer.name not in present]
    if missing:
        layer = missing[0]
        raise ShapeError(f"{os.fspath(weights_path)}: layer '{layer.name}' ({layer.type}) of "
                         f"{os.fspath(model)} has no weights in the file (layers with weights "
                         f"there: {', '.join(sorted(present)) or 'none'}); the file does not "
                         "match the net")
    net.copy_from(entries)
    return net


def draw(report, path):
    """A PNG of `report`: FLOPs and measured forward time per Convolution / InnerProduct
    before and after (log scale), and the first layer's connections per input (Fig. 4b)."""
    from minicaffe.plot import require_matplotlib

    plt = require_matplotlib()
    rows = report.rows
    first = report.first_layer[0] if report.first_layer else None
    panels = 3 if first else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
    names = [r["layer"] for r in rows]
    x = np.arange(len(rows))
    for ax, key, title in ((axes[0], "flops", "FLOPs per image"),
                           (axes[1], "time_ms", "forward (ms)")):
        before = [r[key][0] or 0 for r in rows]
        after = [r[key][1] or 0 for r in rows]
        ax.bar(x - 0.2, before, 0.4, label="before")
        ax.bar(x + 0.2, after, 0.4, label="compacted")
        ax.set_xticks(x, names, rotation=30)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.legend()
    if first:
        counts = np.array(first["connections"], dtype=float)
        shape = first["shape"]
        if len(shape) == 3 and first["what"] == "inputs":       # (C, H, W) pixels
            image = counts.reshape(shape).sum(axis=0)
        elif len(shape) == 3:                                   # (C, kh, kw) shape fibres
            image = counts.reshape(shape[0], -1) if shape[0] > 1 else counts.reshape(shape[1:])
        else:
            image = counts.reshape(1, -1)
        im = axes[2].imshow(image, cmap="viridis")
        fig.colorbar(im, ax=axes[2])
        axes[2].set_title(f"{first['layer']}: connections per {first['what'][:-1]} "
                          f"({first['unconnected']}/{first['count']} none)")
    fig.suptitle(f"Compaction of '{report.net}'")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def verify(before, after, seed=0):
    """Max |difference| of every output of `after` from `before` on the same random inputs;
    ValueError naming the output when it is beyond float rounding."""
    rng = np.random.default_rng(seed)
    feed = {}
    for name in before.inputs:
        blob = before.blobs[name]
        feed[name] = (np.zeros(blob.shape) if "label" in name
                      else rng.random(blob.shape)).astype(blob.dtype)
    ref = {k: np.array(v) for k, v in before.forward(**feed).items()}
    got = after.forward(**{k: v for k, v in feed.items() if k in after.blobs})
    eps = 1e-4 if before.dtype == np.float32 else 1e-9
    worst = 0.0
    for name, value in ref.items():
        if name not in got:
            raise ValueError(f"compacted net has no output '{name}' (it has "
                             f"{', '.join(got)})")
        diff = float(np.max(np.abs(np.asarray(got[name]) - value))) if value.size else 0.0
        scale = 1.0 + float(np.max(np.abs(value))) if value.size else 1.0
        if not diff <= eps * scale:
            raise ValueError(f"compacted net differs from the original at output '{name}': max "
                             f"|difference| {diff:.3g} (allowed {eps * scale:.3g})")
        worst = max(worst, diff)
    return worst


def main(argv=None):
    args = _parser().parse_args(argv)
    from minicaffe.train import setup_logging

    setup_logging()
    from minicaffe import ops
    from minicaffe import weights as weights_io
    from minicaffe.compact import (CompactionWarning, compact_net, format_markdown, measure,
                                   report_json)
    from minicaffe.compact.modes import build_mode_nets, compare_modes, format_modes, parse_modes
    from minicaffe.errors import MinicaffeError
    from minicaffe.net import Net
    from minicaffe.phase import TEST
    from minicaffe.prototxt import to_text

    dtype = np.float64 if args.float64 else np.float32
    try:
        modes = parse_modes(args.modes) if args.modes else None
        if args.threads:
            ops.set_num_threads(args.threads)
        net = load_checked(args.model, args.weights, dtype)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CompactionWarning)
            result = compact_net(net)
        for w in caught:
            log.warning("%s", w.message)
        param, arrays = result
        name = args.name or os.path.splitext(os.path.basename(args.model))[0]
        os.makedirs(args.out, exist_ok=True)
        proto_path = os.path.join(args.out, f"{name}.prototxt")
        model_path = os.path.join(args.out, f"{name}.caffemodel")
        with open(proto_path, "w", encoding="utf-8") as f:
            f.write(f"# Compacted by `python -m minicaffe.compact` from {args.model} with "
                    f"{args.weights}.\n# Zero filters, channels and dead neurons removed; "
                    "layers with conv_mode LOWERED_CCNMM keep zero shape fibres.\n")
            f.write(to_text(param))
        weights_io.write_caffemodel(model_path, arrays, param.name)
        log.info("wrote %s and %s", proto_path, model_path)
        small = Net(proto_path, TEST, weights=model_path, dtype=dtype)
        worst = verify(net, small)
        log.info("check: the written net matches the original's outputs (max |difference| %.3g)",
                 worst)
        report = result.report
        if args.rounds > 0:
            measure(report, net, small, rounds=args.rounds)
        text = format_markdown(report)
        sys.stdout.write(text)
        if modes:
            nets = build_mode_nets(args.model, args.weights, modes, dtype=dtype)
            if "compact" in nets:
                nets["compact"] = small
            table = format_modes(compare_modes(nets, rounds=max(args.rounds, 1)))
            sys.stdout.write("\n## Execution modes\n\n" + table)
            text += "\n## Execution modes\n\n" + table
        if args.report:
            with open(args.report, "w", encoding="utf-8") as f:
                f.write(text)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(report_json(report))
        if args.png:
            draw(report, args.png)
            log.info("wrote %s", args.png)
    except (MinicaffeError, OSError, ValueError, ImportError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
