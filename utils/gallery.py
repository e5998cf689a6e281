"""What the trained network gets right and wrong: scores per class, the confusion matrix, the most
confident mistakes, and Grad-CAM maps (pytorch-grad-cam) of where it looked. Numbers only; the
figures are drawn by utils/plots.py."""
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from utils.data import CLASSES, normalise


@dataclass
class Predictions:
    probs: np.ndarray   # (N, 10) softmax of the logits, float64 (float32 rounds 1 - 1e-8 to 1)
    labels: np.ndarray  # (N,) true classes

    @classmethod
    def from_logits(cls, logits: torch.Tensor, labels: torch.Tensor) -> "Predictions":
        return cls(torch.softmax(logits.double(), 1).numpy(), labels.numpy())  # fp64: 1 - p stays visible

    @property
    def predicted(self) -> np.ndarray:  # (N,)
        return self.probs.argmax(1)

    @property
    def confidence(self) -> np.ndarray:  # (N,) probability of the predicted class
        return self.probs.max(1)

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.labels).mean())


def confusion(labels, predicted, classes: int = len(CLASSES)) -> np.ndarray:
    """(classes, classes) counts: row = true class, column = predicted class."""
    return np.bincount(classes * np.asarray(labels) + np.asarray(predicted), minlength=classes ** 2).reshape(classes, classes)


def per_class_table(matrix: np.ndarray) -> str:
    """class, correct / total, accuracy: one line per class, from a confusion matrix."""
    lines = [f"{'class':<11}{'correct / total':>17}{'accuracy':>10}"]
    for name, row, correct in zip(CLASSES, matrix, np.diag(matrix)):
        lines.append(f"{name:<11}{correct:>9,} / {row.sum():<6,}{100 * correct / max(row.sum(), 1):>9.1f}%")
    total = matrix.sum()
    lines.append(f"{'all':<11}{np.trace(matrix):>9,} / {total:<6,}{100 * np.trace(matrix) / max(total, 1):>9.1f}%")
    return "\n".join(lines)


def most_confident_mistakes(pred: Predictions, n: int = 20) -> np.ndarray:
    """Indices of the `n` wrong predictions with the highest confidence, most confident first."""
    wrong = np.flatnonzero(pred.predicted != pred.labels)
    return wrong[np.argsort(-pred.confidence[wrong], kind="stable")][:n]


@dataclass
class ClassMaps:
    predicted: np.ndarray  # (N, 32, 32) map of each image for its predicted class, 0..1
    true: np.ndarray       # (N, 32, 32) map of each image for its true class, 0..1


def class_maps(model, layer, images: np.ndarray, predicted, labels, method=GradCAM) -> ClassMaps:
    """`method`'s maps of `layer` for each image's predicted class and for its true class."""
    return ClassMaps(grad_cam(model, layer, images, predicted, method), grad_cam(model, layer, images, labels, method))


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
            maps = cam(input_tensor=normalise(torch.from_numpy(np.asarray(images)), device), targets=targets)
    finally:
        model.train(was_training)
    return np.clip(maps, 0.0, 1.0)
