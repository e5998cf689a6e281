"""The run on disk.

One checkpoint file holds everything a run needs to continue: what the run is (its identity:
the settings that change the result, the data, device, precision and a hash of the code training
depends on), its LR range test (stored as soon as it is found, before epoch 1) and, after every
finished epoch, the training state. Continuing with a different identity stops with one line that
names what differs. Beside it, the run record (JSON: one row per epoch, the range test, the
machine) grows after every epoch, and the final weights are written next to the record as `.pt`.
"""
import ast
import dataclasses
import hashlib
import json
import os
import secrets
from pathlib import Path

import torch

from utils.config import Settings, env_name, first_line

ROOT = Path(__file__).resolve().parents[1]
# The code whose change changes the result (figures and docs may change while a run trains).
# utils/device.py is left out: it changes the result only through the device type and precision it
# picks, and the identity records both by name (a run moved to another kind of machine starts over).
CODE = ("models/resnet.py", "utils/data.py", "utils/transforms.py", "utils/lr.py", "utils/training.py")
# The settings whose change changes the result (paths, workers and progress bars do not).
RESULT_SETTINGS = ("seed", "train_subset", "test_subset", "validation", "batch_size", "cutout_p",
                   "lr_finder_start", "lr_finder_end", "lr_finder_iters", "lr_max_divisor", "lr_min_divisor",
                   "lr_min_rule", "lr_max", "epochs", "peak_epoch", "final_lr_divisor", "weight_decay",
                   "decoupled_weight_decay", "label_smoothing", "cycle_beta1")
# Result settings added after runs were recorded, with the value that does what the code did before
# them: the value a record that lacks one was run with (a default may change; this may not).
BEFORE_ADDED = {"validation": 0, "label_smoothing": 0.0, "lr_min_rule": "ratio", "lr_max": 0.0,
                "final_lr_divisor": 1.0, "decoupled_weight_decay": False}
# Data sets recognised by their digest (utils.data.digest of the full train and test splits).
KNOWN_DATA = {"4d04bc84900edfe6380e58987fc24b001bd984f8": "CIFAR-10 (JPEG copy)",
              "63ed3fd0e829a2e66490f9b3f28f31d61d1cd396": "CIFAR-10 (JPEG copy)"}  # S10_VALIDATION=5000
START_OVER = "delete it or set S10_CHECKPOINT to a new file to start over"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message says what to do."""


def shown(path) -> str:
    """`path` as the notebook prints it: relative to the working directory when inside it, else with
    the home folder as ~, so that outputs name no user's folders."""
    path = Path(path).expanduser()
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        pass
    try:
        return str(Path("~") / path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def code_hashes(root=ROOT) -> dict:
    """{file: sha256 prefix} of what the code in CODE does: its syntax tree without docstrings (comments
    and layout never reach the tree), so editing a comment or a docstring orphans no run."""
    return {name: hashlib.sha256(_behaviour((Path(root) / name).read_text()).encode()).hexdigest()[:16]
            for name in CODE}


def _behaviour(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def run_identity(cfg, data_digest: str, device: torch.device, precision_name: str) -> dict:
    """What makes two executions the same run."""
    return {"settings": {name: getattr(cfg, name) for name in RESULT_SETTINGS}, "data": data_digest,
            "device": device.type, "precision": precision_name, "code": code_hashes()}


def differences(saved: dict, now: dict, parts=("settings", "data", "device", "precision", "code")) -> list:
    """Human-readable differences between two identities in `parts`, e.g. ["S10_SEED 1 -> 2",
    "the code of utils/lr.py"]. An identity without "code" (an older run record) is not compared on it."""
    found = setting_changes(saved["settings"], now["settings"]) if "settings" in parts else []
    if "data" in parts and saved["data"] != now["data"]:
        found.append(f"the data (sha1 {saved['data'][:10]} -> {now['data'][:10]})")
    for key in ("device", "precision"):
        if key in parts and saved[key] != now[key]:
            found.append(f"{key} {saved[key]} -> {now[key]}")
    if "code" in parts and "code" in saved:
        changed = sorted(name for name in set(saved["code"]) | set(now["code"])
                         if saved["code"].get(name) != now["code"].get(name))
        if changed:
            found.append(f"the code of {', '.join(changed)}")
    return found


def setting_changes(before: dict, after: dict, skip=()) -> list:
    """The result settings in which two stored settings (name -> value) differ, e.g.
    ["S10_LABEL_SMOOTHING 0.0 -> 0.2"], leaving out those named in `skip`."""
    return [f"{env_name(name)} {saved_setting(before, name)!r} -> {saved_setting(after, name)!r}"
            for name in RESULT_SETTINGS
            if name not in skip and saved_setting(before, name) != saved_setting(after, name)]


def saved_setting(settings: dict, name: str):
    """A setting of a stored identity; one it lacks was added to the settings later, so the run had
    the value that does what the code did before (`BEFORE_ADDED`), whatever today's default is."""
    if name in settings:
        return settings[name]
    return BEFORE_ADDED.get(name, getattr(Settings, name))


def record_identity(info: dict) -> dict:
    """The identity of the run a record describes: stored in it, or for a record written before
    identities were stored, rebuilt from its settings, data, device and precision."""
    if "identity" in info:
        return info["identity"]
    return {"settings": {name: saved_setting(info.get("settings", {}), name) for name in RESULT_SETTINGS},
            "data": info.get("data_sha1"), "device": info.get("device"), "precision": info.get("precision")}


def saved_precision(path, device_type: str):
    """The precision name ("bf16 channels_last", ...) of the run in checkpoint `path` if it trained on
    a `device_type` device; None if there is no such checkpoint (an unreadable one is reported when
    the run opens it)."""
    path = Path(path).expanduser()
    if not path.is_file():
        return None
    try:
        identity = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("identity") or {}
    except Exception:
        return None
    return identity.get("precision") if identity.get("device") == device_type else None


class Checkpoint:
    """The checkpoint file of one run: `path`, checked against `identity` when it is opened.

    `resume=False` ignores what is there (and overwrites it at the first save). `identity=None`
    skips the check (tests of the loop, which have no settings). `record`, a RunRecord, is
    rewritten with every save, and gets the final weights after the last epoch. `run_id`, drawn when
    the checkpoint starts and kept in it, names this execution of the run in its record: a record with
    another id is another execution's, even of the same settings, data and code.
    """

    def __init__(self, path, identity=None, resume=True, record=None):
        self.path, self.identity, self.record = Path(path).expanduser(), identity, record
        self.state = {}
        if resume and self.path.exists():
            self.state = self._read()
            saved = self.state.get("identity")
            if identity is not None and saved is not None:
                changed = differences(saved, identity)
                if changed:
                    raise CheckpointError(f"checkpoint {self.path} is from another run ({'; '.join(changed)}); "
                                          f"{START_OVER}")
        self.run_id = self.state.setdefault("run_id", secrets.token_hex(4))

    def _read(self) -> dict:
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise ValueError("not a dictionary")
        except Exception as exc:
            raise CheckpointError(f"checkpoint {shown(self.path)} is corrupt or truncated ({first_line(exc)}); "
                                  "delete it to start over") from None
        if self.identity is not None and "identity" not in state:
            raise CheckpointError(f"checkpoint {self.path} does not say which run it belongs to (an older format); "
                                  f"{START_OVER}")
        return state

    @property
    def history(self) -> list:
        return list(self.state.get("history", []))

    @property
    def info(self) -> dict:
        """What describes the run (device, precision, data source, ...): its record's, if any."""
        return self.record.info if self.record else {}

    @property
    def resumes(self) -> int:
        """How many times this run was continued after an interruption."""
        return self.state.get("resumes", 0)

    def save(self, **parts) -> None:
        """Merge `parts` into the state and write it: to a temporary file, then renamed, so a kill
        mid-write leaves the previous checkpoint intact."""
        self.state.update(parts, identity=self.identity)
        write_atomic(self.path, lambda f: torch.save(self.state, f))

    def range_test(self, sweep, log=print):
        """The run's LR range test: the stored one if there is one, else `sweep()`, stored at once."""
        from utils.lr import LRTest

        if "lr_test" in self.state:
            found = LRTest(**self.state["lr_test"])
            log(f"LR range test stored with this run in {shown(self.path)} (not swept again): {found}")
            return found
        found = sweep()
        self.save(lr_test=dataclasses.asdict(found))
        if self.record:
            self.record.write([], 0, self.state["lr_test"])
        log(f"LR range test (stored with this run in {shown(self.path)}): {found}")
        return found

    def restore(self, model, optimizer, scheduler, scaler, ema=None) -> list:
        """Load the training state after the last finished epoch; return the history ([] if none)."""
        if "model" not in self.state:
            return []
        planned, saved = scheduler.state_dict().get("total_steps"), self.state["scheduler"].get("total_steps")
        if planned != saved:
            raise CheckpointError(f"checkpoint {self.path} is from a run of {saved} steps, this one has {planned}; "
                                  f"{START_OVER}")
        model.load_state_dict(self.state["model"])
        optimizer.load_state_dict(self.state["optimizer"])
        scheduler.load_state_dict(self.state["scheduler"])
        scaler.load_state_dict(self.state["scaler"])
        if ema is not None:
            ema.load_state_dict(self.state["ema"])
        torch.set_rng_state(self.state["torch_rng"])
        return self.history

    def save_epoch(self, model, optimizer, scheduler, scaler, history, resumes, epochs, ema=None) -> None:
        self.save(model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                  scaler=scaler.state_dict(), torch_rng=torch.get_rng_state(), history=history, resumes=resumes,
                  ema=ema.state_dict() if ema is not None else None)
        if self.record:
            self.record.write(history, resumes, self.state.get("lr_test"), epochs)
            if len(history) == epochs:
                self.record.write_weights(model)


class TrainedRun:
    """A finished run read back from its final weights and run record (`S10_WEIGHTS`): it offers
    what a Checkpoint offers to the notebook, and never sweeps or trains. `epochs`, the schedule the
    notebook was asked for, must be the run's: weights trained on would no longer be that run."""

    def __init__(self, weights, epochs=None):
        self.path = Path(weights).expanduser()
        record = self.path.with_suffix(".json")
        if not self.path.is_file():
            raise CheckpointError(f"weights file {self.path} does not exist; set S10_WEIGHTS to a runs/*.pt file "
                                  "or unset it")
        if not record.is_file():
            raise CheckpointError(f"the run record {record} is missing; keep the .json saved beside the weights")
        try:
            self.info = json.loads(record.read_text())
            self.history, self.resumes = self.info["history"], self.info["resumes"]
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"the run record {record} is unreadable ({first_line(exc)}); "
                                  "restore the .json saved beside the weights") from None
        done = len(self.history)
        if epochs is not None and epochs != done:
            raise CheckpointError(f"S10_WEIGHTS={weights} holds a run of {done} epochs but S10_EPOCHS is {epochs}; "
                                  f"unset S10_EPOCHS (or set it to {done}) to explore these weights")
        self.identity = record_identity(self.info)

    def range_test(self, sweep=None, log=print):
        from utils.lr import LRTest

        found = LRTest(**self.info["lr_test"])
        log(f"LR range test from the run record of {shown(self.path)} (not swept): {found}")
        return found

    def restore(self, model, optimizer=None, scheduler=None, scaler=None, ema=None) -> list:
        """Load the final weights into `model`; return the run's history from its record."""
        try:
            model.load_state_dict(torch.load(self.path, map_location="cpu", weights_only=True))
        except Exception as exc:
            raise CheckpointError(f"cannot load the weights {self.path} ({type(exc).__name__}: {str(exc)[:200]}); "
                                  "use weights saved by this notebook's run") from None
        return list(self.history)


class RunRecord:
    """The run record `path` (JSON), rewritten after every epoch, and the final weights beside it
    (`path` with `.pt`: the model's state_dict in fp32). `info` holds what describes the run."""

    def __init__(self, path, info: dict):
        self.path, self.info = Path(path).expanduser(), info

    @property
    def weights_path(self) -> Path:
        return self.path.with_suffix(".pt")

    def write(self, history, resumes, lr_test=None, epochs=None) -> None:
        rows = [{key: value for key, value in row.items() if key != "lrs"} for row in history]
        record = {**self.info, "epochs_done": len(rows), "epochs": epochs, "resumes": resumes,
                  "lr_test": lr_test, "history": rows}
        write_atomic(self.path, lambda f: f.write(json.dumps(record, indent=1).encode()))

    def write_weights(self, model) -> None:
        weights = {name: value.detach().float().cpu() if value.is_floating_point() else value.cpu()
                   for name, value in model.state_dict().items()}
        write_atomic(self.weights_path, lambda f: torch.save(weights, f))


def write_atomic(path: Path, write) -> None:
    """write(file) into a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
