"""Training and evaluation loops, `fit` with per-epoch checkpoints, device and precision choice.

Gets model, loaders, optimizer and scheduler as arguments; draws nothing (no matplotlib here).
"""
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message says what to do."""


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


def describe(cfg, device, precision) -> str:
    """Versions, device and precision of this run, for the record at the top of the notebook."""
    import platform

    import albumentations
    import torchvision

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{cpu_name() or platform.machine()}, {torch.get_num_threads()} threads"
    dtype = str(precision.dtype).replace("torch.", "") if precision.dtype else "fp32"
    if device.type == "cpu" and cfg.amp and precision.dtype is None:
        dtype += " (this CPU has no native bf16)"
    return (f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
            f"albumentations {albumentations.__version__}\n"
            f"device {device} ({name}), precision {dtype}, channels_last {precision.channels_last}, seed {cfg.seed}")


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

    After every epoch the state is written to `checkpoint` (if given); with `resume`, an existing
    checkpoint is loaded first and training continues after its last epoch. A diverging epoch
    raises DivergenceError before anything is written, so the last good checkpoint stays.
    """
    history = []
    if checkpoint and resume and Path(checkpoint).exists():
        history = load_checkpoint(checkpoint, model, optimizer, scheduler, precision.scaler, train_loader)
        log(f"resumed from {checkpoint} after epoch {len(history)}")
    for epoch in range(len(history) + 1, epochs + 1):
        start = time.perf_counter()
        train = train_one_epoch(model, train_loader, optimizer, scheduler, device, precision, progress, epoch)
        test = evaluate(model, test_loader, device, precision)
        history.append({"epoch": epoch, "lr": train["lrs"][-1], "lrs": train["lrs"],
                        "train_loss": train["loss"], "train_acc": train["acc"],
                        "test_loss": test["loss"], "test_acc": test["acc"],
                        "seconds": time.perf_counter() - start})
        log(format_epoch(history[-1], epochs))
        if checkpoint:
            save_checkpoint(checkpoint, model, optimizer, scheduler, precision.scaler, train_loader, history)
    return history


def format_epoch(row: dict, epochs: int) -> str:
    return (f"epoch {row['epoch']:>2}/{epochs}  lr {row['lr']:.2e}  "
            f"train loss {row['train_loss']:.3f} acc {100 * row['train_acc']:5.2f}%  "
            f"test loss {row['test_loss']:.3f} acc {100 * row['test_acc']:5.2f}%  {row['seconds']:.0f} s")


def save_checkpoint(path, model, optimizer, scheduler, scaler, train_loader, history) -> None:
    """Everything needed to continue: weights, optimizer, schedule position, RNG states, history.
    Written to a temporary file and renamed, so a kill mid-write leaves the previous one intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = getattr(train_loader, "generator", None)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "history": history,
             "torch_rng": torch.get_rng_state(),
             "loader_rng": generator.get_state() if generator is not None else None}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path, model, optimizer, scheduler, scaler, train_loader=None) -> list:
    """Restore the state saved by `save_checkpoint`; return its history."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        keys = {"model", "optimizer", "scheduler", "scaler", "history", "torch_rng"}
        if not isinstance(state, dict) or not keys <= state.keys():
            raise ValueError("keys missing")
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                              "delete it to start over") from None
    planned, saved = scheduler.state_dict().get("total_steps"), state["scheduler"].get("total_steps")
    if planned != saved:
        raise CheckpointError(f"checkpoint {path} is from a run of {saved} steps, this one has {planned}; "
                              "delete it (or set S10_RESUME=0) to start over")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    generator = getattr(train_loader, "generator", None)
    if generator is not None and state.get("loader_rng") is not None:
        generator.set_state(state["loader_rng"])
    return list(state["history"])
