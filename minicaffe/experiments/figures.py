"""The experiments' figures (matplotlib, Agg; PNG files).

    filters_grid({"LeNet 1 (baseline)": w, ...}, path)     Fig. 3: conv1 filters, one row per net
    tradeoff({"series": [(flops %, error %, label)]}, marks, path)   error vs FLOPs left
    neurons_and_pixels(rows, connections, shape, path)     Fig. 4: neurons per layer, pixel map
    error_vs_depth(points, marks, path)                    Fig. 6: error vs layers kept
    speedup_bars(groups, path)                             Fig. 7c / Table 4: speedups by layer

Every function writes `path` and returns it; ImportError (with the install hint) without
matplotlib.
"""
import os

import numpy as np

from minicaffe.plot import require_matplotlib


def _save(fig, path, plt):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def filters_grid(nets, path, title="conv1 filters"):
    """One row of 2-D filters per net: `nets` {label: weights (N, C, kh, kw)}; a filter is shown
    as its first input channel (the mean over channels when C > 1), all-zero filters as empty
    boxes, each row scaled to its own largest magnitude (grey = 0)."""
    plt = require_matplotlib()
    n_max = max(w.shape[0] for w in nets.values())
    fig, axes = plt.subplots(len(nets), n_max, figsize=(0.55 * n_max + 1.6, 0.7 * len(nets) + 0.5),
                             squeeze=False)
    for row, (label, w) in enumerate(nets.items()):
        w = np.asarray(w, np.float64)
        img = w[:, 0] if w.shape[1] == 1 else w.mean(axis=1)
        scale = float(np.abs(img).max()) or 1.0
        for j in range(n_max):
            ax = axes[row, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= img.shape[0]:
                ax.axis("off")
                continue
            if not np.any(w[j]):
                ax.imshow(np.zeros_like(img[j]), cmap="gray", vmin=-1, vmax=1, alpha=0.15)
                for s in ax.spines.values():
                    s.set_color("#bbbbbb")
            else:
                ax.imshow(img[j] / scale, cmap="gray", vmin=-1, vmax=1)
        kept = int(sum(bool(np.any(f)) for f in w))
        axes[row, 0].set_ylabel(f"{label}\n{kept}/{w.shape[0]}", rotation=0, ha="right",
                                va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, plt)


def tradeoff(series, marks, path, title=None, xlabel="conv FLOPs left (% of dense)",
             ylabel="test error (%)", budget=None):
    """Error vs FLOPs: `series` {name: [(x %, error %, label)]}, points joined in x order;
    `marks` [(label, x %, error %)] drawn as stars with a dashed horizontal line (baselines);
    `budget` an x value drawn as a vertical dotted line."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in series.items():
        pts = sorted(pts)
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, "o-", ms=4, lw=1, label=name)
        for x, y, lab in pts:
            if lab:
                ax.annotate(lab, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for k, (label, x, y) in enumerate(marks):
        ax.plot([x], [y], "*", ms=12, label=label, color=f"C{(k + 5) % 10}")
        ax.axhline(y, ls="--", lw=0.8, color=f"C{(k + 5) % 10}")
    if budget is not None:
        ax.axvline(budget, ls=":", color="grey", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, plt)


def neurons_and_pixels(table, connections, shape, path, title=None):
    """Fig. 4: (a) neurons per layer of each net, bars; (b) the number of kept connections of
    each input pixel of one net, as an image. `table` {net label: [(layer, neurons)]},
    `connections` a flat list of per-input counts, `shape` (H, W) of the input."""
    plt = require_matplotlib()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    labels = list(table)
    layers = [name for name, _ in table[labels[0]]]
    width = 0.8 / max(len(labels), 1)
    for k, label in enumerate(labels):
        vals = [n for _, n in table[label]]
        a.bar(np.arange(len(layers)) + k * width, vals, width, label=label)
    a.set_xticks(np.arange(len(layers)) + width * (len(labels) - 1) / 2)
    a.set_xticklabels(layers)
    a.set_ylabel("neurons (inputs for the first layer)")
    a.legend(fontsize=7)
    a.set_title("(a) neurons left per layer", fontsize=9)
    img = np.asarray(connections, np.float64).reshape(shape)
    im = b.imshow(img, cmap="viridis")
    fig.colorbar(im, ax=b, fraction=0.046)
    zero = float((img == 0).mean())
    b.set_title(f"(b) connections of each input pixel ({100 * zero:.1f}% have none)",
                fontsize=9)
    b.set_xticks([])
    b.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, plt)


def error_vs_depth(points, marks, path, title=None):
    """Fig. 6: `points` [(layers kept, error %, label)] of the SSL nets, `marks` [(label,
    layers, error %)] of the plain nets."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    pts = sorted(points)
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="SSL (depth-regularised)")
        for x, y, lab in pts:
            ax.annotate(lab, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for k, (label, x, y) in enumerate(marks):
        ax.plot([x], [y], "*", ms=12, label=label, color=f"C{k + 3}")
    ax.set_xlabel("layers (conv + fc) kept")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, plt)


def speedup_bars(groups, path, title=None, ylabel="speedup over dense (x)"):
    """Grouped bars: `groups` {series label: {category: value}}; a line at 1x."""
    plt = require_matplotlib()
    labels = list(groups)
    cats = []
    for g in groups.values():
        for c in g:
            if c not in cats:
                cats.append(c)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(cats) + 2), 4))
    width = 0.8 / max(len(labels), 1)
    for k, label in enumerate(labels):
        vals = [np.nan if groups[label].get(c) is None else groups[label][c] for c in cats]
        ax.bar(np.arange(len(cats)) + k * width, vals, width, label=label)
    ax.set_xticks(np.arange(len(cats)) + width * (len(labels) - 1) / 2)
    ax.set_xticklabels(cats, fontsize=8)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, plt)
