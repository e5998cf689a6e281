"""Which run an execution of the notebook is, and where its files go.

`open_run` gives the notebook its run: the trained one named in S10_WEIGHTS, or the checkpoint of
this run's identity with its run record. The record goes to runs/s10-seed<seed>.json for a run of
the spec, else beside the checkpoint; figures go to a folder that holds no other run's. A run never
overwrites another run's record, weights or figures. `read_records` gathers the spec's runs in
runs/ for the seed study.
"""
import dataclasses
import json
import subprocess
from pathlib import Path

from utils.checkpoint import (KNOWN_DATA, RESULT_SETTINGS, ROOT, Checkpoint, CheckpointError, RunRecord, TrainedRun,
                              write_atomic, differences, record_identity, run_identity, saved_precision,
                              saved_setting, shown)
from utils.device import environment, pick_precision


def run_precision(cfg, device):
    """The precision of this execution: the one its checkpoint was made with when it continues a run
    (`cfg.resume`), else the one `pick_precision` picks for this machine (S10_AMP=0: fp32)."""
    resuming = cfg.resume and not cfg.weights
    keep = saved_precision(cfg.checkpoint, device.type) if resuming else None
    return pick_precision(device, cfg.amp, cfg.channels_last, keep=keep)


def open_run(cfg, data, device, precision, workers, log=print):
    """The run that `cfg` asks for: the trained one in `cfg.weights`, else the checkpoint in
    `cfg.checkpoint` (checked against this run's identity) with its run record (`record_path`).
    Its `figures` is the folder its figures go to, "" if they are not saved (`claim_figures`)."""
    if cfg.weights:
        run = TrainedRun(cfg.weights, cfg.epochs)
    else:
        identity = run_identity(cfg, data.digest, device, precision.name)
        name = KNOWN_DATA.get(data.digest)
        source = data.source.replace(str(cfg.data_root), shown(cfg.data_root)) if cfg.data_root else data.source
        info = {"data_source": f"{name}, {source}" if name else source, "data_sha1": data.digest,
                "evaluated_on": data.eval_name,
                "device": device.type, **environment(device), "precision": precision.name, "workers": workers,
                "code_commit": git_commit(), "settings": dataclasses.asdict(cfg), "identity": identity}
        path = record_path(cfg, identity, log)
        run = Checkpoint(cfg.checkpoint, identity, cfg.resume, RunRecord(path, info) if path else None)
    run.figures = claim_figures(cfg.figures, run.identity, log)
    return run


def record_path(cfg, identity, log=print):
    """Where this run's record goes; None for none (S10_RECORD="").

    "auto": runs/s10-seed<seed>.json for a run of the spec (every setting that changes the result at
    its default but the seed), unless that file belongs to another run; else beside the checkpoint,
    so that experiments never write into runs/. A record named in S10_RECORD that belongs to another
    run stops the notebook: a run never overwrites another run's record and weights.
    """
    if not cfg.record:
        return None
    if cfg.record != "auto":
        changed = owner_differences(Path(cfg.record), identity)
        if changed:
            raise CheckpointError(f"run record {cfg.record} belongs to another run ({'; '.join(changed)}); "
                                  "set S10_RECORD to another file (or S10_RECORD= for none)")
        return Path(cfg.record)
    checkpoint = Path(cfg.checkpoint)
    beside = checkpoint.with_name(f"{checkpoint.stem}-record.json")
    if not is_spec({name: getattr(cfg, name) for name in RESULT_SETTINGS}):
        return beside
    path = Path("runs") / f"s10-seed{cfg.seed}.json"
    changed = owner_differences(path, identity)
    if changed:
        log(f"run record: {path} belongs to another run ({'; '.join(changed)}); this run's goes to {shown(beside)} "
            "(S10_RECORD chooses)")
        return beside
    return path


def is_spec(settings: dict) -> bool:
    """Whether `settings` (name -> value) are the spec's: every setting that changes the result at its
    default, but the seed."""
    from utils.config import Settings

    return all(saved_setting(settings, name) == getattr(Settings, name) for name in RESULT_SETTINGS if name != "seed")


def read_records(folder="runs") -> list:
    """The run records (JSON) in `folder` of runs of the spec, by seed: the seed study. Records of
    experiments are left out; unfinished runs are kept, with `finished` False."""
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            info = json.loads(path.read_text())
            identity = record_identity(info)
        except (ValueError, AttributeError):
            continue
        if is_spec(identity["settings"]):
            epochs = identity["settings"]["epochs"]
            records.append({**info, "path": str(path), "seed": identity["settings"]["seed"], "epochs": epochs,
                            "finished": len(info.get("history", [])) == epochs})
    return sorted(records, key=lambda record: record["seed"])


def owner_differences(record: Path, identity: dict) -> list:
    """How the run whose record is in `record` differs from `identity`; [] if it is this run or none."""
    if not record.is_file():
        return []
    try:
        return differences(record_identity(json.loads(record.read_text())), identity)
    except (ValueError, KeyError, TypeError):
        return ["its record is unreadable"]


FIGURES_STAMP = "run.json"  # in a figures folder: the identity of the run that drew its figures


def claim_figures(folder, identity: dict, log=print) -> str:
    """`folder` if it holds no figures of another run (claiming it with a stamp), else "" with one
    line that says why: an execution with other settings or data never replaces them silently.

    Figures compare settings and data only, where a record compares the whole identity: a record is
    a run's resumable history, so only that very run (code, device, precision) may write into it;
    figures picture what a recipe gives on a data set, so a run of the same settings on the same data
    on another machine may redraw them, while an experiment may not."""
    if not folder:
        return ""
    stamp = Path(folder) / FIGURES_STAMP
    if stamp.is_file():
        try:
            changed = differences(json.loads(stamp.read_text())["identity"], identity, parts=("settings", "data"))
        except (ValueError, KeyError, TypeError):
            changed = [f"{stamp} is unreadable"]
        if changed:
            log(f"figures not saved: {folder}/ holds those of another run ({'; '.join(changed)}); "
                "set S10_FIGURES to a folder of its own")
            return ""
        return str(folder)
    write_atomic(stamp, lambda f: f.write(json.dumps({"identity": identity}, indent=1).encode()))
    return str(folder)


def git_commit(root=ROOT) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
