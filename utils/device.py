"""Where the run computes and in what precision, and how to name that machine.

`pick_device` and `pick_precision` choose; `environment` and `describe` say what was chosen (for
the set-up line at the top of the notebook and for the run record). Nothing here trains.
"""
import platform
from dataclasses import dataclass, field

import torch


def pick_device(name: str = "auto") -> torch.device:
    """The device `name`, or with "auto" the first of cuda, mps, cpu that is there. On CUDA it also
    lets cuDNN pick its fastest convolution algorithms (`cudnn.benchmark`): the input shape never changes."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


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


def cuda_has_bf16(device) -> bool:
    """Whether this CUDA card computes in bf16 in hardware: compute capability 8.0 (Ampere) or newer.

    Not `torch.cuda.is_bf16_supported()` as called by default: it counts emulation, so it says True
    on a Tesla T4 (7.5, Colab's free GPU), where cuDNN has no bf16 convolutions.
    """
    return torch.cuda.get_device_capability(device) >= (8, 0)


def pick_precision(device, amp=True, channels_last=True) -> Precision:
    """Mixed precision where the hardware has it: bf16 autocast on CPUs with native bf16 and on CUDA
    cards of compute capability >= 8.0 (A100, H100, RTX 30xx+); fp16 autocast with loss scaling on
    older CUDA cards (T4, V100) and fp16 on MPS; fp32 otherwise. Used for training and the LR range test."""
    dtype = None
    if amp and device.type == "cpu" and cpu_has_bf16():
        dtype = torch.bfloat16
    elif amp and device.type == "cuda":
        dtype = torch.bfloat16 if cuda_has_bf16(device) else torch.float16
    elif amp and device.type == "mps":
        dtype = torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16 and device.type == "cuda")
    return Precision(dtype, channels_last, scaler)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return ""


def environment(device) -> dict:
    """Device name, threads and library versions of this process (for the set-up line and the run record)."""
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
    elif device.type == "cuda" and precision.dtype == torch.float16:
        dtype += " with loss scaling (this card has no native bf16)"
    versions = ", ".join(f"{library} {version}" for library, version in env["versions"].items())
    return (f"{versions}\n"
            f"device {device} ({name}), precision {dtype}, loader workers {workers}, seed {cfg.seed}")
