"""One settings object for the whole run, overridable from environment variables.

Every field can be set as `S10_<FIELD>` (for example `S10_EPOCHS=2`); the data root also
answers to `CIFAR10_ROOT`. A bad value stops with one line that names the variable and the fix.
"""
import dataclasses
import os
from dataclasses import dataclass
from typing import Optional


class SettingsError(ValueError):
    """A setting has a value the run cannot use."""


def first_line(exc: Exception) -> str:
    """An exception as one short line, e.g. "UnpicklingError: invalid load key" (messages of several
    lines, such as torch.load's advice, would break the one-line errors of this package)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:160] if lines else ''}".rstrip(": ")


@dataclass
class Settings:
    # data
    data_root: Optional[str] = None  # image folder with train/<class>/ and test/<class>/; None: torchvision download
    download_dir: str = "data"       # where torchvision downloads CIFAR-10
    cache_dir: str = "data/cache"    # decoded uint8 arrays of an image folder, reused on the next start
    train_subset: int = 0            # training images used; 0 = all 50,000
    test_subset: int = 0             # evaluation images used; 0 = all (10,000 test images)
    validation: int = 0              # training images held out (class-balanced, fixed) and evaluated on
                                     # instead of the test set, which is then never read; 0 = none
    batch_size: int = 512            # images per step
    workers: int = -1                # DataLoader worker processes; -1 = chosen from the device and cores
    cutout_p: float = 1.0            # probability that an image gets the 8x8 cutout hole
    # LR range test
    lr_finder_start: float = 1e-5    # first LR of the exponential sweep
    lr_finder_end: float = 1.0       # last LR of the sweep
    lr_finder_iters: int = 100       # steps of the sweep (batches)
    lr_max_divisor: float = 1.0      # LRMAX = LR at the smoothed-loss minimum / this (0.5: twice that LR)
    lr_min_divisor: float = 100.0    # LRMIN = LRMAX / this (with lr_min_rule "ratio")
    lr_min_rule: str = "ratio"       # LRMIN: "ratio" (LRMAX / lr_min_divisor) or "onset" (the LR at which the
                                     # smoothed loss starts to fall; see utils/lr.py)
    lr_max: float = 0.0              # a fixed LRMAX instead of the range test's; 0 = found by the range test
    # one-cycle training
    epochs: int = 24                 # epochs
    peak_epoch: float = 5.0          # epoch at whose end the LR reaches LRMAX
    final_lr_divisor: float = 1.0    # the last step's LR = LRMIN / this; 1 = no annihilation (the assignment's)
    weight_decay: float = 1e-4       # Adam's weight decay: an L2 penalty in the gradient (coupled), or with
    decoupled_weight_decay: bool = False  # on: a shrink of lr x weight_decay per step (AdamW's), no decay
                                     # of BatchNorm weights and biases
    label_smoothing: float = 0.0     # cross-entropy target smoothing (training and range test), 0..1
    cycle_beta1: bool = False        # let OneCycleLR cycle Adam's beta1 (0.95 -> 0.85 -> 0.95)
    # machinery
    device: str = "auto"             # "auto", "cuda", "mps" or "cpu"
    amp: bool = True                 # mixed precision: bf16 autocast on CPU, bf16/fp16 on CUDA
    channels_last: bool = True       # NHWC memory layout (faster convolutions with amp)
    seed: int = 1                    # seeds torch, numpy, random and the augmentations
    checkpoint: str = "checkpoints/s10.pt"  # the run's state: range test, then every epoch
    resume: bool = True              # continue from `checkpoint` when it exists (0: start over)
    record: str = "auto"             # run record (JSON, per epoch), final weights beside it as .pt; "" = none;
                                     # "auto": runs/s10-seed<seed>.json for the spec, else beside the checkpoint
    weights: str = ""                # trained weights (.pt, record beside) to load instead of sweeping and training
    figures: str = "images"          # folder for the notebook's figures (PNG), never another run's; "" = not saved
    progress: bool = True            # a tqdm bar per epoch (the one-line epoch summary prints anyway)

    def __post_init__(self):
        self.validate()

    @classmethod
    def from_env(cls, env=None, **overrides) -> "Settings":
        """Defaults, then `overrides`, then environment variables `S10_<FIELD>` and `CIFAR10_ROOT`."""
        env = os.environ if env is None else env
        values = {}
        for field in dataclasses.fields(cls):
            name = env_name(field.name)
            if name in env:
                values[field.name] = _parse(name, env[name], field.type)
        if "data_root" not in values and env.get("CIFAR10_ROOT"):
            values["data_root"] = env["CIFAR10_ROOT"]
        return cls(**{**overrides, **values})

    def validate(self):
        def need(ok, field, rule):
            if not ok:
                raise SettingsError(
                    f"{env_name(field)}={getattr(self, field)!r} is invalid: it must be {rule}; "
                    f"fix or unset {env_name(field)}")

        for field in ("train_subset", "test_subset"):
            need(getattr(self, field) >= 0, field, "0 (all) or a positive number of images")
        need(self.validation >= 0 and self.validation % 10 == 0, "validation",
             "0 (none) or a multiple of 10 images (as many from every class), e.g. 5000")
        for field in ("batch_size", "epochs", "lr_finder_iters"):
            need(getattr(self, field) >= 1, field, "a whole number >= 1")
        need(self.workers >= -1, "workers", "-1 (auto) or a number of processes >= 0")
        need(0.0 <= self.cutout_p <= 1.0, "cutout_p", "a probability between 0 and 1")
        need(0 < self.lr_finder_start < self.lr_finder_end, "lr_finder_start",
             f"positive and below S10_LR_FINDER_END={self.lr_finder_end}")
        need(self.lr_max_divisor > 0, "lr_max_divisor", "a number > 0")
        need(self.lr_min_divisor > 1, "lr_min_divisor", "a number > 1")
        need(self.lr_min_rule in ("ratio", "onset"), "lr_min_rule", '"ratio" or "onset"')
        need(self.lr_max >= 0, "lr_max", "0 (found by the range test) or a positive LR, e.g. 0.018")
        need(self.final_lr_divisor >= 1, "final_lr_divisor", "1 (no annihilation) or more")
        need(0 < self.peak_epoch < self.epochs, "peak_epoch",
             f"above 0 and below S10_EPOCHS={self.epochs} (set both for short runs)")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(0 <= self.label_smoothing < 1, "label_smoothing", "a number from 0 up to (not including) 1")
        need(bool(self.checkpoint), "checkpoint", "a file path (the run is stored there)")
        need(self.device in ("auto", "cuda", "mps", "cpu"), "device", '"auto", "cuda", "mps" or "cpu"')


def env_name(field: str) -> str:
    return "CIFAR10_ROOT" if field == "data_root" else f"S10_{field.upper()}"


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _parse(name: str, text: str, kind):
    text = text.strip()
    if kind in (int, "int"):
        try:
            return int(text)
        except ValueError:
            raise SettingsError(f"{name}={text!r} is not a whole number; set it to one (e.g. {name}=24) or unset it") from None
    if kind in (float, "float"):
        try:
            return float(text)
        except ValueError:
            raise SettingsError(f"{name}={text!r} is not a number; set it to one (e.g. {name}=0.5) or unset it") from None
    if kind in (bool, "bool"):
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise SettingsError(f"{name}={text!r} is not a yes/no value; set it to 1 or 0, or unset it")
    return text or None
