"""S10.ipynb with S10_WEIGHTS: it loads trained weights and their run record, sweeps and trains
nothing, evaluates, and draws every view (with the smoke settings of conftest.py)."""
import dataclasses
import json
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

from models import CustomResNet
from utils.checkpoint import RunRecord
from utils.lr import LRTest

ROOT = Path(__file__).resolve().parents[1]


def outputs(nb) -> str:
    return "".join("".join(out.get("text", "")) for cell in nb.cells for out in cell.get("outputs", []))


def test_the_notebook_explores_saved_weights_without_training(tmp_path, monkeypatch):
    torch.manual_seed(0)
    rows = [{"epoch": e, "lr": 1e-3, "train_loss": 2.0 / e, "train_acc": 0.3 * e, "test_loss": 2.1 / e,
             "test_acc": 0.25 * e, "seconds": 5.0, "execution": 1} for e in (1, 2)]
    record = RunRecord(tmp_path / "runs" / "s10.json", {"device": "cpu", "precision": "fp32",
                                                        "data_source": "test data"})
    found = LRTest([1e-4, 1e-3, 1e-2], [2.3, 2.0, 2.4], 1e-3, 1e-3, 1e-5)
    record.write(rows, resumes=1, lr_test=dataclasses.asdict(found), epochs=2)
    record.write_weights(CustomResNet())
    figures = tmp_path / "images"
    monkeypatch.setenv("S10_WEIGHTS", str(record.weights_path))
    monkeypatch.setenv("S10_FIGURES", str(figures))
    monkeypatch.setenv("S10_EPOCHS", "2")

    nb = nbformat.read(ROOT / "S10.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(ROOT)}}).execute()
    text = outputs(nb)

    assert "from the run record" in text and "not swept" in text
    assert "complete (2 epochs, 1 resumes); nothing left to train" in text
    assert text.count("  *\n") == 2  # both epochs listed, both from the record
    assert "test accuracy " in text and "resumed                        1 time(s)" in text
    assert len(list(figures.glob("*.png"))) >= 7
    assert json.loads(record.path.read_text())["epochs_done"] == 2  # read, not rewritten
