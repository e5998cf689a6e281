"""Figures for the notebook. Each function returns a matplotlib Figure (built without pyplot, so
Jupyter shows it once, as the cell's value, and nothing leaks between cells)."""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from utils.checkpoint import setting_changes
from utils.data import CLASSES, as_trained


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
    """`per_class` images of every class with their class names, a class per column."""
    picked = by_class(labels, per_class)
    ncols = len(CLASSES)
    nrows = -(-len(picked) // ncols)
    fig = Figure(figsize=(1.2 * ncols, 1.35 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, i in enumerate(picked):
        ax = axes[k % per_class, k // per_class] if nrows == per_class else axes.flat[k]
        ax.imshow(images[i], interpolation="nearest")
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
    marks = [(found.lr_max, "LRMAX", "--"), (found.lr_min, "LRMIN", "-.")]
    if found.lr_at_min != found.lr_max:
        marks.insert(0, (found.lr_at_min, "loss minimum", ":"))
    else:
        marks[0] = (found.lr_max, "LRMAX = loss minimum", "--")
    for lr, name, style in marks:
        ax.axvline(lr, color="black", linestyle=style, label=f"{name} {lr:.1e}")
    finite = np.isfinite(found.losses)
    low, high = np.min(np.asarray(found.losses)[finite]), np.asarray(found.losses)[finite][0]
    ax.set_ylim(low - 0.1 * (high - low + 1e-3), max(high, low) + 0.5 * (high - low + 1e-3))
    divisor = found.lr_at_min / found.lr_max
    peak = "the LR at the loss minimum" + (f" / {divisor:g}" if abs(divisor - 1) > 1e-9 else "")
    ax.set_title(f"LR range test: LRMAX = {peak}, LRMIN = LRMAX / {found.lr_max / found.lr_min:g}", fontsize=10)
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
    ax.axhline(lrs[-1], color="grey", linestyle=":")
    ax.annotate(f"LRMIN {lrs[-1]:.2e} (first and last step)", (epochs[-1], lrs[-1]), xytext=(-4, 6),
                textcoords="offset points", ha="right", va="bottom")
    ax.set_ylim(0, 1.2 * max(lrs))
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(f"one-cycle: {lrs[0]:.2e} -> {max(lrs):.2e} -> {lrs[-1]:.2e}, linear, one step per batch")
    return fig


def augmentation_grid(loader, n=4, epochs=range(1, 7)) -> Figure:
    """An image of each of `n` classes as stored, then as the training `loader` draws it in each of
    `epochs` (reflect-padded crop, flip, 8x8 cutout): the very images training sees."""
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
    fig.suptitle("train pipeline: pad 4 (reflect) + random crop 32, flip, 8x8 cutout", fontsize=10)
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


def percent(p: float) -> str:
    """A probability as a percentage with the decimals that tell it from 100%: 0.6 -> "60%",
    0.99912 -> "99.91%", 0.99998 -> "99.998%" (a whole-percent rounding would call both "100%");
    closer to 1 than 1e-6: ">99.9999%"."""
    gap = 1.0 - float(p)
    if gap < 1e-6:
        return ">99.9999%"
    decimals = max(0, int(np.ceil(-np.log10(gap))) - 2)
    return f"{100 * p:.{decimals}f}%"


def misclassified_grid(images, labels, predicted, confidence, ncols=5, title=None) -> Figure:
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
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def grad_cam_grid(images, labels, predicted, maps, layer: str, method="Grad-CAM", per_row=4) -> Figure:
    """Per image three panels: the image, the map of the predicted class and the map of the true class
    (`maps`, a gallery.ClassMaps), overlaid by pytorch-grad-cam's show_cam_on_image; `method` and
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
                  (show_cam_on_image(rgb, maps.predicted[i], use_rgb=True), f"for pred. {CLASSES[predicted[i]]}"),
                  (show_cam_on_image(rgb, maps.true[i], use_rgb=True), f"for true {CLASSES[labels[i]]}")]
        for ax, (picture, caption) in zip(axes[row, 3 * col:3 * col + 3], panels):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(caption, fontsize=7)
    fig.suptitle(f"{method} at {layer}: image | map for the predicted class | map for the true class "
                 "(each map scaled to its own maximum)", fontsize=10)
    return fig


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def seconds_per_epoch(history) -> float:
    """The median of the run's epoch times (train + test): the one figure this project quotes as
    "seconds per epoch"; epochs slowed by other work on the machine move it little."""
    return float(np.median([row["seconds"] for row in history]))


def results_table(history, info: dict, found, resumes: int, eval_name="test") -> str:
    """The run's result in a few lines: final-epoch test (or validation) accuracy first."""
    last = history[-1]
    best = max(history, key=lambda row: row["test_acc"])
    seconds = [row["seconds"] for row in history]
    rows = [
        (f"{eval_name} accuracy, final epoch", f"{100 * last['test_acc']:.2f}% (epoch {last['epoch']}/{len(history)})"),
        ("best epoch (information only)", f"{100 * best['test_acc']:.2f}% (epoch {best['epoch']})"),
        *([("EMA of the weights, final epoch", f"{100 * last['ema_acc']:.2f}% (beside the plain weights)")]
          if "ema_acc" in last else []),
        ("train accuracy, final epoch", f"{100 * last['train_acc']:.2f}%"),
        ("seconds per epoch", f"{seconds_per_epoch(history):.0f} (median of {plural(len(seconds), 'epoch')}, "
                              f"train + {eval_name}; {sum(seconds) / 60:.0f} min in all)"),
        ("device", f"{info.get('device', '?')} ({info.get('device_name', '?')}), {info.get('threads', '?')} threads, "
                   f"{plural(info['workers'], 'loader worker') if 'workers' in info else '? loader workers'}"),
        ("precision", info.get("precision", "?")),
        ("data", info.get("data_source", "?")),
        ("LRMIN / LRMAX", f"{found.lr_min:.2e} / {found.lr_max:.2e} (loss minimum at {found.lr_at_min:.2e})"),
        ("resumed", "never" if resumes == 0 else "once" if resumes == 1 else f"{resumes} times"),
    ]
    committed = info.get("committed_record")
    if committed and len(history) == committed["epochs_done"]:
        change = 100 * (last["test_acc"] - committed["final_test_acc"])
        rows.append(("committed run of this seed", f"{100 * committed['final_test_acc']:.2f}% "
                     f"({committed['path']}, code {committed['code_commit']}): this run {change:+.2f} points"))
    width = max(31, max(len(name) for name, _ in rows) + 2)
    return "\n".join(f"{name:<{width}}{value}" for name, value in rows)


def seeds_table(records, target=0.90) -> str:
    """One line per seed (LR range test, final-epoch and best test accuracy, device, seconds per
    epoch), then the mean +- sample standard deviation and the minimum of the finished runs'
    final-epoch accuracies. `records`: run records as read by utils.runs.read_records."""
    lines = [f"{'seed':>4}  {'LRMAX / LRMIN':<19}  {'final epoch':<19}  {'best (info only)':<17}  "
             f"{'s/epoch':>7}  device, precision"]
    finished = []
    for r in records:
        rows, lr = r["history"], r.get("lr_test") or {}
        bounds = f"{lr['lr_max']:.2e} / {lr['lr_min']:.2e}" if lr else "-"
        if r["finished"]:
            final = f"{100 * rows[-1]['test_acc']:.2f}% (epoch {len(rows)})"
            finished.append(rows[-1]["test_acc"])
        else:
            final = f"{len(rows)}/{r['epochs']} epochs so far"
        best = max(rows, key=lambda row: row["test_acc"]) if rows else None
        best = f"{100 * best['test_acc']:.2f}% (epoch {best['epoch']})" if best else "-"
        seconds = f"{seconds_per_epoch(rows):.0f}" if rows else "-"
        lines.append(f"{r['seed']:>4}  {bounds:<19}  {final:<19}  {best:<17}  {seconds:>7}  "
                     f"{r['device']} ({r.get('device_name', '?')}), {r['precision']}")
    if finished:
        accs = 100 * np.asarray(finished)
        spread = f" +- {accs.std(ddof=1):.2f} (sample std)" if len(accs) > 1 else ""
        lines.append(f"final-epoch test accuracy over {plural(len(accs), 'finished run')}: mean {accs.mean():.2f}%"
                     f"{spread}, min {accs.min():.2f}%; {int((accs >= 100 * target).sum())} of {len(accs)} "
                     f"reached {100 * target:.0f}%")
    return "\n".join(lines)


def recipes_table(records, previous) -> str:
    """The runs of this recipe (`records`) against those of the previous one (`previous`), seed by
    seed: what changed, each seed's final-epoch test accuracy under both and the difference, then the
    mean +- sample std and the minimum of each recipe's finished runs. "" if `previous` is empty."""
    if not previous:
        return ""
    finals = [{r["seed"]: r["history"][-1]["test_acc"] for r in runs if r["finished"]} for runs in (previous, records)]
    started = {r["seed"]: r for r in records}
    changes = setting_changes(previous[0]["identity"]["settings"], records[0]["identity"]["settings"], skip=("seed",)) \
        if records else []
    lines = [f"this recipe against the previous one: {'; '.join(changes) or 'the same settings'}",
             f"{'seed':>4}  {'previous':>15}  {'this recipe':>15}  {'change':>7}"]
    for seed in sorted(set(finals[0]) | set(started)):
        old, new = finals[0].get(seed), finals[1].get(seed)
        shown_new = f"{100 * new:.2f}%" if new is not None else \
            f"{len(started[seed]['history'])}/{started[seed]['epochs']} ep" if seed in started else "-"
        change = f"{100 * (new - old):+.2f}" if None not in (old, new) else ""
        lines.append(f"{seed:>4}  {f'{100 * old:.2f}%' if old is not None else '-':>15}  {shown_new:>15}  {change:>7}")
    accs = [100 * np.asarray(list(f.values())) for f in finals]
    mean = [f"{a.mean():.2f}%" + (f" +- {a.std(ddof=1):.2f}" if len(a) > 1 else "") if len(a) else "-" for a in accs]
    low = [f"{a.min():.2f}%" if len(a) else "-" for a in accs]
    lines += [f"mean  {mean[0]:>15}  {mean[1]:>15}", f" min  {low[0]:>15}  {low[1]:>15}"]
    return "\n".join(lines)


def seed_curves(records, target=0.90, previous=()) -> Figure:
    """Test accuracy per epoch of every seed's run, with the target line; the runs of a previous
    recipe (`previous`), if given, dashed in the colour of their seed."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    colours = {seed: f"C{i}" for i, seed in enumerate(sorted({r["seed"] for r in [*records, *previous]}))}
    for r in records:
        rows = r["history"]
        ax.plot([row["epoch"] for row in rows], [100 * row["test_acc"] for row in rows], "-o", markersize=3,
                color=colours[r["seed"]],
                label=f"seed {r['seed']}" + ("" if r["finished"] else f" ({len(rows)}/{r['epochs']})"))
    for r in previous:
        rows = r["history"]
        ax.plot([row["epoch"] for row in rows], [100 * row["test_acc"] for row in rows], "--", linewidth=1,
                color=colours[r["seed"]], label=f"seed {r['seed']}, previous recipe")
    ax.axhline(100 * target, color="grey", linestyle=":", label=f"target {100 * target:.0f}%")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy per epoch, one line per seed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
