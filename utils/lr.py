"""The LR range test (torch-lr-finder) with its rule for LRMAX and LRMIN, and the one-cycle schedule.

The rule, applied to the exponentially smoothed loss of a sweep from `start_lr` to `end_lr`:

    LRMAX = (LR at the smoothed-loss minimum) / lr_max_divisor     (default 1; S10_LR_MAX fixes it instead)
    LRMIN = LRMAX / lr_min_divisor                                  (default 100, S10_LR_MIN_RULE=ratio)
    LRMIN = the onset: the first LR at which the smoothed loss lies a tenth of its whole fall (from
            the sweep's first step down to the minimum) below where it started   (S10_LR_MIN_RULE=onset)

The onset is the lower bound of the range test as first defined (Smith 2017: the LR at which the
loss starts to fall). It needs a sweep that starts on the plateau, where the loss does not move
yet: from 1e-5 it already falls at the first steps, so S10_LR_FINDER_START=1e-7 goes with it.

Why not the steepest slope (torch-lr-finder's `suggest_lr`): in the committed runs (CIFAR-10 JPEG
copy) the 100-step sweep from 1e-5 has its steepest point at 7.2e-5 for seeds 1 and 2, in the noise
of the first steps, and at 0.22 for seed 3, far past the minimum, where the blown-up loss (above 3)
drifts down; the loss minimum sits at 7.56e-3, 8.50e-3 and 8.50e-3. The minimum of the smoothed
loss is a single, stable landmark.

Why the minimum itself, not fastai's "minimum / 10": with Adam and this network the loss-minimum LR is
a good one-cycle peak. On CIFAR-10 (JPEG copy) the three committed runs (seeds 1, 2 and 3) all ended
above 90% with it (an earlier fp32 version of this code found 8.5e-3, 1.35e-2 and 6.7e-3); an
independent run of this spec there (Adam, weight decay 1e-4, 24 epochs, final epoch) reached 90.6% with
LRMAX 1e-2 / LRMIN 1e-4 but 89.8% with LRMAX 2.4e-3 / LRMIN 2.4e-4, and public solutions of this
exercise reached 93% on the original data with Adam peaks from 2e-3 to 1.8e-2. LRMIN two decades below
the peak lets the last epochs settle.
"""
import contextlib
import functools
import io
import time
import warnings
from dataclasses import dataclass
from unittest import mock

import numpy as np
import torch
from torch.optim.lr_scheduler import OneCycleLR
from tqdm import TqdmExperimentalWarning

from utils.config import S10Error
from utils.loaders import to_device

with warnings.catch_warnings():  # torch-lr-finder imports tqdm.autonotebook, which warns in notebooks
    warnings.simplefilter("ignore", TqdmExperimentalWarning)
    from torch_lr_finder import LRFinder, lr_finder
    from torch_lr_finder.lr_finder import TrainDataLoaderIter


class OnDevice(TrainDataLoaderIter):
    """The loader's uint8 batches as training feeds them to the network (`utils.loaders.to_device`)."""

    def __init__(self, loader, device, memory_format):
        super().__init__(loader)
        self.device, self.memory_format = device, memory_format

    def inputs_labels_from_batch(self, batch):
        return to_device(*batch, self.device, self.memory_format)


@dataclass
class LRTest:
    lrs: list          # LR of each step of the sweep
    losses: list       # smoothed training loss after each step
    lr_at_min: float   # LR where the smoothed loss is lowest
    lr_max: float      # LRMAX, the one-cycle peak
    lr_min: float      # LRMIN, where the cycle starts and ends
    diverged: bool = False  # the sweep stopped early because the loss blew up
    seconds: float = None   # how long the sweep took (None in records written before it was timed)
    lr_onset: float = None  # LR where the smoothed loss starts to fall (None: LRMIN by ratio, or older records)
    fixed_max: bool = False  # LRMAX was set (S10_LR_MAX), not found

    def __str__(self):
        took = f" (swept in {self.seconds / 60:.1f} min)" if self.seconds else ""
        onset = f", fall starts at LR {self.lr_onset:.2e}" if self.lr_onset else ""
        fixed = " (fixed)" if self.fixed_max else ""
        return (f"loss minimum at LR {self.lr_at_min:.2e}{onset}: LRMAX {self.lr_max:.2e}{fixed}, "
                f"LRMIN {self.lr_min:.2e}{took}")


def loss_onset(lrs, losses, best: int) -> float:
    """The LR at which the smoothed loss starts to fall (the rule of this module's docstring)."""
    fallen = np.flatnonzero(losses[:best + 1] <= losses[0] - 0.1 * (losses[0] - losses[best]))
    if fallen[0] < len(losses) // 10:
        raise S10Error(f"the loss already falls in the first tenth of the LR range test (at LR {lrs[fallen[0]]:.2e}); "
                            "lower S10_LR_FINDER_START so that the sweep starts where the loss does not move yet")
    return float(lrs[fallen[0]])


def pick_lrs(lrs, losses, max_divisor: float = 1.0, min_divisor: float = 100.0, lr_max: float = 0.0,
             min_rule: str = "ratio") -> LRTest:
    """Apply the rule of this module's docstring to a range-test curve."""
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    finite = np.isfinite(losses)
    if finite.sum() < 5:
        raise S10Error("the LR range test has fewer than 5 finite losses; raise S10_LR_FINDER_ITERS "
                            "or lower S10_LR_FINDER_START")
    best = int(np.argmin(np.where(finite, losses, np.inf)))
    if best < 0.1 * len(losses):
        raise S10Error(f"the loss never fell during the LR range test (lowest at the start, LR {lrs[best]:.2e}); "
                            "lower S10_LR_FINDER_START or check the data and labels")
    if best == len(losses) - 1:
        warnings.warn(f"the loss was still falling at the last LR tested ({lrs[best]:.2e}); raise S10_LR_FINDER_END",
                      stacklevel=2)
    onset = loss_onset(lrs, losses, best) if min_rule == "onset" else None
    found_max = lrs[best] / max_divisor
    lr_min = onset if onset else (lr_max or found_max) / min_divisor
    if lr_min >= (lr_max or found_max):
        raise S10Error(f"LRMIN {lr_min:.2e} is not below LRMAX {lr_max or found_max:.2e}; "
                            "check S10_LR_MAX and S10_LR_MIN_RULE")
    return LRTest(lrs.tolist(), losses.tolist(), float(lrs[best]), float(lr_max or found_max), float(lr_min),
                  lr_onset=onset, fixed_max=bool(lr_max))


def lr_range_test(model, optimizer, loader, device, start_lr, end_lr, iters,
                  precision=None, max_divisor=1.0, min_divisor=100.0, label_smoothing=0.0, lr_max=0.0,
                  min_rule="ratio", progress=True) -> LRTest:
    """Sweep the LR exponentially (Adam as given, the training loss: cross-entropy with `label_smoothing`)
    from `start_lr` to `end_lr` over `iters` batches, in the training's `precision` (a
    utils.device.Precision: autocast dtype, and loss scaling exactly when training scales), then
    restore model and optimizer (`LRFinder.reset`) and pick LRMAX and LRMIN by `pick_lrs` (with
    `lr_max` > 0 LRMAX is that, and the sweep still runs: for its plot and, by `min_rule`, LRMIN).
    `progress` False hides the library's progress bar."""
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    amp = {}
    if precision is not None and precision.dtype is not None:
        amp = dict(amp_backend="torch", amp_config=dict(device_type=device.type, dtype=precision.dtype),
                   grad_scaler=torch.amp.GradScaler(device.type, enabled=precision.scaler.is_enabled()))
    finder = LRFinder(model, optimizer, criterion, device=device, **amp)
    batches = OnDevice(loader, device, precision.memory_format if precision else torch.contiguous_format)
    printed = io.StringIO()  # the library prints advice meant for its own plot(); keep it out of the notebook
    start = time.perf_counter()
    try:
        bar = functools.partial(lr_finder.tqdm, disable=not progress)
        with contextlib.redirect_stdout(printed), mock.patch.object(lr_finder, "tqdm", bar):
            finder.range_test(batches, start_lr=start_lr, end_lr=end_lr, num_iter=iters, step_mode="exp")
    finally:
        finder.reset()
    found = pick_lrs(finder.history["lr"], finder.history["loss"], max_divisor, min_divisor, lr_max, min_rule)
    found.diverged = "diverged" in printed.getvalue()
    found.seconds = round(time.perf_counter() - start, 1)
    return found


def one_cycle(optimizer, lr_max, lr_min, epochs, steps_per_epoch, peak_epoch=5, cycle_beta1=False,
              final_divisor=1.0) -> OneCycleLR:
    """Linear one-cycle, stepped once per batch: LRMIN -> LRMAX at the end of `peak_epoch` -> LRMIN.

    Two phases (`three_phase=False`) and no annihilation (`final_div_factor=1`): the last step
    trains at LRMIN. `final_divisor` > 1 ends at LRMIN / final_divisor instead (an annihilation, as
    in the public recipes with final_div_factor 100: outside the assignment, for comparison).
    OneCycleLR would also cycle Adam's beta1 (0.95 -> 0.85 -> 0.95) by default; we keep Adam's own
    beta1 = 0.9 unless `cycle_beta1`, since the spec schedules the LR only.
    """
    return OneCycleLR(
        optimizer, max_lr=lr_max, epochs=epochs, steps_per_epoch=steps_per_epoch,
        pct_start=peak_epoch / epochs, anneal_strategy="linear", three_phase=False,
        div_factor=lr_max / lr_min, final_div_factor=final_divisor,
        cycle_momentum=cycle_beta1, base_momentum=0.85, max_momentum=0.95)


def planned_lrs(lr_max, lr_min, epochs, steps_per_epoch, peak_epoch=5, final_divisor=1.0) -> list:
    """The LR of every training step under `one_cycle`, as plain data to plot and test."""
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr_min)
    scheduler = one_cycle(optimizer, lr_max, lr_min, epochs, steps_per_epoch, peak_epoch, final_divisor=final_divisor)
    lrs = []
    for _ in range(epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs
