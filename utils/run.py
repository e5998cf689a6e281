"""The run on disk: every execution writes only into its own run folder; the same run continues
there; the committed results change only when you publish a full run.

A run folder, `<runs_dir>/<name>`, is named by what changes the result: the seed, the settings that
differ from the defaults, and a hash of those with the data and the code training runs. Executed
again with the same settings, data and code, the notebook finds the same folder and continues after
its last finished epoch; change any of them and it is a new run in a new folder. In the folder:
`checkpoint.pt` (after the range test and every epoch, written atomically), `record.json` (the
settings, the machine, the range test and one row per epoch), `weights.pt` (the final weights),
`images/` and, from `make`, the executed notebook. `publish` copies a finished run of the
assignment's settings into runs/, images/ and S10.ipynb: the one step that changes committed results.
With S10_WEIGHTS the run is a published one, read back from its weights and record: it trains nothing.
"""
import dataclasses
import hashlib
import json
import os
import subprocess
from pathlib import Path

import torch

from utils.config import S10Error, Settings, first_line, read_record, shown
from utils.device import environment, pick_precision
from utils.lr import LRTest

ROOT = Path(__file__).resolve().parents[1]
CODE = ("models/resnet.py", "utils/data.py", "utils/loaders.py", "utils/transforms.py", "utils/lr.py",
        "utils/training.py")
RECIPE = Settings(seed=0).result()  # the assignment's settings but the seed


def code_hash() -> str:
    """Which code trains: the bytes of the files in CODE (an edit there is a new run)."""
    return hashlib.sha1(b"".join((ROOT / name).read_bytes() for name in CODE)).hexdigest()[:12]


def run_folder(cfg, data_digest: str) -> Path:
    """e.g. experiments/seed1,epochs=2,train_subset=1024-3fa2c1d0: the seed, the settings that differ
    from the recipe (whole ones, up to 80 characters) and a hash of all of them, the data and the code.
    With S10_WEIGHTS, experiments/weights-<name>, where the views of those weights go."""
    if cfg.weights:
        return Path(cfg.runs_dir).expanduser() / f"weights-{Path(cfg.weights).stem}"
    result = cfg.result()
    changed = "".join(f",{name}={value:g}" if isinstance(value, float) else f",{name}={value}"
                      for name, value in result.items() if name != "seed" and value != RECIPE[name])
    if len(changed) > 80:  # whole items only; the hash tells the rest apart
        changed = changed[:changed.rindex(",", 0, 80)] + ",..."
    key = json.dumps({"settings": result, "data": data_digest, "code": code_hash()}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return Path(cfg.runs_dir).expanduser() / f"seed{cfg.seed}{changed}-{digest}"


def write_atomic(path: Path, write) -> None:
    """`write(file)` into a temporary file, then renamed over `path`: a kill leaves the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Run:
    """One run folder (see the module's docstring): what the notebook reads and writes of a run.
    With `weights`, a published run read back: its weights, with the range test and the epochs of
    its record; it trains nothing and writes nothing."""

    def __init__(self, folder, info=None, precision=None, weights=None):
        self.folder, self.info, self.precision, self.weights = Path(folder), info or {}, precision, weights
        self.figures = str(self.folder / "images")
        self.checkpoint = Path(weights or self.folder / "checkpoint.pt")
        self.state = {}
        if self.checkpoint.exists() or weights:
            try:
                self.state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            except Exception as exc:
                fix = "use weights a run of this notebook saved" if weights else \
                    f"delete {shown(self.folder)} to start this run over"
                raise S10Error(f"{shown(self.checkpoint)} is unreadable ({first_line(exc)}); {fix}") from None
        if weights:
            self.info = read_record(Path(weights).with_suffix(".json"))
            self.state = {"model": self.state, "lr_test": self.info["lr_test"],
                          "history": self.info["history"]}

    @property
    def history(self) -> list:
        return list(self.state.get("history") or [])

    def range_test(self, sweep, log=print) -> LRTest:
        """The run's LR range test: the stored one if there is one, else `sweep()`, stored at once."""
        if self.state.get("lr_test"):
            found = LRTest(**self.state["lr_test"])
            where = f"from the record of {self.weights} (not swept)" if self.weights else \
                "of this run (stored, not swept again)"
            log(f"LR range test {where}: {found}")
            return found
        found = sweep()
        self._save(lr_test=dataclasses.asdict(found))
        log(f"LR range test (stored in {shown(self.folder)}): {found}")
        return found

    def restore(self, model, **parts) -> list:
        """Load the state after the last finished epoch into `model` and `parts` (optimizer=...,
        scheduler=..., scaler=..., ema=...; the model only for a published run); return the history."""
        if "model" not in self.state:
            return []
        try:
            model.load_state_dict(self.state["model"])
        except RuntimeError as exc:
            raise S10Error(f"{shown(self.checkpoint)} holds another network ({first_line(exc)[:80]}); "
                           "use weights a run of this notebook saved") from None
        if not self.weights:
            for key, obj in parts.items():
                if obj is not None:
                    obj.load_state_dict(self.state[key])
            torch.set_rng_state(self.state["torch_rng"])
        return self.history

    def heading(self) -> str:
        done = len(self.history)
        if self.weights:
            return f"the {done} epochs of the run that made {self.weights}, from its record (nothing trained)"
        return f"run {shown(self.folder)}: epochs 1-{done} trained earlier, from its checkpoint"

    def save_epoch(self, history, epochs, model, **parts) -> None:
        """The training state after an epoch (`model` and `parts`: objects with a state_dict) and the
        history; after the last epoch also the final weights, fp32 on the CPU, as weights.pt."""
        states = {key: obj.state_dict() for key, obj in parts.items() if obj is not None}
        self._save(model=model.state_dict(), **states, torch_rng=torch.get_rng_state(), history=history)
        if len(history) == epochs:
            weights = {name: value.detach().float().cpu() if value.is_floating_point() else value.cpu()
                       for name, value in model.state_dict().items()}
            write_atomic(self.folder / "weights.pt", lambda f: torch.save(weights, f))

    def _save(self, **parts) -> None:
        assert not self.weights, "a published run is read, never written"
        self.state.update(parts, precision=self.precision.name)
        write_atomic(self.checkpoint, lambda f: torch.save(self.state, f))
        rows = [{key: value for key, value in row.items() if key != "lrs"} for row in self.history]
        record = {**self.info, "lr_test": self.state.get("lr_test"), "history": rows}
        write_atomic(self.folder / "record.json", lambda f: f.write(json.dumps(record, indent=1).encode()))


def open_run(cfg, data, device, workers, log=print) -> Run:
    """The run `cfg` asks for on `data`: the published one in `cfg.weights`, else its run folder, new
    or continued (in the precision it started in). Says which, in one line."""
    run = Run(run_folder(cfg, data.digest), weights=cfg.weights)
    keep = None if cfg.weights else run.state.get("precision")
    run.precision = pick_precision(device, cfg.amp, cfg.channels_last, keep=keep)
    if cfg.weights:
        log(f"weights {cfg.weights}: seed {cfg.seed}, {len(run.history)} epochs; "
            f"figures in {shown(run.figures)}")
        return run
    settings = dataclasses.asdict(cfg) | {"data_root": shown(cfg.data_root) if cfg.data_root else None}
    run.info = {"settings": settings, "code": code_hash(), "code_commit": git_commit(), "data": data.digest,
                "data_source": data.source, "evaluated_on": data.eval_name, "device": device.type,
                **environment(device), "precision": run.precision.name, "workers": workers,
                "epochs": cfg.epochs}
    state = f"{len(run.history)} of {cfg.epochs} epochs done" if run.history else "new"
    log(f"run folder {shown(run.folder)} ({state}), precision {run.precision.name}")
    return run


def git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10)
        return done.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
