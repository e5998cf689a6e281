"""open_run, the notebook's door to the run on disk: the checkpoint it returns carries the run's
identity (a changed setting or data set never resumes the old run), S10_RESUME=0 starts over, and a
run never overwrites another run's record, weights or figures: a short experiment leaves the
committed runs/ and images/ byte for byte; S10_WEIGHTS explores a finished run without changing it."""
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from tests.fakedata import loaders, make_images, tiny_net
from utils import plots
from utils.checkpoint import CheckpointError, TrainedRun
from utils.runs import open_run
from utils.config import Settings
from utils.data import CIFAR10, Split
from utils.device import Precision
from utils.lr import LRTest, one_cycle
from utils.training import fit

ROOT = Path(__file__).resolve().parents[1]
CPU, FP32 = torch.device("cpu"), Precision()
FOUND = LRTest([1e-4, 1e-3, 1e-2], [2.3, 2.0, 2.4], 1e-3, 1e-3, 1e-5)
JPEG_COPY = "4d04bc84900edfe6380e58987fc24b001bd984f8"  # utils.data.digest of the full CIFAR-10 JPEG copy


def committed_copy(tmp_path, monkeypatch) -> dict:
    """runs/ and images/ of this repository copied into a scratch folder, which becomes the working
    directory; returns {path: bytes} of every file there."""
    for folder in ("runs", "images"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    return snapshot(tmp_path)


def snapshot(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for folder in ("runs", "images")
            for p in sorted((Path(root) / folder).rglob("*")) if p.is_file()}


def data(digest=JPEG_COPY):
    split = Split(*make_images(1))
    return CIFAR10(split, split, "generated", digest)


def short_experiment(cfg, digest=JPEG_COPY):
    """What the notebook does with `cfg`, on a tiny net and generated images: open the run, store a
    range test, draw a figure, train cfg.epochs epochs; returns (run, the lines it printed)."""
    lines = []
    run = open_run(cfg, data(digest), CPU, Precision(torch.bfloat16, True), workers=1, log=lines.append)
    run.range_test(lambda: FOUND, log=lines.append)
    plots.save(plots.schedule_plot([1e-3] * 4, 2), run.figures, "schedule")
    torch.manual_seed(0)
    model, (train, test) = tiny_net(), loaders(n_train=4, n_test=2, batch_size=20)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = one_cycle(optimizer, 1e-2, 1e-4, cfg.epochs, len(train), cfg.peak_epoch)
    fit(model, train, test, optimizer, scheduler, cfg.epochs, CPU, FP32, checkpoint=run, progress=False,
        log=lines.append)
    return run, lines


def test_a_short_experiment_leaves_the_committed_runs_and_figures_byte_for_byte(tmp_path, monkeypatch):
    before = committed_copy(tmp_path, monkeypatch)
    assert "runs/s10-seed1.json" in before and "images/run.json" in before
    shown = json.loads(before["images/run.json"])["identity"]["settings"]["seed"]  # the notebook's run
    cfg = Settings(seed=shown, epochs=3, peak_epoch=1, train_subset=1024, checkpoint="checkpoints/s10.pt")
    run, lines = short_experiment(cfg)  # record "auto"
    assert snapshot(tmp_path) == before
    assert run.record.path == Path("checkpoints/s10-record.json")  # experiments never write into runs/
    assert json.loads(run.record.path.read_text())["epochs_done"] == 3
    assert run.record.weights_path.is_file()
    assert run.figures == ""
    assert any(line.startswith("figures not saved: images/ holds those of another run (S10_TRAIN_SUBSET 0 -> 1024; "
                               "S10_EPOCHS 24 -> 3; S10_PEAK_EPOCH 5.0 -> 1)") for line in lines)


def test_a_run_of_the_spec_gets_a_record_named_by_its_seed(tmp_path, monkeypatch):
    committed_copy(tmp_path, monkeypatch)
    spec = open_run(Settings(seed=7, checkpoint="ck/s10.pt", figures=""), data(), CPU, FP32, 1)
    assert spec.record.path == Path("runs/s10-seed7.json")
    other = open_run(Settings(seed=7, cutout_p=0.5, checkpoint="ck/s10.pt", figures=""), data(), CPU, FP32, 1)
    assert other.record.path == Path("ck/s10-record.json")
    assert open_run(Settings(seed=7, checkpoint="ck/s10.pt", record=""), data(), CPU, FP32, 1).record is None


def test_the_spec_record_of_another_run_is_not_overwritten(tmp_path, monkeypatch):
    """Same settings as the committed seed-1 run, but other data: its record goes beside the checkpoint."""
    before = committed_copy(tmp_path, monkeypatch)
    lines = []
    run = open_run(Settings(checkpoint="checkpoints/s10.pt", figures=""), data("0" * 40), CPU, FP32, 1,
                   log=lines.append)
    assert run.record.path == Path("checkpoints/s10-record.json")
    assert len(lines) == 1 and re.fullmatch(
        r"run record: runs/s10-seed1.json belongs to another run \(the data \(sha1 4d04bc8490 -> 0000000000\); "
        r"precision bf16 channels_last -> fp32; the code of .*\); this run's goes to checkpoints/s10-record.json "
        r"\(S10_RECORD chooses\)", lines[0]), lines
    assert snapshot(tmp_path) == before


def test_a_record_named_in_S10_RECORD_that_belongs_to_another_run_stops_the_notebook(tmp_path, monkeypatch):
    committed_copy(tmp_path, monkeypatch)
    cfg = Settings(epochs=3, peak_epoch=1, checkpoint="c.pt", record="runs/s10-seed1.json")
    with pytest.raises(CheckpointError, match=r"^run record runs/s10-seed1.json belongs to another run "
                                              r"\(S10_EPOCHS 24 -> 3; .*\); set S10_RECORD to another file"):
        open_run(cfg, data(), CPU, FP32, 1)


def test_the_same_run_continues_its_own_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Settings(epochs=2, peak_epoch=1, checkpoint="c.pt", record="runs/mine.json", figures="figs")
    short_experiment(Settings(epochs=3, peak_epoch=1, checkpoint="c.pt", record="runs/mine.json",
                              figures="figs"))  # an earlier, other run of this file: refused below
    with pytest.raises(CheckpointError, match=r"^run record runs/mine.json belongs to another run \(S10_EPOCHS 3 -> 2"):
        open_run(Settings(**{**vars(cfg), "checkpoint": "fresh.pt"}), data(), CPU, FP32, 1)
    with pytest.raises(CheckpointError, match=r"^checkpoint c.pt is from another run \(S10_EPOCHS 3 -> 2"):
        open_run(cfg, data(), CPU, FP32, 1)
    shutil.rmtree("runs"), shutil.rmtree("figs"), Path("c.pt").unlink()
    first, _ = short_experiment(cfg)
    again = open_run(cfg, data(), CPU, Precision(torch.bfloat16, True), 1)  # executed again: the same run
    assert again.record.path == first.record.path and again.figures == "figs"


def test_a_rerun_of_a_seed_by_the_same_code_on_the_same_data_keeps_off_its_record(tmp_path, monkeypatch):
    """A committed seed re-run at the commit that made it (same settings, data, code, device): a fresh
    checkpoint is another execution, so its record goes beside the checkpoint and the committed one
    stays byte for byte; the checkpoint that wrote the committed record still continues it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Settings, "epochs", 2)  # a 2-epoch spec, so that the record goes to runs/
    monkeypatch.setattr(Settings, "peak_epoch", 1)
    cfg = Settings(epochs=2, peak_epoch=1, checkpoint="first/s10.pt", figures="")
    first, _ = short_experiment(cfg)
    assert first.record.path == Path("runs/s10-seed1.json")
    committed = first.record.path.read_bytes()
    rerun, lines = short_experiment(Settings(**{**vars(cfg), "checkpoint": "again/s10.pt"}))
    assert rerun.record.path == Path("again/s10-record.json") and len(rerun.history) == 2
    assert re.fullmatch(r"run record: runs/s10-seed1.json belongs to another run \(another execution of the same "
                        r"settings, data and code: run_id [0-9a-f]{8} -> [0-9a-f]{8}\); this run's goes to "
                        r"again/s10-record.json \(S10_RECORD chooses\)", lines[0]), lines[0]
    assert Path("runs/s10-seed1.json").read_bytes() == committed
    assert open_run(cfg, data(), CPU, Precision(torch.bfloat16, True), 1).record.path == Path("runs/s10-seed1.json")


def test_figures_of_another_run_are_not_replaced_and_the_notebook_says_so(tmp_path):
    from utils.checkpoint import run_identity
    from utils.runs import claim_figures

    mine = run_identity(Settings(), JPEG_COPY, CPU, "fp32")
    other = run_identity(Settings(seed=2), JPEG_COPY, CPU, "fp32")
    assert claim_figures(tmp_path / "figs", mine) == str(tmp_path / "figs")  # claimed: a stamp is written
    assert claim_figures(tmp_path / "figs", {**mine, "precision": "bf16"}) == str(tmp_path / "figs")  # same settings
    lines = []
    assert claim_figures(tmp_path / "figs", other, log=lines.append) == ""
    assert lines == [f"figures not saved: {tmp_path / 'figs'}/ holds those of another run (S10_SEED 1 -> 2); "
                     "set S10_FIGURES to a folder of its own"]
    assert claim_figures("", mine) == ""


def test_weights_with_another_number_of_epochs_stop_before_anything_runs():
    cfg_epochs = 3
    with pytest.raises(CheckpointError, match=r"^S10_WEIGHTS=runs/s10-seed1.pt holds a run of 24 epochs but "
                                              r"S10_EPOCHS is 3; unset S10_EPOCHS \(or set it to 24\)"):
        TrainedRun("runs/s10-seed1.pt", epochs=cfg_epochs)
    assert len(TrainedRun(ROOT / "runs" / "s10-seed1.pt", epochs=24).history) == 24


def test_the_checkpoint_open_run_returns_carries_the_run_identity(tmp_path):
    from utils.checkpoint import run_identity

    cfg = Settings(checkpoint=str(tmp_path / "c.pt"), record="", figures="")
    run = open_run(cfg, data(), CPU, FP32, 1)
    assert run.identity == run_identity(cfg, JPEG_COPY, CPU, FP32.name)
    run.range_test(lambda: FOUND, log=lambda s: None)
    for changed, named in ((dict(seed=2), "S10_SEED 1 -> 2"), (dict(cutout_p=0.5), "S10_CUTOUT_P 1.0 -> 0.5")):
        with pytest.raises(CheckpointError, match=rf"is from another run \({named}\)"):
            open_run(Settings(**{**vars(cfg), **changed}), data(), CPU, FP32, 1)
    with pytest.raises(CheckpointError, match=r"is from another run \(the data"):
        open_run(cfg, data("1" * 40), CPU, FP32, 1)


def test_resume_off_starts_over_and_sweeps_again(tmp_path, monkeypatch):
    monkeypatch.setenv("S10_CHECKPOINT", str(tmp_path / "c.pt"))
    monkeypatch.setenv("S10_RECORD", "")
    monkeypatch.setenv("S10_FIGURES", "")
    sweeps = []

    def sweep():
        sweeps.append(1)
        return FOUND

    for resume in ("1", "1", "0"):
        monkeypatch.setenv("S10_RESUME", resume)
        open_run(Settings.from_env(), data(), CPU, FP32, 1).range_test(sweep, log=lambda s: None)
    assert len(sweeps) == 2  # the first execution, then S10_RESUME=0; the second found it stored
    monkeypatch.setenv("S10_RESUME", "0")
    monkeypatch.setenv("S10_SEED", "2")  # another run: with S10_RESUME=0 it starts over instead of stopping
    assert open_run(Settings.from_env(), data(), CPU, FP32, 1).history == []


def record_of(path, seed, accs, **settings):
    from utils.checkpoint import RunRecord, run_identity

    cfg = Settings(seed=seed, **settings)
    identity = run_identity(cfg, JPEG_COPY, CPU, "bf16 channels_last")
    info = {"device": "cpu", "device_name": "AMD EPYC", "precision": "bf16 channels_last", "identity": identity,
            "settings": vars(cfg)}
    rows = [{"epoch": e, "lr": 1e-3, "train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.0, "test_acc": acc,
             "seconds": 350.0 + e, "execution": 1} for e, acc in enumerate(accs, 1)]
    RunRecord(path, info).write(rows, 0, {"lr_max": 8e-3, "lr_min": 8e-5}, cfg.epochs)


def test_the_seed_study_reads_every_record_of_the_spec_and_no_experiment(tmp_path):
    from utils.runs import read_records

    record_of(tmp_path / "s10-seed3.json", 3, [0.5] * 23 + [0.899])
    record_of(tmp_path / "s10-seed1.json", 1, [0.5] * 23 + [0.9019])
    record_of(tmp_path / "s10-seed2.json", 2, [0.5] * 10)  # still training
    record_of(tmp_path / "short.json", 4, [0.3] * 3, epochs=3, peak_epoch=1)  # an experiment: left out
    (tmp_path / "notes.json").write_text("not a record")
    records = read_records(tmp_path)
    assert [r["seed"] for r in records] == [1, 2, 3]
    assert [r["finished"] for r in records] == [True, False, True]
    text = plots.seeds_table(records)
    lines = text.splitlines()
    assert lines[1].split()[:5] == ["1", "8.00e-03", "/", "8.00e-05", "90.19%"]
    assert "10/24 epochs so far" in lines[2] and "89.90% (epoch 24)" in lines[3]
    assert "362" in lines[1]  # median seconds of epochs 1..24 (351..374)
    assert lines[-1] == ("final-epoch test accuracy over 2 finished runs: mean 90.05% +- 0.21 (sample std), "
                         "min 89.90%; 1 of 2 reached 90%")
    fig = plots.seed_curves(records)
    assert [line.get_label() for line in fig.axes[0].lines] == ["seed 1", "seed 2 (10/24)", "seed 3", "target 90%"]


def test_two_recipes_are_compared_seed_by_seed(tmp_path, monkeypatch):
    """The runs of today's recipe against those of the previous one, kept in a folder of their own:
    the changed settings, each seed under both recipes, the mean +- std and min of each."""
    from utils.runs import read_records

    (tmp_path / "old").mkdir()
    for seed, acc in ((1, 0.9019), (2, 0.9042), (3, 0.9053)):
        record_of(tmp_path / "old" / f"s10-seed{seed}.json", seed, [0.5] * 23 + [acc])
    monkeypatch.setattr(Settings, "label_smoothing", 0.2)  # the new recipe's default
    record_of(tmp_path / "s10-seed1.json", 1, [0.5] * 23 + [0.9210], label_smoothing=0.2)
    record_of(tmp_path / "s10-seed2.json", 2, [0.5] * 23 + [0.9170], label_smoothing=0.2)
    record_of(tmp_path / "s10-seed3.json", 3, [0.5] * 5, label_smoothing=0.2)  # still training
    assert read_records(tmp_path / "old") == []  # not today's recipe
    previous = read_records(tmp_path / "old", spec_only=False)
    records = read_records(tmp_path)
    lines = plots.recipes_table(records, previous).splitlines()
    assert lines[0] == "this recipe against the previous one: S10_LABEL_SMOOTHING 0.0 -> 0.2"
    assert [line.split() for line in lines[2:]] == [
        ["1", "90.19%", "92.10%", "+1.91"], ["2", "90.42%", "91.70%", "+1.28"], ["3", "90.53%", "5/24", "ep"],
        ["mean", "90.38%", "+-", "0.17", "91.90%", "+-", "0.28"], ["min", "90.19%", "91.70%"]]
    assert plots.recipes_table(records, []) == ""
    fig = plots.seed_curves(records, previous=previous)
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines][-4:] == ["seed 1, previous recipe", "seed 2, previous recipe",
                                                         "seed 3, previous recipe", "target 90%"]
    assert lines[0].get_color() == lines[3].get_color() and lines[0].get_linestyle() == "-"
    assert lines[3].get_linestyle() == "--"


def test_a_record_that_lacks_a_setting_reads_the_value_it_ran_with_whatever_the_default(monkeypatch):
    """Settings added after runs were recorded: a record without one ran with the value that does what
    the code did before; a later change of the default does not rewrite the old runs."""
    from utils.checkpoint import saved_setting, setting_changes

    monkeypatch.setattr(Settings, "label_smoothing", 0.2)
    monkeypatch.setattr(Settings, "validation", 5000)
    assert saved_setting({}, "label_smoothing") == 0.0 and saved_setting({}, "validation") == 0
    assert saved_setting({"label_smoothing": 0.1}, "label_smoothing") == 0.1
    assert saved_setting({}, "weight_decay") == Settings.weight_decay  # in every record: its default
    assert setting_changes({"seed": 1}, {"seed": 2, "label_smoothing": 0.2}) == [
        "S10_SEED 1 -> 2", "S10_LABEL_SMOOTHING 0.0 -> 0.2"]
    assert setting_changes({"seed": 1}, {"seed": 2}, skip=("seed",)) == []


def test_a_resumed_run_keeps_the_precision_of_its_checkpoint(tmp_path, monkeypatch):
    """A run started in bf16 continues in bf16 on a machine that would pick fp32 for a new run (and the
    other way round); with S10_RESUME=0, or no checkpoint, this machine's own pick applies."""
    import utils.device as device_module
    from utils.runs import run_precision

    monkeypatch.chdir(tmp_path)
    cfg = Settings(epochs=2, peak_epoch=1, checkpoint=str(tmp_path / "run.pt"), record="", figures="")
    short_experiment(cfg)  # trained in bf16 channels_last (see short_experiment)
    for prefers_bf16, picked in ((False, "fp32 channels_last"), (True, "bf16 channels_last")):
        monkeypatch.setattr(device_module, "cpu_prefers_bf16", lambda answer=prefers_bf16: (answer, "faked"))
        kept = run_precision(cfg, CPU)
        assert (kept.name, kept.reason) == ("bf16 channels_last", "kept from the checkpoint")
        fresh = run_precision(Settings(**{**cfg.__dict__, "resume": False}), CPU)
        assert (fresh.name, fresh.reason) == (picked, "faked")
        assert run_precision(Settings(**{**cfg.__dict__, "checkpoint": str(tmp_path / "new.pt")}), CPU).name == picked
    assert run_precision(Settings(**{**cfg.__dict__, "amp": False}), CPU).name == "fp32 channels_last"


def test_a_rerun_of_a_committed_seed_compares_its_result_with_the_committed_record(tmp_path, monkeypatch):
    committed_copy(tmp_path, monkeypatch)
    cfg = Settings(seed=2, checkpoint=str(tmp_path / "s10-seed2.pt"), figures=str(tmp_path / "figures"))
    lines = []
    run = open_run(cfg, data(), CPU, Precision(torch.bfloat16, True), workers=1, log=lines.append)
    assert any("runs/s10-seed2.json belongs to another run" in line for line in lines)
    assert run.record.path == tmp_path / "s10-seed2-record.json"
    committed = run.info["committed_record"]
    record = json.loads((tmp_path / "runs" / "s10-seed2.json").read_text())
    assert committed["final_test_acc"] == record["history"][-1]["test_acc"] and committed["epochs_done"] == 24
    history = [{**row, "test_acc": row["test_acc"] + 0.001} for row in record["history"]]
    table = plots.results_table(history, run.info, FOUND, 0)
    assert re.search(r"committed run of this seed +90\.42% \(runs/s10-seed2\.json, code a181221\): this run "
                     r"\+0\.10 points", table)
