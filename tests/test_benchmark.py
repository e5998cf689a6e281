"""The throughput benchmark's quick mode, so that it cannot silently rot."""
import json

import pytest
import torch

from benchmarks.train_throughput import main


def test_quick_benchmark_measures_every_part(tmp_path, monkeypatch):
    monkeypatch.setenv("S10_DEVICE", "cpu")
    out = tmp_path / "bench.json"
    result = main(["--quick", "--rounds", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == result
    parts = {row["part"] for row in result["rows"]}
    assert parts == {"model-only train step", "data pipeline", "real train loop", "real evaluate"}
    assert len([r for r in result["rows"] if r["part"] == "model-only train step"]) == 4
    pipelines = {r["config"] for r in result["rows"] if r["part"] == "data pipeline"}
    assert pipelines >= {"workers=0, 1 thread", "workers=1", "workers=2"}
    assert all(row["images_per_s"] > 0 for row in result["rows"])
    info = result["info"]
    assert info["threads"] >= 1 and info["torch"] and info["device"].startswith("cpu")
    assert 0 < info["loop_fraction"] and info["predicted_24_epochs_s_real"] > 0


def test_on_every_cpu_the_benchmark_times_fp32_and_bf16_side_by_side(monkeypatch):
    import utils.device as device_module
    from benchmarks.train_throughput import precision_configs

    for prefers in (True, False):
        monkeypatch.setattr(device_module, "cpu_prefers_bf16", lambda answer=prefers: answer)
        names = [name for name, _ in precision_configs(torch.device("cpu"))]
        assert names == ["fp32 NCHW", "fp32 channels_last", "bf16 autocast + channels_last"]


@pytest.mark.parametrize("capability, mixed, scaled", [((7, 5), "fp16", True), ((8, 0), "bf16", False),
                                                       ((9, 0), "bf16", False)])
def test_on_a_gpu_the_benchmark_times_the_precision_training_would_use(monkeypatch, capability, mixed,
                                                                       scaled):
    """Not torch.cuda.is_bf16_supported(), which says True on a T4 (emulation): the old configurations
    had no row for the fp16 that pick_precision chooses there, and the benchmark stopped."""
    from benchmarks.train_throughput import config_name, precision_configs
    from tests.test_device import fake_cuda
    from utils.device import pick_precision

    fake_cuda(monkeypatch, capability)
    configs = dict(precision_configs(torch.device("cuda")))
    assert list(configs)[-1] == f"{mixed} autocast + channels_last"
    assert configs[list(configs)[-1]].scaler.is_enabled() is scaled
    assert config_name(pick_precision(torch.device("cuda"))) in configs


def test_the_gpu_check_on_a_machine_without_a_gpu_stops_with_one_line():
    """`make gpu-check` runs the benchmark with S10_DEVICE=cuda: here, with no GPU, it must say so at once."""
    import os
    import subprocess
    import sys

    makefile = open("Makefile").read()
    assert "S10_DEVICE=cuda $(BIN)/python -m benchmarks.train_throughput" in makefile
    command = [sys.executable, "-m", "benchmarks.train_throughput", "--quick", "--json", os.devnull]
    done = subprocess.run(command, env={**os.environ, "S10_DEVICE": "cuda"}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: S10_DEVICE=cuda but torch sees no CUDA GPU here; "
                                   "run on a GPU machine or unset S10_DEVICE")
