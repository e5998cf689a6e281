"""S10.ipynb with S10_WEIGHTS: it loads trained weights and their run record, sweeps and trains
nothing, evaluates those weights, and draws every view (with the smoke settings of conftest.py)."""
import dataclasses
import json
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import torch
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

from models import CustomResNet
from utils.config import Settings
from utils.data import CLASSES, load_data
from utils.lr import LRTest

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {"samples", "augmentation", "lr_range_test", "schedule", "curves", "confusion_matrix",
           "misclassified", "layercam_res1", "gradcam_res3"}
CAT = CLASSES.index("cat")


def outputs(nb) -> str:
    return "".join("".join(out.get("text", "")) for cell in nb.cells for out in cell.get("outputs", []))


def always_cat() -> CustomResNet:
    """Weights no fresh network has: every image is called a cat."""
    torch.manual_seed(0)
    model = CustomResNet()
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.nn.functional.one_hot(torch.tensor(CAT), 10).float() * 10)
    return model


def test_the_notebook_explores_saved_weights_without_training(tmp_path, monkeypatch):
    rows = [{"epoch": e, "lr": 1e-3, "train_loss": 2.0 / e, "train_acc": 0.3 * e, "test_loss": 2.1 / e,
             "test_acc": 0.25 * e, "seconds": 5.0, "execution": e} for e in (1, 2)]
    found = LRTest([1e-4, 1e-3, 1e-2], [2.3, 2.0, 2.4], 1e-3, 1e-3, 1e-5)
    trained = Settings.from_env(seed=3).__dict__  # the smoke settings, run with seed 3
    record = {"settings": trained, "device": "cpu", "device_name": "a CPU", "threads": 2, "precision": "fp32",
              "data_source": "test data", "workers": 1, "lr_test": dataclasses.asdict(found),
              "history": rows}
    (tmp_path / "s10-seed3.json").write_text(json.dumps(record))
    torch.save(always_cat().state_dict(), tmp_path / "s10-seed3.pt")
    saved = {path: path.read_bytes() for path in tmp_path.iterdir()}
    monkeypatch.setenv("S10_WEIGHTS", str(tmp_path / "s10-seed3.pt"))
    figures = Path(os.environ["S10_RUNS_DIR"]) / "weights-s10-seed3" / "images"

    nb = nbformat.read(ROOT / "S10.ipynb", as_version=4)
    kernel = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
    NotebookClient(nb, km=kernel, timeout=600, resources={"metadata": {"path": str(ROOT)}}).execute()
    text = outputs(nb)

    assert "from the record of" in text and "not swept" in text
    assert "seed 3" in text.splitlines()[1]  # the set-up line names the run that made the weights
    assert "the 2 epochs of the run that made" in text and "(nothing trained)" in text
    assert "*" not in text  # no epoch was interrupted, none is marked
    assert re.search(r"^resumed +once$", text, re.M)
    labels = load_data(Settings.from_env(seed=3)).test.labels  # the test images the kernel saw (seed 3's)
    shown = re.search(r"test accuracy (\d+\.\d\d)%", text).group(1)
    assert shown == f"{100 * np.mean(labels == CAT):.2f}"  # the loaded weights', not a fresh network's
    assert re.search(r"^cat +(\d+) / \1 +100\.0%$", text, re.M)
    assert {p.stem for p in figures.glob("*.png")} == FIGURES
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == saved  # read, never rewritten
