"""Figures for the notebook. Each function returns a matplotlib Figure (built without pyplot, so
Jupyter shows it once, as the cell's value, and nothing leaks between cells)."""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from utils.data import CLASSES
from utils.gallery import percent
from utils.transforms import describe


def save(fig: Figure, folder, name: str, dpi: int = 80) -> Figure:
    """Write `fig` as folder/name.png (nothing if `folder` is empty); return it, so a cell shows it."""
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(folder) / f"{name}.png", dpi=dpi)
    return fig


def figure(width: float, height: float, rows: int = 1, cols: int = 1):
    """(figure, axes) of a constrained-layout figure of `width` x `height` inches."""
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(rows, cols)


def panels(rows: int, cols: int, width: float, height: float):
    """A figure of rows x cols image panels, `width` x `height` inches each, axes hidden."""
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def show(ax, image, title: str, fontsize=8) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_title(title, fontsize=fontsize)


def by_class(labels, per_class: int = 1) -> list:
    """Indices of the first `per_class` images of each class, class by class (the folders are
    sorted by class, so "the first 20 images" would all be airplanes)."""
    return [int(i) for c in range(len(CLASSES)) for i in np.flatnonzero(np.asarray(labels) == c)[:per_class]]


def image_grid(images, labels, per_class=2, title=None) -> Figure:
    """The first `per_class` images of every class with their class names, a class per column."""
    fig, axes = panels(per_class, len(CLASSES), 1.2, 1.35)
    for k, i in enumerate(by_class(labels, per_class)):
        show(axes[k % per_class, k // per_class], images[i], CLASSES[labels[i]])
    fig.suptitle(title or "")
    return fig


def lr_range_plot(found) -> Figure:
    """Smoothed loss against LR (log axis), with the loss minimum, LRMAX and LRMIN marked; the title
    says which rule set each bound."""
    fig, ax = figure(7, 4)
    ax.plot(found.lrs, found.losses, color="tab:blue")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)")
    for lr, name, style in ((found.lr_at_min, "loss minimum", ":"), (found.lr_max, "LRMAX", "--"),
                            (found.lr_min, "LRMIN", "-.")):
        ax.axvline(lr, color="black", linestyle=style, label=f"{name} {lr:.1e}")
    losses = np.asarray(found.losses)[np.isfinite(found.losses)]
    low, span = losses.min(), losses[0] - losses.min() + 1e-3
    ax.set_ylim(low - 0.1 * span, low + 1.5 * span)  # from below the minimum to above the start
    ax.set_title(f"LR range test: LRMAX = the loss minimum, LRMIN = LRMAX / {found.lr_max / found.lr_min:g}",
                 fontsize=10)
    ax.legend()
    return fig


def schedule_plot(lrs, steps_per_epoch) -> Figure:
    """The planned LR of every step, with epochs on the x axis, LRMAX and LRMIN marked."""
    fig, ax = figure(7, 3)
    epochs = np.arange(1, len(lrs) + 1) / steps_per_epoch
    peak = int(np.argmax(lrs))
    ax.plot(epochs, lrs)
    ax.plot(epochs[peak], lrs[peak], "o", color="tab:red")
    ax.annotate(f"LRMAX {lrs[peak]:.2e} (end of epoch {epochs[peak]:g})", (epochs[peak], lrs[peak]),
                xytext=(8, 4), textcoords="offset points", va="bottom")
    ax.axhline(lrs[0], color="grey", linestyle=":")  # LRMIN
    ax.set(ylim=(0, 1.2 * max(lrs)), xlabel="epoch", ylabel="learning rate")
    ax.set_title(f"one-cycle: {lrs[0]:.2e} -> {max(lrs):.2e} -> {lrs[-1]:.2e}, linear, one step per batch")
    return fig


def augmentation_grid(dataset, n=4, epochs=range(1, 7)) -> Figure:
    """An image of each of `n` classes as stored, then as the training `dataset` draws it in each of
    `epochs` (reflect-padded crop, flip, cutout): the very images training sees."""
    epochs = list(epochs)
    fig, axes = panels(n, len(epochs) + 1, 1.25, 1.3)
    for row, i in zip(axes, by_class(dataset.labels)[:n]):
        show(row[0], dataset.original(i), f"original: {CLASSES[int(dataset.labels[i])]}")
        for ax, epoch in zip(row[1:], epochs):
            show(ax, dataset[(epoch, i)][0].numpy(), f"epoch {epoch}")
    fig.suptitle(f"train pipeline: {describe(dataset.transform)}", fontsize=10)
    return fig


def curves(history, eval_name="test") -> Figure:
    """Loss and accuracy per epoch, train against the evaluation set (`eval_name`: test or validation),
    and the accuracy of the EMA of the weights where the run has one."""
    epochs = [row["epoch"] for row in history]
    fig, (loss, acc) = figure(10, 3.5, 1, 2)
    for split, label, style in (("train", "train", "-o"), ("test", eval_name, "-s")):
        loss.plot(epochs, [row[f"{split}_loss"] for row in history], style, markersize=3, label=label)
        acc.plot(epochs, [100 * row[f"{split}_acc"] for row in history], style, markersize=3, label=label)
    if "ema_acc" in history[-1]:
        acc.plot(epochs, [100 * row["ema_acc"] for row in history], ":", label=f"{eval_name}, EMA weights")
    loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc.set(xlabel="epoch", ylabel="accuracy (%)",
            title=f"accuracy (final {eval_name} {100 * history[-1]['test_acc']:.2f}%)")
    acc.axhline(90, color="grey", linestyle=":", label="target 90%")
    for ax in (loss, acc):
        ax.legend()
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def confusion_matrix(matrix, eval_name="test") -> Figure:
    """Counts, true class in rows, predicted class in columns."""
    matrix = np.asarray(matrix)
    fig, ax = figure(6.5, 5.5)
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
    fig, axes = panels(-(-len(images) // ncols), ncols, 1.9, 2.0)
    for ax, image, label, guess, p in zip(axes.flat, images, labels, predicted, confidence):
        show(ax, image, f"true {CLASSES[label]}\npred {CLASSES[guess]} ({percent(p)})")
    return fig


def grad_cam_grid(images, labels, predicted, for_predicted, for_true, layer: str, method="Grad-CAM",
                  per_row=4) -> Figure:
    """Per image three panels: the image, its map for the predicted class and for the true class
    (gallery.grad_cam's), overlaid by pytorch-grad-cam's show_cam_on_image; `method` and `layer`
    named in the title. Each map is scaled to its own maximum (red), as pytorch-grad-cam does."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    fig, axes = panels(-(-len(images) // per_row), 3 * per_row, 1.15, 1.35)
    for i, image in enumerate(images):
        rgb = np.asarray(image, np.float32) / 255
        row, col = divmod(i, per_row)
        show(axes[row, 3 * col], rgb, f"true {CLASSES[labels[i]]}", 7)
        for k, (cam, caption) in enumerate(((for_predicted[i], f"for pred. {CLASSES[predicted[i]]}"),
                                            (for_true[i], f"for true {CLASSES[labels[i]]}")), 1):
            show(axes[row, 3 * col + k], show_cam_on_image(rgb, cam, use_rgb=True), caption, 7)
    fig.suptitle(f"{method} at {layer}: image | map for the predicted class | map for the true class "
                 "(each map scaled to its own maximum)", fontsize=10)
    return fig
