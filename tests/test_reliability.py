"""Interruption, divergence and reproducibility."""
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests import kill_child
from tests.fakedata import loaders, tiny_net
from utils.lr import lr_range_test, one_cycle, planned_lrs
import utils.run
from utils.config import S10Error, Settings
from utils.device import Precision
from utils.run import Run
from utils.training import fit

ROOT = Path(__file__).resolve().parents[1]
CPU, FP32 = torch.device("cpu"), Precision()
quiet = dict(progress=False, log=lambda s: None)


@contextlib.contextmanager
def child(*args):
    """A training process (tests/kill_child.py), killed and reaped however the test ends: a failing
    assertion never leaves one behind (the hanging one would sleep for 600 s)."""
    process = subprocess.Popen([sys.executable, "-m", "tests.kill_child", *map(str, args)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_sigkill_mid_epoch_then_resume_gives_every_epoch_once_on_schedule(tmp_path):
    folder, out = tmp_path / "run", tmp_path / "history.json"
    ckpt = folder / "checkpoint.pt"
    flag = Path(str(out) + ".hanging")
    with child(folder, out, "--hang-at", 3) as victim:
        deadline = time.time() + 120
        while not flag.exists():
            assert victim.poll() is None, victim.stdout.read()
            assert time.time() < deadline, "the child never reached the middle of epoch 3"
            time.sleep(0.1)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert not out.exists()
    assert [row["epoch"] for row in torch.load(ckpt, weights_only=True)["history"]] == [1, 2]

    with child(folder, out) as resumed:
        log, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, log
    assert "epochs 1-2 trained earlier, from its checkpoint" in log
    history = json.loads(out.read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    steps = len(history[0]["lrs"])
    plan = planned_lrs(2e-2, 2e-3, kill_child.EPOCHS, steps, peak_epoch=1)
    assert [lr for row in history for lr in row["lrs"]] == pytest.approx(plan, rel=1e-12)


def one_epoch_with_checkpoint(tmp_path):
    """A 3-epoch run of the tiny net stopped after epoch 1, its checkpoint at tmp_path/checkpoint.pt."""
    torch.manual_seed(0)
    model, (train, test) = tiny_net(), loaders()
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = one_cycle(optimizer, 2e-2, 2e-3, 3, len(train), peak_epoch=1)
    fit(model, train, test, optimizer, scheduler, 1, CPU, FP32, run=Run(tmp_path, {}, FP32), **quiet)
    return model, train, test, optimizer, scheduler, tmp_path / "checkpoint.pt"


def test_a_kill_during_the_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, train, test, optimizer, scheduler, ckpt = one_epoch_with_checkpoint(tmp_path)
    good = ckpt.read_bytes()

    real_save = torch.save

    def dies_halfway(obj, f):
        real_save(obj, f)
        f.truncate(1000)
        raise KeyboardInterrupt  # the process is gone mid-write

    monkeypatch.setattr(utils.run.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, test, optimizer, scheduler, 2, CPU, FP32, run=Run(tmp_path, {}, FP32), **quiet)
    assert ckpt.read_bytes() == good
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]  # no temporary file left
    assert len(Run(tmp_path, {}, FP32).history) == 1


def test_a_truncated_checkpoint_is_reported_not_ignored(tmp_path):
    model, train, test, optimizer, scheduler, ckpt = one_epoch_with_checkpoint(tmp_path)
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(S10Error, match="unreadable.*delete .* to start this run over"):
        fit(model, train, test, optimizer, scheduler, 3, CPU, FP32, run=Run(tmp_path, {}, FP32), **quiet)


class PoisonAfter(torch.nn.Module):
    """Wraps a model; from the n-th training forward on, its outputs are NaN."""

    def __init__(self, model, n):
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, x):
        out = self.model(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.n:
                out = out * float("nan")
        return out


def test_divergence_stops_naming_epoch_step_and_lr_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    train, test = loaders(n_train=40, batch_size=100)  # 4 steps per epoch
    model = PoisonAfter(tiny_net(), n=4 + 3)  # the 3rd step of epoch 2
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = one_cycle(optimizer, 2e-2, 2e-3, 3, len(train), peak_epoch=1)
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(S10Error) as err:
        fit(model, train, test, optimizer, scheduler, 3, CPU, FP32, run=Run(tmp_path, {}, FP32), **quiet)
    lr = planned_lrs(2e-2, 2e-3, 3, 4, peak_epoch=1)[4 + 3]  # the epoch's last step: the sum is read there
    assert f"in epoch 2 by step 4 (LR {lr:.2e})" in str(err.value)
    assert [row["epoch"] for row in torch.load(ckpt, weights_only=True)["history"]] == [1]


def test_lr_range_test_stops_at_divergence_and_still_suggests_a_sane_lr():
    torch.manual_seed(0)
    model = tiny_net()
    optimizer = torch.optim.Adam(model.parameters())
    train, _ = loaders(n_train=40, batch_size=40)
    cfg = Settings(lr_finder_start=1e-5, lr_finder_end=1e5, lr_finder_iters=100, progress=False)
    found = lr_range_test(model, optimizer, train, CPU, cfg, FP32)
    assert found.diverged and len(found.lrs) < 100
    assert 1e-5 <= found.lr_min < found.lr_max <= found.lr_at_min < found.lrs[-1]


def test_same_seed_same_first_epoch_on_cpu():
    from utils.data import Split
    from utils.loaders import CIFARDataset, make_loader
    from utils.transforms import train_transforms
    from tests.fakedata import make_images

    def first_epoch():
        torch.manual_seed(3)
        model = tiny_net()
        dataset = CIFARDataset(Split(*make_images(20)), train_transforms(), seed=3)
        train = make_loader(dataset, 50, train=True, workers=2, seed=3)
        optimizer = torch.optim.Adam(model.parameters())
        scheduler = one_cycle(optimizer, 2e-2, 2e-3, 2, len(train), peak_epoch=1)
        return fit(model, train, train, optimizer, scheduler, 1, CPU, FP32, **quiet)[0]

    a, b = first_epoch(), first_epoch()
    assert a["train_loss"] == b["train_loss"] and a["test_loss"] == b["test_loss"]  # bitwise, same machine
