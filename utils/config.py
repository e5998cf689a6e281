"""One settings object for the whole run, overridable from environment variables, and how the package
speaks to its user: one error type, exceptions and paths in a few words.

Every field can be set as `S10_<FIELD>` (for example `S10_EPOCHS=2`); the data root also answers to
`CIFAR10_ROOT`. A bad value, or an `S10_` name that is no setting, stops with one line that names the
fix. Fields above `seed` change the result: a run is named by those that differ from the defaults.
"""
import dataclasses
import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


class S10Error(RuntimeError):
    """A problem the user can fix; the message says how. Shown as one line, in a terminal and in
    Jupyter (IPython prints `_render_traceback_` in place of the traceback)."""

    def _render_traceback_(self):
        return [f"error: {self}"]


def first_line(exc: Exception) -> str:
    """An exception as one short line, e.g. "UnpicklingError: invalid load key"."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:160] if lines else ''}".rstrip(": ")


def shown(path) -> str:
    """`path` relative to the working directory when inside it, else with the home folder as ~."""
    path = Path(path).expanduser().resolve()
    for base, prefix in ((Path.cwd().resolve(), ""), (Path.home().resolve(), "~/")):
        if path.is_relative_to(base):
            return prefix + str(path.relative_to(base))
    return str(path)


@dataclass
class Settings:
    # data
    train_subset: int = 0            # training images used; 0 = all 50,000
    test_subset: int = 0             # evaluation images used; 0 = all (10,000 test images)
    validation: int = 0              # training images held out (class-balanced, fixed) and evaluated on
                                     # instead of the test set, which is then never read; 0 = none
    batch_size: int = 512            # images per step
    cutout_size: int = 8             # side of the square cutout hole, pixels
    cutout_p: float = 1.0            # probability that an image gets the cutout hole
    # LR range test
    lr_finder_start: float = 1e-5    # first LR of the exponential sweep
    lr_finder_end: float = 1.0       # last LR of the sweep
    lr_finder_iters: int = 100       # steps of the sweep (batches)
    lr_min_divisor: float = 100.0    # LRMIN = LRMAX / this
    # one-cycle training
    epochs: int = 24                 # epochs
    peak_epoch: float = 5.0          # epoch at whose end the LR reaches LRMAX
    weight_decay: float = 0.25       # Adam's weight decay: each step shrinks the conv and linear weights
                                     # by LR x this (decoupled, as AdamW); none on BatchNorm and biases
    decoupled_weight_decay: bool = True  # off: an L2 penalty added to every gradient (Adam's default)
    seed: int = 1                    # seeds torch, numpy, random and the augmentations
    # where and how (these do not change the result)
    data_root: Optional[str] = None  # folder of train/<class>/, test/<class>/ images; None: download
    download_dir: str = "data"       # where torchvision downloads CIFAR-10
    cache_dir: str = "data/cache"    # decoded uint8 arrays of an image folder, reused on the next start
    runs_dir: str = "experiments"    # where run folders go (utils/run.py); ignored by git
    weights: str = ""                # trained weights (runs/*.pt, record beside) to explore, not train
    device: str = "auto"             # "auto", "cuda", "mps" or "cpu"
    amp: bool = True                 # mixed precision: bf16 autocast on CPU, bf16/fp16 on CUDA
    channels_last: bool = True       # NHWC memory layout (faster convolutions with amp)
    workers: int = -1                # DataLoader worker processes; -1 = chosen from the device and cores
    progress: bool = True            # progress bars (the one-line epoch summary prints anyway)

    def __post_init__(self):
        self.validate()

    @classmethod
    def from_env(cls, env=None, **base) -> "Settings":
        """`base` values (defaults for the rest), then the environment's `S10_<FIELD>` and `CIFAR10_ROOT`."""
        env = os.environ if env is None else env
        names = {env_name(field.name): field for field in dataclasses.fields(cls)}
        for name in env:
            if name.startswith("S10_") and name not in names:
                near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
                raise S10Error(f"{name} is no setting; " + (f"did you mean {near[0]}?" if near else
                               "the settings are the fields of utils/config.py, as S10_<FIELD>"))
        values = {f.name: _parse(name, env[name], f.type) for name, f in names.items() if name in env}
        if "data_root" not in values and env.get("CIFAR10_ROOT"):
            values["data_root"] = env["CIFAR10_ROOT"]
        return cls(**{**base, **values})

    def result(self) -> dict:
        """The settings that change the result (every field above `seed`, and the seed)."""
        names = [field.name for field in dataclasses.fields(self)]
        return {name: getattr(self, name) for name in names[:names.index("seed") + 1]}

    def validate(self):
        def need(ok, field, rule):
            if not ok:
                raise S10Error(f"{env_name(field)}={getattr(self, field)!r} is invalid: it must be {rule}; "
                               f"fix or unset {env_name(field)}")

        for field in ("train_subset", "test_subset"):
            need(getattr(self, field) >= 0, field, "0 (all) or a positive number of images")
        for field in ("batch_size", "epochs", "lr_finder_iters"):
            need(getattr(self, field) >= 1, field, "a whole number >= 1")
        need(0 <= self.cutout_size <= 32, "cutout_size", "a side in pixels from 0 (no hole) to 32")
        need(0.0 <= self.cutout_p <= 1.0, "cutout_p", "a probability between 0 and 1")
        need(0 < self.lr_finder_start < self.lr_finder_end, "lr_finder_start",
             f"positive and below S10_LR_FINDER_END={self.lr_finder_end}")
        need(self.lr_min_divisor > 1, "lr_min_divisor", "a number > 1")
        need(0 < self.peak_epoch < self.epochs, "peak_epoch",
             f"above 0 and below S10_EPOCHS={self.epochs} (set both for short runs)")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(self.workers >= -1, "workers", "-1 (auto) or a number of processes >= 0")
        need(self.device in ("auto", "cuda", "mps", "cpu"), "device", '"auto", "cuda", "mps" or "cpu"')


def settings(env=None) -> Settings:
    """The settings of this execution: the environment's; with S10_WEIGHTS those of the run that made
    the weights (its record), which the environment may not contradict."""
    cfg = Settings.from_env(env)
    if not cfg.weights:
        return cfg
    record = read_record(Path(cfg.weights).with_suffix(".json"))
    trained = {name: record["settings"][name] for name in cfg.result()}
    for name, value in cfg.result().items():
        if f"S10_{name.upper()}" in (os.environ if env is None else env) and value != trained[name]:
            raise S10Error(f"S10_{name.upper()}={value} but {cfg.weights} was trained with {trained[name]}; "
                           f"unset S10_{name.upper()} to explore these weights")
    return Settings.from_env(env, **trained)


def read_record(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise S10Error(f"{path} does not exist; set S10_WEIGHTS to a runs/s10-seed<n>.pt with its .json "
                       "beside it") from None
    except ValueError as exc:
        raise S10Error(f"{path} is unreadable ({first_line(exc)}); restore it from git") from None


def env_name(field: str) -> str:
    return "CIFAR10_ROOT" if field == "data_root" else f"S10_{field.upper()}"


BOOLEANS = {"1": True, "true": True, "yes": True, "on": True,
            "0": False, "false": False, "no": False, "off": False}


def _parse(name: str, text: str, kind):
    """`text` as a field of type `kind` (a yes/no word for bool), or one line that says what it must be."""
    text, kind = text.strip(), {"int": int, "float": float, "bool": bool}.get(kind, kind)
    try:
        if kind is bool:
            return BOOLEANS[text.lower()]
        return kind(text) if kind in (int, float) else text or ("" if kind is str else None)
    except (KeyError, ValueError):
        what = {bool: "1 or 0", int: "a whole number, e.g. 24"}.get(kind, "a number, e.g. 0.5")
        raise S10Error(f"{name}={text!r} must be {what}; fix or unset {name}") from None
