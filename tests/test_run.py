"""The run on disk: exact resume with augmentation, the stored LR range test, the run's identity,
every epoch listed after a resume, the run record and the final weights."""
import json

import numpy as np
import pytest
import torch

from tests.fakedata import make_images, tiny_net
from utils.checkpoint import Checkpoint, CheckpointError, RunRecord, TrainedRun, run_identity
from utils.config import Settings
from utils.data import MEAN, CIFARDataset, Split, make_loader
from utils.lr import LRTest, one_cycle
from utils.device import Precision
from utils.training import evaluate, fit
from utils.transforms import train_transforms

CPU, FP32 = torch.device("cpu"), Precision()
EPOCHS = 3


def augmented_setup(workers, seed=5):
    """Tiny net, 60 generated images with the real train pipeline (crop, flip, cutout), 3 epochs."""
    torch.manual_seed(0)
    model = tiny_net()
    train_set = CIFARDataset(Split(*make_images(6)), train_transforms(MEAN), seed=seed)
    train = make_loader(train_set, 20, train=True, workers=workers, seed=seed)
    test = make_loader(CIFARDataset(Split(*make_images(2, seed=1))), 20, False, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = one_cycle(optimizer, 2e-2, 2e-4, EPOCHS, len(train), peak_epoch=1)
    return model, train, test, optimizer, scheduler


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("stop_after", [1, 2])
def test_a_resumed_run_ends_with_bitwise_the_weights_of_an_uninterrupted_one(tmp_path, workers, stop_after):
    quiet = dict(progress=False, log=lambda s: None)
    model, *rest = augmented_setup(workers)
    straight = fit(model, *rest, EPOCHS, CPU, FP32, **quiet)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    ckpt = tmp_path / "run.pt"
    fit(*augmented_setup(workers), stop_after, CPU, FP32, checkpoint=ckpt, **quiet)  # "killed" after stop_after
    model, *rest = augmented_setup(workers)  # a new process: fresh objects, fresh loaders
    resumed = fit(model, *rest, EPOCHS, CPU, FP32, checkpoint=ckpt, **quiet)

    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in straight]
    for name, value in model.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_a_resumed_execution_lists_every_epoch_once_marking_the_earlier_ones(tmp_path):
    ckpt, lines = tmp_path / "run.pt", []
    fit(*augmented_setup(0), 1, CPU, FP32, checkpoint=ckpt, progress=False, log=lambda s: None)
    fit(*augmented_setup(0), EPOCHS, CPU, FP32, checkpoint=ckpt, progress=False, log=lines.append)
    epochs = [line for line in lines if line.startswith("epoch")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert epochs[0].endswith("*") and not epochs[1].endswith("*") and not epochs[2].endswith("*")
    assert "continued after epoch 1 (resume 1)" in lines[0]
    assert Checkpoint(ckpt).resumes == 1
    assert [row["execution"] for row in Checkpoint(ckpt).history] == [1, 2, 2]


def identity(**changes):
    cfg = Settings(**changes)
    return run_identity(cfg, "d" * 40, CPU, "fp32 channels_last")


def test_a_checkpoint_of_another_run_stops_naming_what_differs(tmp_path):
    ckpt = tmp_path / "run.pt"
    Checkpoint(ckpt, identity()).save(history=[])
    Checkpoint(ckpt, identity())  # the same run: accepted
    with pytest.raises(CheckpointError, match=r"another run \(S10_SEED 1 -> 2; S10_CUTOUT_P 1.0 -> 0.5\); delete it"):
        Checkpoint(ckpt, identity(seed=2, cutout_p=0.5))
    changed = identity()
    changed["code"]["utils/lr.py"] = "0" * 16
    changed["data"] = "e" * 40
    with pytest.raises(CheckpointError, match=r"the data \(sha1 dddddddddd -> eeeeeeeeee\); the code of utils/lr.py"):
        Checkpoint(ckpt, changed)
    with pytest.raises(CheckpointError, match="precision fp32 channels_last -> bf16"):
        Checkpoint(ckpt, {**identity(), "precision": "bf16"})
    Checkpoint(ckpt, identity(seed=2), resume=False)  # starting over is allowed


def test_a_checkpoint_without_identity_is_refused(tmp_path):
    ckpt = tmp_path / "run.pt"
    torch.save({"history": []}, ckpt)
    with pytest.raises(CheckpointError, match="does not say which run"):
        Checkpoint(ckpt, identity())


def test_the_identity_ignores_paths_workers_and_progress():
    assert identity() == identity(workers=3, progress=False, data_root="/elsewhere", checkpoint="x.pt", record="")


def test_the_range_test_is_stored_at_once_and_never_swept_again(tmp_path):
    ckpt, record, calls = tmp_path / "run.pt", tmp_path / "rec.json", []
    found = LRTest([1e-4, 1e-3, 1e-2], [2.3, 2.0, 2.2], 1e-3, 1e-3, 1e-5)

    def sweep():
        calls.append(1)
        return found

    assert Checkpoint(ckpt, identity(), record=RunRecord(record, {})).range_test(sweep, log=lambda s: None) == found
    assert json.loads(record.read_text())["lr_test"]["lr_max"] == 1e-3  # in the record before epoch 1
    said = []
    again = Checkpoint(ckpt, identity()).range_test(sweep, log=said.append)
    assert again == found and calls == [1]
    assert "stored with this run" in said[0] and "not swept again" in said[0]


def test_the_record_grows_per_epoch_and_the_final_weights_reproduce_the_last_epoch(tmp_path):
    record = RunRecord(tmp_path / "s10.json", {"device": "cpu"})
    ckpt = Checkpoint(tmp_path / "run.pt", record=record)
    model, train, test, optimizer, scheduler = augmented_setup(0)
    fit(model, train, test, optimizer, scheduler, 2, CPU, FP32, checkpoint=ckpt, progress=False, log=lambda s: None)
    saved = json.loads(record.path.read_text())
    assert saved["epochs_done"] == 2 and saved["device"] == "cpu"

    history = fit(model, train, test, optimizer, scheduler, EPOCHS, CPU, FP32, checkpoint=ckpt, progress=False,
                  log=lambda s: None)
    saved = json.loads(record.path.read_text())
    assert saved["epochs_done"] == EPOCHS and [r["epoch"] for r in saved["history"]] == [1, 2, 3]
    assert "lrs" not in saved["history"][0]

    fresh, *rest = augmented_setup(0)  # S10_WEIGHTS: a new model gets the final weights, nothing trains
    lines = []
    shown = fit(fresh, *rest, EPOCHS, CPU, FP32, checkpoint=TrainedRun(record.weights_path), progress=False,
                log=lines.append)
    assert [row["test_acc"] for row in shown] == [row["test_acc"] for row in history]
    assert "complete (3 epochs" in lines[0] and len(lines) == 1 + EPOCHS
    assert evaluate(fresh, test, CPU, FP32)["acc"] == pytest.approx(history[-1]["test_acc"], abs=1e-9)


def test_the_final_weights_are_written_once_after_the_last_epoch(tmp_path):
    record = RunRecord(tmp_path / "s10.json", {"device": "cpu"})
    seen = []  # each epoch line is printed before that epoch is saved: it sees the saves of the earlier ones

    def log(line):
        if line.startswith("epoch"):
            seen.append((json.loads(record.path.read_text())["epochs_done"] if record.path.exists() else 0,
                         record.weights_path.exists()))

    fit(*augmented_setup(0), EPOCHS, CPU, FP32, checkpoint=Checkpoint(tmp_path / "run.pt", record=record),
        progress=False, log=log)
    assert seen == [(0, False), (1, False), (2, False)]
    assert record.weights_path.is_file()


def test_trained_run_errors_name_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; set S10_WEIGHTS"):
        TrainedRun(tmp_path / "none.pt")
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="w.json is missing"):
        TrainedRun(tmp_path / "w.pt")
    (tmp_path / "w.json").write_text(json.dumps({"history": [], "resumes": 0, "lr_test": None}))
    with pytest.raises(CheckpointError, match="cannot load the weights"):
        TrainedRun(tmp_path / "w.pt").restore(tiny_net())


def test_the_data_digest_tells_data_apart():
    from utils.data import digest

    a = Split(*make_images(2))
    b = Split(a.images.copy(), a.labels.copy())
    assert digest(a) == digest(b)
    b.images[0, 0, 0, 0] ^= 1
    assert digest(a) != digest(b)
    assert np.array_equal(a.labels, b.labels)


def test_the_run_record_names_the_device_and_versions_the_set_up_line_prints(tmp_path):
    from utils.runs import open_run
    from utils.data import CIFAR10
    from utils.device import describe, pick_precision

    split = Split(*make_images(2))
    data = CIFAR10(split, split, "generated", "0" * 40)
    cfg = Settings(checkpoint=str(tmp_path / "c.pt"), record=str(tmp_path / "r.json"))
    device = torch.device("cpu")
    precision = pick_precision(device, amp=False)
    run = open_run(cfg, data, device, precision, workers=0)
    run.record.write([], resumes=0)
    record = json.loads((tmp_path / "r.json").read_text())
    line = describe(cfg, device, precision, workers=0)
    assert f"({record['device_name']}, {record['threads']} threads)" in line
    for library, version in record["versions"].items():
        assert f"{library} {version}" in line
    assert set(record["versions"]) == {"python", "torch", "torchvision", "albumentations"}
    assert (record["device"], record["precision"], record["workers"]) == ("cpu", precision.name, 0)


def test_comments_and_docstrings_do_not_change_the_run_identity_but_code_does(tmp_path):
    from utils.checkpoint import CODE, ROOT, code_hashes

    for name in CODE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    before = code_hashes(tmp_path)
    lr = tmp_path / "utils" / "lr.py"
    source = lr.read_text()
    edited = source.replace('"""Apply the rule of this module\'s docstring to a range-test curve."""',
                            '"""A reworded docstring."""  # and a new comment')
    assert edited != source
    lr.write_text(edited.replace("import io\n", "import io  # a comment\n\n"))
    assert code_hashes(tmp_path) == before
    lr.write_text(source.replace("best < 0.1 * len(losses)", "best < 0.2 * len(losses)"))
    assert code_hashes(tmp_path)["utils/lr.py"] != before["utils/lr.py"]


def test_outputs_show_paths_relative_to_the_work_folder_or_home(tmp_path, monkeypatch):
    from pathlib import Path

    from utils.checkpoint import shown

    monkeypatch.chdir(tmp_path)
    assert shown(tmp_path / "checkpoints" / "s10.pt") == "checkpoints/s10.pt"
    elsewhere = Path.home() / "s10-runs" / "x.pt"
    if not str(tmp_path).startswith(str(Path.home())):
        assert shown(elsewhere) == "~/s10-runs/x.pt"
