"""Training and evaluation loops, `fit` with per-epoch checkpoints, device and precision choice.

Gets model, loaders, optimizer and scheduler as arguments; draws nothing (no matplotlib here).
"""
import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from utils.checkpoint import Checkpoint, CheckpointError  # noqa: F401  (CheckpointError: part of this API)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class Precision:
    dtype: torch.dtype = None        # autocast dtype; None = full fp32
    channels_last: bool = False      # NHWC memory layout for model and inputs
    scaler: torch.amp.GradScaler = field(  # loss scaling, on for CUDA fp16 only
        default_factory=lambda: torch.amp.GradScaler("cpu", enabled=False))

    @property
    def name(self) -> str:
        """e.g. "bf16 channels_last", "fp32"."""
        dtype = {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[self.dtype]
        return dtype + (" channels_last" if self.channels_last else "")

    @property
    def memory_format(self):
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device):
        return torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def to_device(self, x, y, device):
        return x.to(device, non_blocking=True, memory_format=self.memory_format), y.to(device, non_blocking=True)


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 natively (AVX-512 BF16 or AMX). Without it, oneDNN emulates bf16
    and autocast is ~10x slower than fp32 (measured: 3 vs 40 img/s on an AVX2-only AMD EPYC)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(device, amp=True, channels_last=True) -> Precision:
    """Mixed precision where it is fast: bf16 on CPUs with native bf16 and on CUDA cards that have
    it, fp16 with loss scaling on older CUDA cards and on MPS; fp32 otherwise."""
    dtype = None
    if amp and device.type == "cpu" and cpu_has_bf16():
        dtype = torch.bfloat16
    elif amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif amp and device.type == "mps":
        dtype = torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16 and device.type == "cuda")
    return Precision(dtype, channels_last, scaler)


def environment(device) -> dict:
    """Device name, threads and library versions of this process (for the set-up line and the run record)."""
    import platform

    import albumentations
    import torchvision

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name() or platform.machine()
    return {"device_name": name, "threads": torch.get_num_threads(),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "torchvision": torchvision.__version__, "albumentations": albumentations.__version__}}


def describe(cfg, device, precision, workers) -> str:
    """Versions, device and precision of this run, for the record at the top of the notebook."""
    env = environment(device)
    name = env["device_name"] if device.type == "cuda" else f"{env['device_name']}, {env['threads']} threads"
    dtype = precision.name
    if device.type == "cpu" and cfg.amp and precision.dtype is None:
        dtype += " (this CPU has no native bf16)"
    versions = ", ".join(f"{library} {version}" for library, version in env["versions"].items())
    return (f"{versions}\n"
            f"device {device} ({name}), precision {dtype}, loader workers {workers}, seed {cfg.seed}")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return ""


def train_step(model, x, y, optimizer, device, precision):
    """Forward, cross-entropy, backward and optimizer step on one batch; returns (logits, loss)."""
    with precision.autocast(device):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    precision.scaler.scale(loss).backward()
    precision.scaler.step(optimizer)
    precision.scaler.update()
    return logits, loss


def train_one_epoch(model, loader, optimizer, scheduler, device, precision, progress=True, epoch=1,
                    check_every=20) -> dict:
    """One pass over `loader`, one optimizer and scheduler step per batch.

    Returns mean loss, accuracy and the LR of every step. A non-finite loss raises DivergenceError
    naming the epoch, step and LR; it is tracked on the device and read every `check_every` steps,
    so the loop does not wait for the accelerator after each batch.
    """
    model.train()
    loss_sum, correct, seen, lrs = torch.zeros((), device=device), torch.zeros((), device=device), 0, []
    first_bad = torch.full((), -1, device=device)
    for step, (x, y) in enumerate(tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress)):
        x, y = precision.to_device(x, y, device)
        lrs.append(optimizer.param_groups[0]["lr"])
        logits, loss = train_step(model, x, y, optimizer, device, precision)
        scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
        if (step + 1) % check_every == 0:
            _check_finite(first_bad, epoch, lrs)
    _check_finite(first_bad, epoch, lrs)
    return {"loss": loss_sum.item() / seen, "acc": correct.item() / seen, "lrs": lrs}


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


def _check_finite(first_bad, epoch, lrs):
    step = int(first_bad)
    if step >= 0:
        raise DivergenceError(f"training diverged: the loss became NaN/inf at epoch {epoch}, step {step + 1} "
                              f"(LR {lrs[step]:.2e}); lower the peak LR (raise S10_LR_MAX_DIVISOR) and start over")


@torch.no_grad()
def predict(model, loader, device, precision, progress=False):
    """(logits, labels) for every image of `loader`, on the CPU, in fp32; the model's mode is kept."""
    was_training = model.training
    model.eval()
    outputs, labels = [], []
    for x, y in tqdm(loader, desc="test", leave=False, disable=not progress):
        x, _ = precision.to_device(x, y, device)
        with precision.autocast(device):
            outputs.append(model(x).float().cpu())
        labels.append(y)
    model.train(was_training)
    return torch.cat(outputs), torch.cat(labels)


def evaluate(model, loader, device, precision, progress=False) -> dict:
    """Mean cross-entropy and accuracy on `loader`; changes no weights and no BatchNorm statistics."""
    logits, labels = predict(model, loader, device, precision, progress)
    return {"loss": F.cross_entropy(logits, labels).item(),
            "acc": (logits.argmax(1) == labels).float().mean().item()}


def fit(model, train_loader, test_loader, optimizer, scheduler, epochs, device, precision,
        checkpoint=None, resume=True, progress=True, log=print) -> list:
    """Train for `epochs` epochs; return the history, one dict per epoch.

    `checkpoint` (a Checkpoint, a path for one, or a TrainedRun that only restores) is written after every epoch; an existing one
    is loaded first (with `resume`) and training continues after its last finished epoch. Every
    epoch of the run is printed, those trained by an earlier execution marked `*`. Each epoch's
    shuffle and augmentation come from (seed, epoch) (`set_epoch`), so a resumed run ends with the
    weights of one that never stopped. A diverging epoch raises DivergenceError before anything
    is written, so the last good checkpoint stays.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = Checkpoint(checkpoint, resume=resume)
    history = checkpoint.restore(model, optimizer, scheduler, precision.scaler) if checkpoint else []
    resumes = checkpoint.resumes if checkpoint else 0
    if history:
        resumes += len(history) < epochs
        state = (f"continued after epoch {len(history)} (resume {resumes})" if len(history) < epochs
                 else f"complete ({len(history)} epochs, {resumes} resumes); nothing left to train")
        log(f"run in {checkpoint.path} {state}; * = trained by an earlier execution")
        for row in history:
            log(format_epoch(row, epochs) + "  *")
    for epoch in range(len(history) + 1, epochs + 1):
        start = time.perf_counter()
        set_epoch(train_loader, epoch)
        train = train_one_epoch(model, train_loader, optimizer, scheduler, device, precision, progress, epoch)
        test = evaluate(model, test_loader, device, precision)
        history.append({"epoch": epoch, "lr": train["lrs"][-1], "lrs": train["lrs"],
                        "train_loss": train["loss"], "train_acc": train["acc"],
                        "test_loss": test["loss"], "test_acc": test["acc"],
                        "seconds": time.perf_counter() - start, "execution": resumes + 1})
        log(format_epoch(history[-1], epochs))
        if checkpoint:
            checkpoint.save_epoch(model, optimizer, scheduler, precision.scaler, history, resumes, epochs)
    return history


def set_epoch(loader, epoch: int) -> None:
    """Tell the loader's sampler and dataset which epoch comes next (each that has `set_epoch`)."""
    for part in (getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)


def format_epoch(row: dict, epochs: int) -> str:
    return (f"epoch {row['epoch']:>2}/{epochs}  lr {row['lr']:.2e}  "
            f"train loss {row['train_loss']:.3f} acc {100 * row['train_acc']:5.2f}%  "
            f"test loss {row['test_loss']:.3f} acc {100 * row['test_acc']:5.2f}%  {row['seconds']:.0f} s")
