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
from utils.config import Settings, SettingsError
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
        run = Checkpoint(cfg.checkpoint, identity, cfg.resume)
        path = record_path(cfg, identity, run.run_id, log)
        committed = committed_record(cfg, path)
        if committed:
            info["committed_record"] = committed
        run.record = RunRecord(path, {**info, "run_id": run.run_id}) if path else None
    run.figures = claim_figures(cfg.figures, run.identity, log)
    return run


def record_path(cfg, identity, run_id, log=print):
    """Where this run's record goes; None for none (S10_RECORD="").

    "auto": runs/s10-seed<seed>.json for a run of the spec (every setting that changes the result at
    its default but the seed), unless that file belongs to another run (other settings, data, code,
    or another execution: its `run_id` is not this checkpoint's); else beside the checkpoint, so that
    experiments, and re-runs of a committed seed, never write into its record. A record named in
    S10_RECORD that belongs to another run stops the notebook: a run never overwrites another run's
    record and weights.
    """
    if not cfg.record:
        return None
    if cfg.record != "auto":
        changed = owner_differences(Path(cfg.record), identity, run_id)
        if changed:
            raise CheckpointError(f"run record {cfg.record} belongs to another run ({'; '.join(changed)}); "
                                  "set S10_RECORD to another file (or S10_RECORD= for none)")
        return Path(cfg.record)
    checkpoint = Path(cfg.checkpoint)
    beside = checkpoint.with_name(f"{checkpoint.stem}-record.json")
    if not is_spec({name: getattr(cfg, name) for name in RESULT_SETTINGS}):
        return beside
    path = Path("runs") / f"s10-seed{cfg.seed}.json"
    changed = owner_differences(path, identity, run_id)
    if changed:
        log(f"run record: {path} belongs to another run ({'; '.join(changed)}); this run's goes to {shown(beside)} "
            "(S10_RECORD chooses)")
        return beside
    return path


def committed_record(cfg, path):
    """When this run re-runs a seed whose record in runs/ belongs to another run (older code, another
    machine), that record's final result, to compare with ({path, final_test_acc, epochs_done,
    code_commit}); None otherwise."""
    committed = Path("runs") / f"s10-seed{cfg.seed}.json"
    if path is None or Path(path) == committed or not committed.is_file():
        return None
    if not is_spec({name: getattr(cfg, name) for name in RESULT_SETTINGS}):
        return None
    try:
        record = json.loads(committed.read_text())
        rows = record["history"]
        return {"path": str(committed), "final_test_acc": rows[-1]["test_acc"], "epochs_done": len(rows),
                "code_commit": record.get("code_commit")}
    except (ValueError, KeyError, IndexError):
        return None


def is_spec(settings: dict) -> bool:
    """Whether `settings` (name -> value) are the recipe's: every setting that changes the result at
    its default, but the seed."""
    return all(saved_setting(settings, name) == getattr(Settings, name) for name in RESULT_SETTINGS if name != "seed")


def read_records(folder="runs", spec_only=True) -> list:
    """The run records (JSON) in `folder` of runs of the spec, by seed: the seed study. Records of
    experiments are left out (`spec_only`=False keeps every run: a folder of an earlier recipe's
    runs); unfinished runs are kept, with `finished` False."""
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            info = json.loads(path.read_text())
            identity = record_identity(info)
        except (ValueError, AttributeError):
            continue
        if not spec_only or is_spec(identity["settings"]):
            epochs = identity["settings"]["epochs"]
            records.append({**info, "path": str(path), "seed": identity["settings"]["seed"], "epochs": epochs,
                            "finished": len(info.get("history", [])) == epochs})
    return sorted(records, key=lambda record: record["seed"])


def owner_differences(record: Path, identity: dict, run_id: str) -> list:
    """How the run whose record is in `record` differs from this execution (`identity`, `run_id`);
    [] if it is this one or there is no record."""
    if not record.is_file():
        return []
    try:
        info = json.loads(record.read_text())
        changed = differences(record_identity(info), identity)
    except (ValueError, KeyError, TypeError):
        return ["its record is unreadable"]
    if not changed and info.get("run_id") != run_id:
        changed = [f"another execution of the same settings, data and code: run_id {info.get('run_id')} -> {run_id}"]
    return changed


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


def check(log=print) -> None:
    """What the notebook does before it trains, without training: read the settings, the data and the
    run on disk, and say which run this is. Any refusal is one exception with a one-line message."""
    from utils.data import load_data, resolve_workers
    from utils.device import pick_device

    cfg = Settings.from_env()
    device = pick_device(cfg.device)
    precision = run_precision(cfg, device)
    data = load_data(cfg)
    run = open_run(cfg, data, device, precision, resolve_workers(cfg, device.type), log=log)
    state = f"{len(run.history)} of {cfg.epochs} epochs done" if run.history else "not started"
    record = getattr(getattr(run, "record", None), "path", None)
    log(f"ready: seed {cfg.seed}, {precision.name} on {device.type}, checkpoint {shown(cfg.checkpoint)} ({state}), "
        f"record {shown(record) if record else 'none'}")


def result_lines(notebook) -> list:
    """The lines an executed S10.ipynb printed in its Result cell (accuracy first, then the table)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    for cell in cells:
        text = "".join("".join(out.get("text", "")) for out in cell.get("outputs", []))
        if cell["cell_type"] == "code" and "accuracy, final epoch" in text:
            return [line for line in text.splitlines() if line.strip()]
    return []


def main(argv=None) -> int:
    """python -m utils.runs check | result NOTEBOOK: see `check` and `result_lines`."""
    import sys

    from utils.data import DataError
    from utils.device import DeviceError

    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["check"]:
            check()
        elif argv[:1] == ["result"] and len(argv) == 2:
            lines = result_lines(argv[1])
            if not lines:
                raise CheckpointError(f"{argv[1]} has no Result cell output; execute the notebook to the end first")
            print("\n".join(lines))
        else:
            print("usage: python -m utils.runs check | result NOTEBOOK", file=sys.stderr)
            return 2
    except (CheckpointError, DataError, DeviceError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
