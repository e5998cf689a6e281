"""Figures for the notebook. Each function returns a matplotlib Figure (built without pyplot, so
Jupyter shows it once, as the cell's value, and nothing leaks between cells)."""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from utils.data import CLASSES


def save(fig: Figure, folder, name: str, dpi: int = 80) -> Figure:
    """Write `fig` as folder/name.png (nothing if `folder` is empty); return it, so a cell shows it."""
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(folder) / f"{name}.png", dpi=dpi)
    return fig


def image_grid(images, labels, n=20, ncols=10, title=None) -> Figure:
    """The first `n` uint8 HWC images with their class names."""
    n = min(n, len(images))
    nrows = -(-n // ncols)
    fig = Figure(figsize=(1.2 * ncols, 1.35 * nrows), layout="constrained")
    for i, ax in enumerate(fig.subplots(nrows, ncols, squeeze=False).flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i])
            ax.set_title(CLASSES[int(labels[i])], fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def lr_range_plot(found) -> Figure:
    """Smoothed loss against LR (log axis), with the loss minimum, LRMAX and LRMIN marked."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(found.lrs, found.losses, color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    for lr, name, style in [(found.lr_at_min, "loss minimum", ":"), (found.lr_max, "LRMAX", "--"),
                            (found.lr_min, "LRMIN", "-.")]:
        ax.axvline(lr, color="black", linestyle=style, label=f"{name} {lr:.1e}")
    finite = np.isfinite(found.losses)
    low, high = np.min(np.asarray(found.losses)[finite]), np.asarray(found.losses)[finite][0]
    ax.set_ylim(low - 0.1 * (high - low + 1e-3), max(high, low) + 0.5 * (high - low + 1e-3))
    ax.set_title(f"LR range test: LRMAX = LR at the loss minimum / {found.lr_at_min / found.lr_max:g}, "
                 f"LRMIN = LRMAX / {found.lr_max / found.lr_min:g}", fontsize=10)
    ax.legend()
    return fig


def schedule_plot(lrs, steps_per_epoch) -> Figure:
    """The planned LR of every step, with epochs on the x axis."""
    fig = Figure(figsize=(7, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(1, len(lrs) + 1) / steps_per_epoch, lrs)
    peak = int(np.argmax(lrs))
    ax.annotate(f"LRMAX {lrs[peak]:.2e} (epoch {(peak + 1) / steps_per_epoch:g})", ((peak + 1) / steps_per_epoch, lrs[peak]),
                xytext=(10, -12), textcoords="offset points")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(f"one-cycle: {lrs[0]:.2e} -> {max(lrs):.2e} -> {lrs[-1]:.2e}")
    return fig
