"""Colab as a student meets it, simulated: a fake `google.colab` module, a local clone of this
repository as REPO_URL, a fake `pip` that only records what it was asked, and this CPU-only machine
as a runtime without a GPU. The first code cell is run in an in-process IPython shell, so its `!`
and `%cd` lines run as they do in Colab."""
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from utils.config import Settings
from utils.device import check_runtime
from utils.training import make_optimizer

ROOT = Path(__file__).resolve().parents[1]
NOT_IN_COLAB = {"jupyter", "nbval", "pytest", "ipywidgets", "torch", "torchvision"}


def first_cell() -> str:
    cells = json.loads((ROOT / "S10.ipynb").read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


@pytest.fixture
def colab(tmp_path, monkeypatch):
    """A fake Colab: google.colab importable, `pip` recording its arguments, a local repository to clone."""
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    bin_dir, log = tmp_path / "bin", tmp_path / "pip.log"
    bin_dir.mkdir()
    (bin_dir / "pip").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (bin_dir / "pip").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    origin = tmp_path / "origin"  # what REPO_URL points at: a clone of this repository's committed state
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(origin)], check=True)
    monkeypatch.chdir(tmp_path)  # Colab starts in /content; restored after the test
    monkeypatch.delenv("S10_WEIGHTS", raising=False)
    monkeypatch.delenv("S10_DEVICE", raising=False)
    return types.SimpleNamespace(root=tmp_path, origin=origin, clone=tmp_path / "content" / "S10",
                                 pip_log=log)


def run_first_cell(colab, **values):
    from IPython.core.interactiveshell import InteractiveShell

    source = first_cell().replace('"/content/S10"', repr(str(colab.clone)))
    source = source.replace('REPO_URL = ""', f"REPO_URL = {str(colab.origin)!r}")
    for name, value in values.items():
        default = "False" if isinstance(value, bool) else '""'
        source = source.replace(f"{name} = {default}", f"{name} = {value!r}")
    shell = InteractiveShell.instance()
    result = shell.run_cell(source)
    assert result.error_in_exec is None, result.error_in_exec


def test_a_second_run_all_reuses_the_clone_and_runs_in_it(colab):
    """Item 3: the first Run all clones once and moves into the clone; the second, started inside the
    clone, clones nothing (no S10/S10) and ends in the same folder, so the checkpoint, the download
    and the run folder are found again."""
    run_first_cell(colab)
    assert Path.cwd() == colab.clone and (colab.clone / ".git").is_dir()
    run_first_cell(colab)
    assert Path.cwd() == colab.clone and not (colab.clone / "S10").exists()
    assert Path(Settings().runs_dir).resolve() == colab.clone / "experiments"  # where the run continues


def test_colab_installs_only_what_it_lacks_and_keeps_its_torch(colab):
    """Item 4: requirements-colab.txt, with Colab's torch and torchvision pinned as constraints."""
    run_first_cell(colab)
    calls = colab.pip_log.read_text().splitlines()
    assert calls == ["install -q -c /tmp/keep.txt -r requirements-colab.txt"]
    kept = Path("/tmp/keep.txt").read_text().split()
    assert kept == [f"torch=={torch.__version__}", f"torchvision=={__import__('torchvision').__version__}"]
    wanted = [line.split(">")[0].split("=")[0].split("<")[0].strip() for line in
              (ROOT / "requirements-colab.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert wanted and not NOT_IN_COLAB & set(wanted)
    local = (ROOT / "requirements.txt").read_text().splitlines()
    for line in (ROOT / "requirements-colab.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert line in local  # the same versions as the local install


def test_weights_and_cpu_on_purpose_are_settings_of_the_first_cell(colab):
    run_first_cell(colab, WEIGHTS="runs/s10-seed3.pt", CPU_ON_PURPOSE=True)
    assert os.environ["S10_WEIGHTS"] == "runs/s10-seed3.pt" and os.environ["S10_DEVICE"] == "cpu"
    cfg = Settings.from_env()
    assert cfg.weights == "runs/s10-seed3.pt" and cfg.device == "cpu"
    os.environ.pop("S10_WEIGHTS"), os.environ.pop("S10_DEVICE")


def test_a_colab_runtime_without_a_gpu_stops_with_one_line_that_says_how_to_switch(colab):
    """Item 2: training there would run on Colab's CPU for about 9.5 hours."""
    cpu = torch.device("cpu")
    with pytest.raises(SystemExit) as stop:
        check_runtime(Settings(), cpu)
    message = str(stop.value)
    assert "no GPU" in message and "Runtime > Change runtime type > T4 GPU" in message and "\n" not in message
    check_runtime(Settings(weights="runs/s10-seed3.pt"), cpu)  # exploring weights: minutes on the CPU
    check_runtime(Settings(device="cpu"), cpu)  # the CPU on purpose
    check_runtime(Settings(), torch.device("cuda"))


def test_outside_colab_the_cpu_is_fine():
    assert "google.colab" not in sys.modules
    check_runtime(Settings(), torch.device("cpu"))


def test_the_notebook_asks_colab_for_a_gpu_runtime():
    metadata = json.loads((ROOT / "S10.ipynb").read_text())["metadata"]
    assert metadata["accelerator"] == "GPU" and metadata["colab"]["gpuType"] == "T4"


def test_adam_is_fused_on_cuda_only(monkeypatch):
    """Item 6: fused Adam takes GradScaler's flags on the GPU (no `.item()` wait per step); the CPU keeps
    the plain implementation, so its results do not change."""
    model = torch.nn.Linear(2, 2)
    assert make_optimizer(model, 1e-3, 1e-4, torch.device("cpu")).defaults["fused"] is False
    assert make_optimizer(model, 1e-3, 1e-4, torch.device("cuda")).defaults["fused"] is True
    fused = make_optimizer(model, 1e-3, 1e-4, torch.device("cuda"))
    assert getattr(fused, "_step_supports_amp_scaling", False)
