"""The run on disk: a run folder named by what changes the result, exact resume with augmentation,
the stored LR range test, every epoch listed after a resume, the record and the final weights, the
weights route, and publishing as the one step that writes committed results."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fakedata import make_images, tiny_net
from utils import __main__ as main_module, plots, run as run_module
from utils.config import S10Error, Settings
from utils.data import CIFAR10, Split
from utils.loaders import CIFARDataset, make_loader
from utils.device import Precision
from utils.lr import LRTest, one_cycle
from utils.__main__ import publish
from utils.config import settings
from tests.records import read_records
from utils.run import Run, open_run, run_folder
from utils.training import evaluate, fit
from utils.transforms import train_transforms

ROOT = Path(__file__).resolve().parents[1]
CPU, FP32 = torch.device("cpu"), Precision()
EPOCHS = 3
FOUND = LRTest([1e-4, 1e-3, 1e-2], [2.3, 2.0, 2.4], 1e-3, 1e-3, 1e-5)
QUIET = dict(progress=False, log=lambda s: None)


def augmented_setup(workers, seed=5):
    """Tiny net, 60 generated images with the real train pipeline (crop, flip, cutout), 3 epochs."""
    torch.manual_seed(0)
    model = tiny_net()
    train_set = CIFARDataset(Split(*make_images(6)), train_transforms(), seed=seed)
    train = make_loader(train_set, 20, train=True, workers=workers, seed=seed)
    test = make_loader(CIFARDataset(Split(*make_images(2, seed=1))), 20, False, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = one_cycle(optimizer, 2e-2, 2e-4, EPOCHS, len(train), peak_epoch=1)
    return model, train, test, optimizer, scheduler


def folder_run(folder) -> Run:
    return Run(folder, {"device": "cpu"}, FP32)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("stop_after", [1, 2])
def test_a_resumed_run_ends_with_bitwise_the_weights_of_an_uninterrupted_one(tmp_path, workers, stop_after):
    model, *rest = augmented_setup(workers)
    straight = fit(model, *rest, EPOCHS, CPU, FP32, **QUIET)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    fit(*augmented_setup(workers), stop_after, CPU, FP32, run=folder_run(tmp_path), **QUIET)  # "killed"
    model, *rest = augmented_setup(workers)  # a new process: fresh objects, fresh loaders
    resumed = fit(model, *rest, EPOCHS, CPU, FP32, run=folder_run(tmp_path), **QUIET)

    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in straight]
    for name, value in model.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_a_resumed_execution_lists_every_epoch_once_and_says_which_came_from_the_checkpoint(tmp_path):
    lines = []
    fit(*augmented_setup(0), 1, CPU, FP32, run=folder_run(tmp_path), **QUIET)
    fit(*augmented_setup(0), EPOCHS, CPU, FP32, run=folder_run(tmp_path), progress=False, log=lines.append)
    epochs = [line for line in lines if line.startswith("epoch")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert "epochs 1-1 trained earlier, from its checkpoint" in lines[0] and lines[1].startswith("epoch  1/3")
    assert [row["execution"] for row in folder_run(tmp_path).history] == [1, 2, 2]


def test_the_range_test_is_stored_at_once_and_never_swept_again(tmp_path):
    calls = []

    def sweep():
        calls.append(1)
        return FOUND

    assert folder_run(tmp_path).range_test(sweep, log=lambda s: None) == FOUND
    assert json.loads((tmp_path / "record.json").read_text())["lr_test"]["lr_max"] == 1e-3  # before epoch 1
    said = []
    assert folder_run(tmp_path).range_test(sweep, log=said.append) == FOUND and calls == [1]
    assert "stored, not swept again" in said[0]


def test_the_record_grows_per_epoch_and_the_final_weights_come_once_and_reproduce_the_last_epoch(tmp_path):
    seen = []  # each epoch line is printed before that epoch is saved: it sees the saves of the earlier ones

    def log(line):
        if line.startswith("epoch"):
            record = tmp_path / "record.json"
            seen.append((len(json.loads(record.read_text())["history"]) if record.exists() else 0,
                         (tmp_path / "weights.pt").exists()))

    model, train, test, optimizer, scheduler = augmented_setup(0)
    history = fit(model, train, test, optimizer, scheduler, EPOCHS, CPU, FP32, run=folder_run(tmp_path),
                  progress=False, log=log)
    assert seen == [(0, False), (1, False), (2, False)]
    saved = json.loads((tmp_path / "record.json").read_text())
    assert [r["epoch"] for r in saved["history"]] == [1, 2, 3] and "lrs" not in saved["history"][0]
    assert saved["device"] == "cpu"

    shutil.copyfile(tmp_path / "weights.pt", tmp_path / "s10-seed5.pt")
    shutil.copyfile(tmp_path / "record.json", tmp_path / "s10-seed5.json")
    fresh, *rest = augmented_setup(0)  # S10_WEIGHTS: a new model gets the final weights, nothing trains
    lines = []
    published = Run(tmp_path / "w", precision=FP32, weights=tmp_path / "s10-seed5.pt")
    shown = fit(fresh, *rest, EPOCHS, CPU, FP32, run=published, progress=False, log=lines.append)
    assert [row["test_acc"] for row in shown] == [row["test_acc"] for row in history]
    assert "nothing trained" in lines[0] and len(lines) == 1 + EPOCHS
    assert not any(line.endswith("*") for line in lines)  # never interrupted: nothing marked
    assert evaluate(fresh, test, CPU, FP32)["acc"] == pytest.approx(history[-1]["test_acc"], abs=1e-9)


def test_an_unreadable_checkpoint_stops_with_one_line_that_names_the_fix(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(S10Error, match=r"checkpoint.pt is unreadable \(.*\); delete .* to start this run "
                                       r"over$"):
        folder_run(tmp_path)
    assert S10Error("x")._render_traceback_() == ["error: x"]  # what Jupyter shows in place of a traceback


def data(seed=0, n=1):
    split = Split(*make_images(n, seed=seed))
    return CIFAR10(split, split, "generated", f"{seed:040d}")


def run_name(cfg, digest) -> str:
    return run_folder(cfg, digest).name


def test_the_run_folder_follows_what_changes_the_result_and_nothing_else(tmp_path, monkeypatch):
    base = run_name(Settings(), data().digest)
    assert base.startswith("seed1-")
    assert base == run_name(Settings(workers=3, progress=False, runs_dir="x"), "0" * 40)
    assert run_name(Settings(seed=2), "0" * 40).startswith("seed2-")
    changed = run_name(Settings(epochs=2, peak_epoch=1, cutout_size=16), "0" * 40)
    assert changed.startswith("seed1,cutout_size=16,epochs=2,peak_epoch=1-")
    assert run_name(Settings(), "1" * 40) != base  # other data
    long = run_name(Settings(train_subset=1024, test_subset=500, batch_size=128, lr_finder_iters=20,
                             lr_finder_start=1e-4, epochs=2, peak_epoch=1), "0" * 40)
    assert ",..." in long and len(long) < 100 and "test_subset=500," in long  # whole items, then ...
    for name in run_module.CODE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    monkeypatch.setattr(run_module, "ROOT", tmp_path)
    assert run_name(Settings(), "0" * 40) == base
    with open(tmp_path / "utils" / "lr.py", "a") as f:
        f.write("\n# an edit\n")
    assert run_name(Settings(), "0" * 40) != base  # a code edit is a new run


def short_experiment(cfg, log=print):
    """What the notebook does with `cfg`, on a tiny net and generated images."""
    run = open_run(cfg, data(), CPU, workers=0, log=log)
    run.range_test(lambda: FOUND, log=log)
    plots.save(plots.schedule_plot([1e-3] * 4, 2), run.figures, "schedule")
    model, train, test, optimizer, _ = augmented_setup(0)
    scheduler = one_cycle(optimizer, 1e-2, 1e-4, cfg.epochs, len(train), cfg.peak_epoch)
    fit(model, train, test, optimizer, scheduler, cfg.epochs, CPU, FP32, run=run, progress=False, log=log)
    return run


def committed(root) -> dict:
    files = [*Path(root, "runs").rglob("*"), *Path(root, "images").rglob("*"), Path(root, "S10.ipynb")]
    return {str(p.relative_to(root)): p.read_bytes() for p in files if p.is_file()}


def test_experiments_write_only_their_own_folders_and_continue_there(tmp_path, monkeypatch):
    for folder in ("runs", "images"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copyfile(ROOT / "S10.ipynb", tmp_path / "S10.ipynb")
    monkeypatch.chdir(tmp_path)
    before = committed(tmp_path)
    short = Settings(epochs=2, peak_epoch=1, runs_dir="experiments")
    first = short_experiment(short)
    other = short_experiment(Settings(epochs=2, peak_epoch=1, cutout_size=16, runs_dir="experiments"))
    assert first.folder != other.folder and {p.name for p in Path("experiments").iterdir()} == \
        {first.folder.name, other.folder.name}
    assert (first.folder / "images" / "schedule.png").is_file() and (first.folder / "weights.pt").is_file()
    lines = []
    again = short_experiment(short, log=lines.append)
    assert again.folder == first.folder and "(2 of 2 epochs done)" in lines[0]
    assert committed(tmp_path) == before


def finished_run(folder, **changes) -> Path:
    """A finished run of the assignment's settings but `changes` (records as a run writes them)."""
    cfg = Settings(epochs=2, peak_epoch=1, **changes)
    rows = [{"epoch": e, "test_acc": 0.5, "train_acc": 0.5, "seconds": 1.0} for e in (1, 2)]
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "curves.png").write_bytes(b"png")
    (folder / "record.json").write_text(json.dumps({"settings": cfg.__dict__, "history": rows}))
    torch.save(tiny_net().state_dict(), folder / "weights.pt")
    return folder


def test_publishing_copies_only_a_finished_run_of_the_assignments_settings(tmp_path, monkeypatch):
    for folder in ("runs", "images"):
        (tmp_path / folder).mkdir()
    monkeypatch.setattr(main_module, "RECIPE", Settings(seed=0, epochs=2, peak_epoch=1).result())
    with pytest.raises(S10Error, match=r"not a finished run of the assignment's settings "
                                       r"\(S10_CUTOUT_SIZE\)"):
        publish(finished_run(tmp_path / "a", cutout_size=16), root=tmp_path)
    assert not any((tmp_path / "runs").iterdir())
    said = publish(finished_run(tmp_path / "b", seed=7), root=tmp_path)
    assert said.startswith("published seed 7")
    assert (tmp_path / "runs" / "s10-seed7.pt").is_file()
    assert (tmp_path / "images" / "curves.png").read_bytes() == b"png"


def test_the_weights_route_takes_the_settings_of_the_run_that_made_the_weights():
    cfg = settings({"S10_WEIGHTS": "runs/s10-seed3.pt"})
    assert cfg.seed == 3 and cfg.epochs == 24 and cfg.weights == "runs/s10-seed3.pt"
    with pytest.raises(S10Error, match=r"^S10_SEED=1 but runs/s10-seed3.pt was trained with 3; "
                                       r"unset S10_SEED"):
        settings({"S10_WEIGHTS": "runs/s10-seed3.pt", "S10_SEED": "1"})
    with pytest.raises(S10Error, match=r"runs/none.json does not exist; set S10_WEIGHTS"):
        settings({"S10_WEIGHTS": "runs/none.pt"})


def test_every_published_record_holds_the_settings_it_ran_with():
    first_recipe = run_module.RECIPE | {"weight_decay": 1e-4, "decoupled_weight_decay": False}
    records = read_records(ROOT / "runs")
    assert [r["settings"]["seed"] for r in records][:4] == [1, 2, 3, 4]
    for r in records:
        ran_with = {name: r["settings"][name] for name in run_module.RECIPE} | {"seed": 0}
        assert ran_with == (first_recipe if r["settings"]["seed"] <= 4 else run_module.RECIPE), r["path"]
        assert len(r["history"]) == r["settings"]["epochs"] == 24


def test_the_data_digest_tells_data_apart():
    from utils.data import digest

    a = Split(*make_images(2))
    b = Split(a.images.copy(), a.labels.copy())
    assert digest(a) == digest(b)
    b.images[0, 0, 0, 0] ^= 1
    assert digest(a) != digest(b)
    assert np.array_equal(a.labels, b.labels)
