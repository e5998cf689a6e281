"""Training and evaluation loops, and `fit`: the epochs of a run, saved after each one.

Gets model, loaders, optimizer, scheduler, device and precision (utils/device.py) as arguments;
draws nothing (no matplotlib here).
"""
import time

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from utils.config import S10Error


EMA_DECAY = 0.99  # per step: the average's time constant is 100 steps, about one epoch at batch 512


def make_optimizer(model, lr, weight_decay, device, decoupled=True):
    """Adam with decoupled weight decay (each step shrinks a weight by lr x weight_decay, as AdamW)
    on the conv and linear weights, none on BatchNorm weights and biases; not `decoupled`, Adam's
    L2 decay (added to every gradient). Fused on CUDA: with loss scaling the plain step reads a flag
    back from the GPU every step (GradScaler's `.item()`), the fused one does not. Elsewhere the
    plain implementation, so a CPU run computes what it always did."""
    params = model.parameters()
    if decoupled:
        params = [{"params": [p for p in model.parameters() if p.ndim > 1]},
                  {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0}]
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, decoupled_weight_decay=decoupled,
                            fused=device.type == "cuda")


def make_ema(model, decay=EMA_DECAY) -> AveragedModel:
    """An exponential moving average of `model`'s weights and BatchNorm statistics, updated after
    every training step (`train_one_epoch`) and scored beside the plain weights after every epoch."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def train_step(model, x, y, optimizer, device, precision, criterion=F.cross_entropy):
    """Forward, loss (`criterion`), backward and optimizer step on one batch; returns (logits, loss)."""
    with precision.autocast(device):
        logits = model(x)
        loss = criterion(logits, y)
    optimizer.zero_grad(set_to_none=True)
    precision.scaler.scale(loss).backward()
    precision.scaler.step(optimizer)
    precision.scaler.update()
    return logits, loss


def train_one_epoch(model, loader, optimizer, scheduler, device, precision, progress=True, epoch=1,
                    criterion=F.cross_entropy, ema=None, check_every=20) -> dict:
    """One pass over `loader`, one optimizer and scheduler step per batch (and `ema` update).

    Returns mean loss, accuracy and the LR of every step. A non-finite loss raises S10Error naming
    the epoch; the sum is read back every `check_every` steps, not after each batch, so the loop
    does not wait for the accelerator.
    """
    model.train()
    loss_sum, correct, seen, lrs = torch.zeros((), device=device), torch.zeros((), device=device), 0, []
    for step, (x, y) in enumerate(tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress)):
        x = x.to(device, non_blocking=True, memory_format=precision.memory_format)
        y = y.to(device, non_blocking=True)
        lrs.append(optimizer.param_groups[0]["lr"])
        logits, loss = train_step(model, x, y, optimizer, device, precision, criterion)
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if ((step + 1) % check_every == 0 or step + 1 == len(loader)) and not torch.isfinite(loss_sum):
            raise S10Error(f"training diverged: the loss became NaN/inf in epoch {epoch} by step {step + 1} "
                           f"(LR {lrs[-1]:.2e}); set S10_LR_FINDER_END below it (LRMAX never exceeds it)")
    return {"loss": loss_sum.item() / seen, "acc": correct.item() / seen, "lrs": lrs}


@torch.no_grad()
def predict(model, loader, device, precision, progress=False, mirror=False):
    """(logits, labels) for every image of `loader`, on the CPU, in fp32; the model's mode is kept.
    `mirror`: of the images flipped left-right (for flip test-time augmentation)."""
    was_training = model.training
    model.eval()
    outputs, labels = [], []
    for x, y in tqdm(loader, desc="test", leave=False, disable=not progress):
        x = x.to(device, non_blocking=True, memory_format=precision.memory_format)
        if mirror:
            x = x.flip(3)  # (B, C, H, W): W reversed
        with precision.autocast(device):
            outputs.append(model(x).float())
        labels.append(y)
    model.train(was_training)
    return torch.cat(outputs).cpu(), torch.cat(labels)  # one copy from the device, not one per batch


def evaluate(model, loader, device, precision, progress=False) -> dict:
    """Mean cross-entropy and accuracy on `loader`; changes no weights and no BatchNorm statistics."""
    logits, labels = predict(model, loader, device, precision, progress)
    return {"loss": F.cross_entropy(logits, labels).item(),
            "acc": (logits.argmax(1) == labels).float().mean().item()}


def fit(model, train_loader, test_loader, optimizer, scheduler, epochs, device, precision, run=None,
        progress=True, log=print, criterion=F.cross_entropy, eval_name="test", ema=None) -> list:
    """Train for `epochs` epochs; return the history, one dict per epoch.

    What `run` (utils.run.Run) holds is restored first: training continues after its last finished
    epoch, its earlier epochs listed first, and it is saved after every epoch. Each epoch's shuffle
    and augmentation come from (seed, epoch), so a resumed run ends with the weights of one that
    never stopped. `test_loader` is scored with plain cross-entropy, named `eval_name`; `ema`
    (`make_ema`) is updated every step and scored after every epoch (`ema_loss`, `ema_acc`).
    """
    parts = dict(optimizer=optimizer, scheduler=scheduler, scaler=precision.scaler, ema=ema)
    history = run.restore(model, **parts) if run else []
    execution = history[-1]["execution"] + 1 if history else 1  # the how-many-th execution of the run
    if history:
        log(run.heading())
        for row in history:
            log(format_epoch(row, epochs, eval_name))
    for epoch in range(len(history) + 1, epochs + 1):
        start = time.perf_counter()
        train_loader.sampler.set_epoch(epoch)
        train = train_one_epoch(model, train_loader, optimizer, scheduler, device, precision, progress, epoch,
                                criterion=criterion, ema=ema)
        test = evaluate(model, test_loader, device, precision)
        averaged = evaluate(ema, test_loader, device, precision) if ema is not None else {}
        history.append({"epoch": epoch, "lr": train["lrs"][-1], "lrs": train["lrs"],
                        "train_loss": train["loss"], "train_acc": train["acc"],
                        "test_loss": test["loss"], "test_acc": test["acc"],
                        **{f"ema_{key}": value for key, value in averaged.items()},
                        "seconds": time.perf_counter() - start, "execution": execution})
        log(format_epoch(history[-1], epochs, eval_name))
        if run:
            run.save_epoch(history, epochs, model, **parts)
    return history


def format_epoch(row: dict, epochs: int, eval_name: str = "test") -> str:
    ema = f"EMA acc {100 * row['ema_acc']:5.2f}%  " if "ema_acc" in row else ""
    return (f"epoch {row['epoch']:>2}/{epochs}  lr {row['lr']:.2e}  "
            f"train loss {row['train_loss']:.3f} acc {100 * row['train_acc']:5.2f}%  "
            f"{eval_name} loss {row['test_loss']:.3f} acc {100 * row['test_acc']:5.2f}%  "
            f"{ema}{row['seconds']:.0f} s")
