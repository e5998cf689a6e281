"""What the trained network gets right and wrong, in numbers and tables: the result of a run,
scores per class, the confusion matrix, the most confident mistakes, and Grad-CAM maps
(pytorch-grad-cam) of where it looked. The figures are drawn by utils/plots.py."""
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from utils.data import CLASSES
from utils.transforms import normalise


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """(N, 10) softmax of the logits in float64: float32 rounds 1 - 1e-8 to 1, and the gallery's
    confidences must still tell such a prediction from 100%."""
    return torch.softmax(logits.double(), 1).numpy()


def confusion(labels, predicted, classes: int = len(CLASSES)) -> np.ndarray:
    """(classes, classes) counts: row = true class, column = predicted class."""
    counts = np.bincount(classes * np.asarray(labels) + np.asarray(predicted), minlength=classes ** 2)
    return counts.reshape(classes, classes)


def per_class_table(matrix: np.ndarray) -> str:
    """class, correct / total, accuracy: one line per class, from a confusion matrix."""
    rows = [*zip(CLASSES, np.diag(matrix), matrix.sum(1)), ("all", np.trace(matrix), matrix.sum())]
    lines = [f"{'class':<11}{'correct / total':>17}{'accuracy':>10}"]
    for name, correct, total in rows:
        lines.append(f"{name:<11}{correct:>9,} / {total:<6,}{100 * correct / max(total, 1):>9.1f}%")
    return "\n".join(lines)


def percent(p: float) -> str:
    """A probability as a percentage with the decimals that tell it from 100%: 0.6 -> "60%",
    0.99912 -> "99.91%", 0.99998 -> "99.998%" (a whole-percent rounding would call both "100%");
    closer to 1 than 1e-6: ">99.9999%"."""
    gap = 1.0 - float(p)
    if gap < 1e-6:
        return ">99.9999%"
    decimals = max(0, int(np.ceil(-np.log10(gap))) - 2)
    return f"{100 * p:.{decimals}f}%"


def most_confident_mistakes(probs: np.ndarray, labels, n: int = 20) -> np.ndarray:
    """Indices of the `n` wrong predictions with the highest probability, most confident first."""
    wrong = np.flatnonzero(probs.argmax(1) != labels)
    return wrong[np.argsort(-probs.max(1)[wrong], kind="stable")][:n]


def map_summary(maps: np.ndarray) -> str:
    """How much a set of maps shows: how many are blank (zero everywhere: no position had positive
    evidence) and their mean value, e.g. "2 of 20 maps blank, mean value 0.04"."""
    blank = int((maps.reshape(len(maps), -1).max(1) <= 0).sum())
    return f"{blank} of {len(maps)} maps blank, mean value {maps.mean():.2f}"


def grad_cam(model, layer, images: np.ndarray, classes, method=GradCAM) -> np.ndarray:
    """A class activation map of `layer` for class classes[i] of image i: (N, 32, 32) floats in 0..1.

    `method` is a pytorch-grad-cam class: GradCAM (feature maps weighted by their mean gradient,
    then ReLU) or LayerCAM (weighted per position by the positive gradient), which keeps the maps of
    a shallow layer such as `res1` from cancelling out to blank. It switches the model to eval and
    hooks the layer while the object lives; it is used as a context manager so the hooks go when it
    is done, and the model's mode is put back. Gradients are needed, so this works inside
    `torch.no_grad()` too. Runs in fp32, without autocast.
    """
    was_training = model.training
    device = next(model.parameters()).device
    targets = [ClassifierOutputTarget(int(c)) for c in classes]
    try:
        with torch.enable_grad(), method(model=model, target_layers=[layer]) as cam:
            x = normalise(torch.from_numpy(np.asarray(images))).to(device)
            maps = cam(input_tensor=x, targets=targets)
    finally:
        model.train(was_training)
    return np.clip(maps, 0.0, 1.0)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def seconds_per_epoch(history) -> float:
    """The median of the run's epoch times (train + test): the one figure this project quotes as
    "seconds per epoch"; epochs slowed by other work on the machine move it little."""
    return float(np.median([row["seconds"] for row in history]))


def results_table(history, info: dict, found, eval_name="test") -> str:
    """The run's result in a few lines: final-epoch test (or validation) accuracy first."""
    last, best = history[-1], max(history, key=lambda row: row["test_acc"])
    resumes = last.get("execution", 1) - 1
    seconds = [row["seconds"] for row in history]
    workers = plural(info["workers"], "loader worker") if "workers" in info else "? loader workers"
    rows = [
        (f"{eval_name} accuracy, final epoch",
         f"{100 * last['test_acc']:.2f}% (epoch {last['epoch']}/{len(history)})"),
        ("best epoch (information only)", f"{100 * best['test_acc']:.2f}% (epoch {best['epoch']})"),
        *([("EMA of the weights, final epoch", f"{100 * last['ema_acc']:.2f}% (beside the plain weights)")]
          if "ema_acc" in last else []),
        ("train accuracy, final epoch", f"{100 * last['train_acc']:.2f}%"),
        ("seconds per epoch", f"{seconds_per_epoch(history):.0f} (median of {plural(len(seconds), 'epoch')}, "
                              f"train + {eval_name}; {sum(seconds) / 60:.0f} min in all)"),
        ("device", f"{info.get('device', '?')} ({info.get('device_name', '?')}), "
                   f"{info.get('threads', '?')} threads, {workers}"),
        ("precision", info.get("precision", "?")),
        ("data", info.get("data_source", "?")),
        ("LRMIN / LRMAX", f"{found.lr_min:.2e} / {found.lr_max:.2e} (loss minimum at {found.lr_at_min:.2e})"),
        ("resumed", "never" if resumes == 0 else "once" if resumes == 1 else f"{resumes} times"),
    ]
    width = max(31, max(len(name) for name, _ in rows) + 2)
    return "\n".join(f"{name:<{width}}{value}" for name, value in rows)
