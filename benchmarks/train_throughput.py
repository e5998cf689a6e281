"""Throughput of each part of the training pipeline, side by side in one process.

    python -m benchmarks.train_throughput [--quick] [--json results.json]

Measures images/s of: the model-only training step on a batch already in memory (fp32 NCHW,
fp32 channels_last, mixed precision + channels_last), the data pipeline alone (albumentations +
DataLoader, on one core and at several worker counts), the real `train_one_epoch` loop beside the
model-only step, and the real `evaluate`; then predicts 24 epochs. Prints a table, writes JSON,
and names the device, threads and versions. --quick shrinks every size so that a test can run it.
"""
import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from models import CustomResNet
from utils.config import S10Error, Settings
from utils.data import Split
from utils.device import Precision, cpuinfo, pick_device, pick_precision
from utils.loaders import CIFARDataset, make_loader, resolve_workers
from utils.training import evaluate, make_optimizer, train_one_epoch, train_step
from utils.transforms import train_transforms


def timed(fn, repeats, sync):
    """Seconds per call of fn(), after one untimed call."""
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def model_step(model, precision, device, batch):
    """A closure doing one training step (the loop's own `train_step`) on a fixed in-memory batch."""
    x = torch.randn(batch, 3, 32, 32, device=device).to(memory_format=precision.memory_format)
    y = torch.randint(0, 10, (batch,), device=device)
    optimizer = make_optimizer(model, 1e-4, 0.0, device)
    return lambda: train_step(model, x, y, optimizer, device, precision)


def config_name(precision) -> str:
    """e.g. "fp32 NCHW", "fp32 channels_last", "bf16 autocast + channels_last"."""
    layout = "channels_last" if precision.channels_last else "NCHW"
    return f"fp32 {layout}" if precision.dtype is None else f"{precision.name.split()[0]} autocast + {layout}"


def precision_configs(device) -> list:
    """(name, Precision) of the model-only step: fp32 NCHW and channels_last, and the mixed precision
    `pick_precision` would use on this device with channels_last (bf16 on every CPU, whether or not
    this one picks it; on CUDA bf16 or fp16 by the card; none on MPS)."""
    mixed = Precision(torch.bfloat16, True) if device.type == "cpu" else pick_precision(device)
    configs = [Precision(None, False), Precision(None, True)] + ([mixed] if mixed.dtype is not None else [])
    return [(config_name(p), p) for p in configs]


def pipeline_rate(loader, device, precision) -> float:
    """Images/s of `loader` up to normalised batches on `device`, in its second epoch (so that the
    start of persistent workers is not counted)."""
    for epoch in (1, 2):
        loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device, memory_format=precision.memory_format), y.to(device)
    return len(loader.dataset) / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--json", default="benchmark.json", help="where to write the results")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of model-only step and real loop")
    args = parser.parse_args(argv)

    cfg = Settings.from_env()
    device = pick_device(cfg.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    default = pick_precision(device, cfg.amp, cfg.channels_last)
    batch = 16 if args.quick else cfg.batch_size
    steps = 1 if args.quick else 20 if device.type == "cuda" else 3
    cpu, native_bf16 = cpuinfo(), torch.ops.mkldnn._is_mkldnn_bf16_supported()
    features = "AMX" if torch.cpu._is_amx_tile_supported() else \
        "AVX-512 BF16" if native_bf16 else "no native bf16"
    rows, info = [], {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else
        f"cpu: {cpu.get('model name') or platform.machine()}",
        "cpu_model": f"{cpu.get('vendor_id', '?')} family {cpu.get('cpu family', '?')} "
                     f"model {cpu.get('model', '?')}, {features}",
        "threads": torch.get_num_threads(), "cores": os.cpu_count(), "torch": torch.__version__,
        "native_bf16_cpu": native_bf16, "batch": batch, "steps": steps, "picked_precision": default.name}

    def add(part, config, images_per_s, **extra):
        rows.append({"part": part, "config": config, "images_per_s": round(images_per_s, 1), **extra})
        print(f"{part:<22} {config:<38} {images_per_s:10.1f} img/s", flush=True)

    print(" | ".join(f"{k} {v}" for k, v in info.items()))
    for name, precision in precision_configs(device):  # 1. the model-only step, precisions side by side
        emulated = device.type == "cpu" and precision.dtype is not None and not native_bf16
        b = min(batch, 32) if emulated else batch  # emulated bf16 is ~11x slower: a smaller batch, same rate
        model = CustomResNet().to(device, memory_format=precision.memory_format)
        seconds = timed(model_step(model, precision, device, b), steps, sync)
        add("model-only train step", name + (" (emulated bf16)" if emulated else ""), b / seconds, batch=b)

    # 2. the data pipeline alone: on one core (0 workers, one thread), then at several worker counts
    n, rng = batch * steps, np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n))
    train_set = CIFARDataset(split, train_transforms(), seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        add("data pipeline", "workers=0, 1 thread",
            pipeline_rate(make_loader(train_set, batch, True, 0, device.type), device, default))
    finally:
        torch.set_num_threads(threads)
    for workers in sorted({1, 2, resolve_workers(Settings(), device.type)}):
        loader = make_loader(train_set, batch, True, workers, device.type)
        add("data pipeline", f"workers={workers}", pipeline_rate(loader, device, default))

    # 3. the real training loop (workers as in the notebook), interleaved with the model-only step on
    #    the same model, `rounds` times, so that both see the same machine state; medians
    workers = resolve_workers(cfg, device.type)
    train = make_loader(train_set, batch, True, workers, device.type)
    model = CustomResNet().to(device, memory_format=default.memory_format)
    optimizer = make_optimizer(model, 1e-4, 0.0, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)  # the LR does not matter here
    step = model_step(model, default, device, batch)
    train_one_epoch(model, train, optimizer, scheduler, device, default, progress=False)  # warm-up epoch
    step_times, loop_times = [], []
    for _ in range(args.rounds):
        step_times.append(timed(step, steps, sync))
        start = time.perf_counter()
        train_one_epoch(model, train, optimizer, scheduler, device, default, progress=False)
        sync()
        loop_times.append(time.perf_counter() - start)
    ceiling, loop = batch / float(np.median(step_times)), n / float(np.median(loop_times))
    add("model-only train step", f"{config_name(default)}, interleaved with the loop", ceiling)
    add("real train loop", f"{config_name(default)}, workers={workers}", loop,
        fraction_of_ceiling=round(loop / ceiling, 3))

    # 4. the real evaluate(), timed on its second pass
    test = make_loader(CIFARDataset(split), batch, False, workers, device.type)
    evaluate(model, test, device, default)
    start = time.perf_counter()
    evaluate(model, test, device, default)
    real_eval = n / (time.perf_counter() - start)
    add("real evaluate", f"{config_name(default)}, workers={workers}", real_eval)

    epoch = 50_000 / loop + 10_000 / real_eval
    info.update(loop_fraction=round(loop / ceiling, 3), predicted_24_epochs_s_real=round(24 * epoch))
    print(f"real loop at {loop / ceiling:.1%} of the model-only ceiling; 24 epochs + evaluation: "
          f"{24 * epoch / 60:.0f} min predicted from the real loop; the notebook picks {default.name} here")
    with open(args.json, "w") as f:
        json.dump({"info": info, "rows": rows}, f, indent=1)
    return {"info": info, "rows": rows}


if __name__ == "__main__":
    try:
        main()
    except S10Error as exc:
        raise SystemExit(f"error: {exc}") from None
