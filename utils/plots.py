"""Figures for the notebook. Each function returns a matplotlib Figure (built without pyplot, so
Jupyter shows it once, as the cell's value, and nothing leaks between cells)."""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from utils.data import CLASSES
from utils.loaders import as_trained
from utils.gallery import percent
from utils.transforms import describe


def save(fig: Figure, folder, name: str, dpi: int = 80) -> Figure:
    """Write `fig` as folder/name.png (nothing if `folder` is empty); return it, so a cell shows it."""
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(folder) / f"{name}.png", dpi=dpi)
    return fig


def by_class(labels, per_class: int = 1, classes: int = len(CLASSES)) -> list:
    """Indices of the first `per_class` images of each class, class by class (the folders are
    sorted by class, so "the first 20 images" would all be airplanes)."""
    labels = np.asarray(labels)
    return [int(i) for c in range(classes) for i in np.flatnonzero(labels == c)[:per_class]]


def image_grid(images, labels, per_class=2, title=None) -> Figure:
    """The first `per_class` images of every class with their class names, a class per column."""
    fig = Figure(figsize=(1.2 * len(CLASSES), 1.35 * per_class), layout="constrained")
    axes = fig.subplots(per_class, len(CLASSES), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for c, name in enumerate(CLASSES):
        for row, i in enumerate(np.flatnonzero(np.asarray(labels) == c)[:per_class]):
            axes[row, c].imshow(images[i], interpolation="nearest")
            axes[row, c].set_title(name, fontsize=8)
    fig.suptitle(title or "")
    return fig


def lr_range_plot(found) -> Figure:
    """Smoothed loss against LR (log axis), with the loss minimum, LRMAX and LRMIN marked; the title
    says which rule set each bound."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(found.lrs, found.losses, color="tab:blue")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)")
    for lr, name, style in ((found.lr_at_min, "loss minimum", ":"), (found.lr_max, "LRMAX", "--"),
                            (found.lr_min, "LRMIN", "-.")):
        ax.axvline(lr, color="black", linestyle=style, label=f"{name} {lr:.1e}")
    losses = np.asarray(found.losses)[np.isfinite(found.losses)]
    low, high = losses.min(), losses[0]
    ax.set_ylim(low - 0.1 * (high - low + 1e-3), max(high, low) + 0.5 * (high - low + 1e-3))
    ratio = found.lr_at_min / found.lr_max
    peak = "fixed" if found.fixed_max else "the loss minimum" + (f" / {ratio:g}" if abs(ratio - 1) > 1e-9 else "")
    floor = "where the loss starts to fall" if found.lr_onset else f"LRMAX / {found.lr_max / found.lr_min:g}"
    ax.set_title(f"LR range test: LRMAX = {peak}, LRMIN = {floor}", fontsize=10)
    ax.legend()
    return fig


def schedule_plot(lrs, steps_per_epoch) -> Figure:
    """The planned LR of every step, with epochs on the x axis, LRMAX and LRMIN marked."""
    fig = Figure(figsize=(7, 3), layout="constrained")
    ax = fig.subplots()
    epochs = np.arange(1, len(lrs) + 1) / steps_per_epoch
    ax.plot(epochs, lrs)
    peak = int(np.argmax(lrs))
    ax.plot(epochs[peak], lrs[peak], "o", color="tab:red")
    ax.annotate(f"LRMAX {lrs[peak]:.2e} (end of epoch {epochs[peak]:g})", (epochs[peak], lrs[peak]),
                xytext=(8, 4), textcoords="offset points", va="bottom")
    ax.axhline(lrs[0], color="grey", linestyle=":")
    last = "first and last step" if np.isclose(lrs[-1], lrs[0]) else f"first step; the last {lrs[-1]:.2e}"
    ax.annotate(f"LRMIN {lrs[0]:.2e} ({last})", (epochs[-1], lrs[0]), xytext=(-4, 6),
                textcoords="offset points", ha="right", va="bottom")
    ax.set(ylim=(0, 1.2 * max(lrs)), xlabel="epoch", ylabel="learning rate")
    ax.set_title(f"one-cycle: {lrs[0]:.2e} -> {max(lrs):.2e} -> {lrs[-1]:.2e}, linear, one step per batch")
    return fig


def augmentation_grid(loader, n=4, epochs=range(1, 7)) -> Figure:
    """An image of each of `n` classes as stored, then as the training `loader` draws it in each of
    `epochs` (reflect-padded crop, flip, cutout): the very images training sees."""
    dataset = loader.dataset
    indices = by_class(dataset.labels)[:n]
    epochs = list(epochs)
    fig = Figure(figsize=(1.25 * (len(epochs) + 1), 1.3 * len(indices)), layout="constrained")
    axes = fig.subplots(len(indices), len(epochs) + 1, squeeze=False)
    for row, i in zip(axes, indices):
        row[0].imshow(dataset.original(i), interpolation="nearest")
        row[0].set_title(f"original: {CLASSES[int(dataset.labels[i])]}", fontsize=8)
        for ax, epoch in zip(row[1:], epochs):
            ax.imshow(as_trained(loader, epoch, i), interpolation="nearest")
            ax.set_title(f"epoch {epoch}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"train pipeline: {describe(dataset.transform)}", fontsize=10)
    return fig


def curves(history, eval_name="test") -> Figure:
    """Loss and accuracy per epoch, train against the evaluation set (`eval_name`: test or validation)."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    loss, acc = fig.subplots(1, 2)
    for split, style in (("train", "-o"), ("test", "-s")):
        label = eval_name if split == "test" else split
        loss.plot(epochs, [row[f"{split}_loss"] for row in history], style, markersize=3, label=label)
        acc.plot(epochs, [100 * row[f"{split}_acc"] for row in history], style, markersize=3, label=label)
    if "ema_acc" in history[-1]:
        acc.plot(epochs, [100 * row["ema_acc"] for row in history], ":", label=f"{eval_name}, EMA of the weights")
    loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc.set(xlabel="epoch", ylabel="accuracy (%)", title=f"accuracy (final {eval_name} {100 * history[-1]['test_acc']:.2f}%)")
    acc.axhline(90, color="grey", linestyle=":", label="target 90%")
    for ax in (loss, acc):
        ax.legend()
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def confusion_matrix(matrix, eval_name="test") -> Figure:
    """Counts, true class in rows, predicted class in columns."""
    matrix = np.asarray(matrix)
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set(xlabel="predicted class", ylabel="true class", title=f"confusion matrix ({eval_name} set)")
    for (r, c), count in np.ndenumerate(matrix):
        ax.text(c, r, f"{count}", ha="center", va="center", fontsize=7,
                color="white" if count > matrix.max() / 2 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="images")
    return fig


def misclassified_grid(images, labels, predicted, confidence, ncols=5) -> Figure:
    """Wrong predictions: each image titled true -> predicted (confidence, by `percent`)."""
    n = len(images)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(1.9 * ncols, 2.0 * nrows), layout="constrained")
    for i, ax in enumerate(fig.subplots(nrows, ncols, squeeze=False).flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], interpolation="nearest")
            ax.set_title(f"true {CLASSES[labels[i]]}\npred {CLASSES[predicted[i]]} ({percent(confidence[i])})",
                         fontsize=8)
    return fig


def grad_cam_grid(images, labels, predicted, for_predicted, for_true, layer: str, method="Grad-CAM",
                  per_row=4) -> Figure:
    """Per image three panels: the image, its map for the predicted class and for the true class
    (gallery.grad_cam's), overlaid by pytorch-grad-cam's show_cam_on_image; `method` and
    `layer` named in the title. Each map is scaled to its own maximum (red), as pytorch-grad-cam does."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    n = len(images)
    nrows = -(-n // per_row)
    fig = Figure(figsize=(1.15 * 3 * per_row, 1.35 * nrows), layout="constrained")
    axes = fig.subplots(nrows, 3 * per_row, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        row, col = divmod(i, per_row)
        rgb = np.asarray(images[i], np.float32) / 255
        panels = [(rgb, f"true {CLASSES[labels[i]]}"),
                  (show_cam_on_image(rgb, for_predicted[i], use_rgb=True), f"for pred. {CLASSES[predicted[i]]}"),
                  (show_cam_on_image(rgb, for_true[i], use_rgb=True), f"for true {CLASSES[labels[i]]}")]
        for ax, (picture, caption) in zip(axes[row, 3 * col:3 * col + 3], panels):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(caption, fontsize=7)
    fig.suptitle(f"{method} at {layer}: image | map for the predicted class | map for the true class "
                 "(each map scaled to its own maximum)", fontsize=10)
    return fig


def seed_curves(records, target=0.90) -> Figure:
    """Test accuracy per epoch of every published run, one line per seed, with the target line."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for r in records:
        rows = r["history"]
        ax.plot([row["epoch"] for row in rows], [100 * row["test_acc"] for row in rows], "-o", markersize=3,
                label=f"seed {r['settings']['seed']}")
    ax.axhline(100 * target, color="grey", linestyle=":", label=f"target {100 * target:.0f}%")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy per epoch, one line per seed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
