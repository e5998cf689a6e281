"""The LR range test (torch-lr-finder) with its rule for LRMAX and LRMIN, and the one-cycle schedule.

The rule, on the exponentially smoothed loss of a sweep from S10_LR_FINDER_START to _END:

    LRMAX = the LR at the smoothed-loss minimum
    LRMIN = LRMAX / S10_LR_MIN_DIVISOR (100)

Why the minimum, not torch-lr-finder's steepest slope (`suggest_lr`): on this data the steepest
point of the committed runs' sweeps lies in the noise of the first steps (7.2e-5, seeds 1 and 2)
or far past the minimum (0.22, seed 3), while their minima sit at 7.6e-3 to 8.5e-3: a single,
stable landmark. With Adam and this network it is a good one-cycle peak (every committed run
ended above 90% with it), and LRMIN two decades below lets the last epochs settle.
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

with warnings.catch_warnings():  # torch-lr-finder imports tqdm.autonotebook, which warns in notebooks
    warnings.simplefilter("ignore", TqdmExperimentalWarning)
    from torch_lr_finder import LRFinder, lr_finder


@dataclass
class LRTest:
    lrs: list          # LR of each step of the sweep
    losses: list       # smoothed training loss after each step
    lr_at_min: float   # LR where the smoothed loss is lowest
    lr_max: float      # LRMAX, the one-cycle peak
    lr_min: float      # LRMIN, where the cycle starts and ends
    diverged: bool = False  # the sweep stopped early because the loss blew up
    seconds: float = None   # how long the sweep took (None in records written before it was timed)

    def __str__(self):
        took = f" (swept in {self.seconds / 60:.1f} min)" if self.seconds else ""
        return (f"loss minimum at LR {self.lr_at_min:.2e}: LRMAX {self.lr_max:.2e}, "
                f"LRMIN {self.lr_min:.2e}{took}")


def pick_lrs(lrs, losses, min_divisor: float = 100.0) -> LRTest:
    """Apply the rule of this module's docstring to a range-test curve."""
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    finite = np.isfinite(losses)
    if finite.sum() < 5:
        raise S10Error("the LR range test has fewer than 5 finite losses; raise S10_LR_FINDER_ITERS "
                       "or lower S10_LR_FINDER_START")
    best = int(np.argmin(np.where(finite, losses, np.inf)))
    if best < 0.1 * len(losses):
        raise S10Error(f"the loss never fell during the LR range test (lowest at the start, "
                       f"LR {lrs[best]:.2e}); lower S10_LR_FINDER_START or check the data and labels")
    if best == len(losses) - 1:
        warnings.warn(f"the loss was still falling at the last LR tested ({lrs[best]:.2e}); "
                      "raise S10_LR_FINDER_END", stacklevel=2)
    peak = float(lrs[best])
    return LRTest(lrs.tolist(), losses.tolist(), peak, peak, peak / min_divisor)


def lr_range_test(model, optimizer, loader, device, cfg, precision) -> LRTest:
    """Sweep the LR exponentially over `cfg.lr_finder_iters` batches (Adam as given, the training
    loss), in the training's `precision` (autocast dtype, and loss scaling exactly when training
    scales), restore model and optimizer (`LRFinder.reset`), and apply the rule above."""
    criterion = torch.nn.CrossEntropyLoss()
    amp = {} if precision.dtype is None else dict(
        amp_backend="torch", amp_config=dict(device_type=device.type, dtype=precision.dtype),
        grad_scaler=torch.amp.GradScaler(device.type, enabled=precision.scaler.is_enabled()))
    finder = LRFinder(model, optimizer, criterion, device=device, **amp)
    printed = io.StringIO()  # the library prints advice meant for its own plot(); keep it out of the notebook
    bar = functools.partial(lr_finder.tqdm, disable=not cfg.progress)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(printed), mock.patch.object(lr_finder, "tqdm", bar):
            finder.range_test(loader, start_lr=cfg.lr_finder_start, end_lr=cfg.lr_finder_end,
                              num_iter=cfg.lr_finder_iters, step_mode="exp")
    finally:
        finder.reset()
    history = finder.history
    found = pick_lrs(history["lr"], history["loss"], cfg.lr_min_divisor)
    found.diverged, found.seconds = "diverged" in printed.getvalue(), round(time.perf_counter() - start, 1)
    return found


def one_cycle(optimizer, lr_max, lr_min, epochs, steps_per_epoch, peak_epoch=5):
    """Linear one-cycle, stepped once per batch: LRMIN -> LRMAX at the end of `peak_epoch` -> LRMIN.

    Two phases (`three_phase=False`) and no annihilation (`final_div_factor=1`): the last step
    trains at LRMIN. Adam's beta1 stays 0.9 (`cycle_momentum=False`): the spec schedules the LR only.
    """
    return OneCycleLR(optimizer, max_lr=lr_max, epochs=epochs, steps_per_epoch=steps_per_epoch,
                      pct_start=peak_epoch / epochs, anneal_strategy="linear", three_phase=False,
                      div_factor=lr_max / lr_min, final_div_factor=1.0, cycle_momentum=False)


def planned_lrs(lr_max, lr_min, epochs, steps_per_epoch, peak_epoch=5) -> list:
    """The LR of every training step under `one_cycle`, as plain data to plot and test."""
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr_min)
    scheduler = one_cycle(optimizer, lr_max, lr_min, epochs, steps_per_epoch, peak_epoch)
    lrs = []
    for _ in range(epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs
