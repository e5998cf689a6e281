"""Where the run computes and in what precision, and the words that name that machine (for the
set-up lines at the top of the notebook and for the run record). Nothing here trains."""
import platform
import sys
from dataclasses import dataclass, field

import torch

from utils.config import S10Error


def pick_device(name: str = "auto") -> torch.device:
    """The device `name`, or with "auto" the first of cuda, mps, cpu that is there. On CUDA it also
    lets cuDNN pick its fastest convolution algorithms (`cudnn.benchmark`): the input shape never changes."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise S10Error("S10_DEVICE=cuda but torch sees no CUDA GPU here; "
                       "run on a GPU machine or unset S10_DEVICE")
    if name == "cuda":
        torch.backends.cudnn.benchmark = True
    return torch.device(name)


def check_runtime(cfg, device) -> None:
    """In Colab, stop before anything runs when the runtime has no GPU: a free Colab runtime ends long
    before a CPU run (about 9.5 h) does. Exploring trained weights (S10_WEIGHTS) takes minutes on the
    CPU and stays allowed, and so does the CPU asked for by name (S10_DEVICE=cpu)."""
    if "google.colab" in sys.modules and device.type == "cpu" and not cfg.weights and cfg.device != "cpu":
        raise SystemExit("This Colab runtime has no GPU: choose Runtime > Change runtime type > T4 GPU, "
                         "then Run all again (or set WEIGHTS in the first cell to explore trained weights, "
                         "or CPU_ON_PURPOSE = True to train on the CPU for about 9.5 hours)")


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


def cpuinfo() -> dict:
    """The first value of every field of /proc/cpuinfo ("vendor_id", "model name", ...); {} elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            pairs = [line.split(":", 1) for line in f if ":" in line]
    except OSError:
        return {}
    return {key.strip(): value.strip() for key, value in reversed(pairs)}  # the first CPU's win


def cpu_prefers_bf16() -> bool:
    """Whether bf16 autocast trains this network faster than fp32 on this CPU: a rule from the
    measurements in benchmarks/README.md, not a timing at start-up, so that one machine always picks
    the same precision. bf16 with AMX, or with AVX-512 BF16 on AMD; fp32 with AVX-512 BF16 on Intel
    without AMX (slower in bf16 there) and without native bf16 (emulated by oneDNN: 11x slower on Zen 3)."""
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    return torch.cpu._is_amx_tile_supported() or cpuinfo().get("vendor_id") != "GenuineIntel"


def pick_precision(device, amp=True, channels_last=True, keep=None) -> Precision:
    """The precision of a run, for training and the LR range test.

    `amp` off: fp32. Else `keep`, the precision name of the checkpoint being resumed ("bf16
    channels_last", ...): a run ends in the precision it started in. Else mixed precision where it
    is faster: on the CPU by `cpu_prefers_bf16`; bf16 on CUDA cards of compute capability >= 8.0
    (A100, H100, RTX 30xx+); fp16 with loss scaling on older ones (T4, V100), where cuDNN has no
    bf16 convolutions (`torch.cuda.is_bf16_supported()` counts emulation and says True on a T4);
    fp32 on MPS (autocast needs torch >= 2.5 there, and loss scaling works only in later versions)."""
    if not amp:
        dtype = None
    elif keep:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(keep.split()[0])
        channels_last = keep.endswith("channels_last")
    elif device.type == "cpu":
        dtype = torch.bfloat16 if cpu_prefers_bf16() else None
    elif device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16
    else:
        dtype = None
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    return Precision(dtype, channels_last, scaler)


def environment(device) -> dict:
    """Device name, threads and library versions of this process (for the set-up line and the run record)."""
    import albumentations
    import torchvision

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        cpuinfo().get("model name") or platform.machine()
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "torchvision": torchvision.__version__, "albumentations": albumentations.__version__}
    return {"device_name": name, "threads": torch.get_num_threads(), "versions": versions}


def describe(cfg, device, workers) -> str:
    """Versions and device of this execution, for the set-up lines at the top of the notebook."""
    env = environment(device)
    name = env["device_name"] if device.type == "cuda" else f"{env['device_name']}, {env['threads']} threads"
    versions = ", ".join(f"{library} {version}" for library, version in env["versions"].items())
    return f"{versions}\ndevice {device} ({name}), loader workers {workers}, seed {cfg.seed}"
