"""Device and precision choice, with the hardware queries faked: no GPU is needed to test the GPU rules."""
import pytest
import torch

import utils.device as device_module
from utils.device import cpu_prefers_bf16, describe, pick_device, pick_precision
from utils.config import Settings

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


def fake_cuda(monkeypatch, capability, name="Fake GPU"):
    """Pretend a CUDA card of `capability` is there. GradScaler disables itself when CUDA is missing,
    so `is_available` is faked too."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    # what the old rule asked; True on a T4 because it counts emulation
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)


def test_a_t4_gets_fp16_with_loss_scaling(monkeypatch):
    fake_cuda(monkeypatch, (7, 5), "Tesla T4")
    chosen = pick_precision(CUDA)
    assert chosen.dtype == torch.float16
    assert chosen.scaler.is_enabled()
    assert chosen.name == "fp16 channels_last"
    assert "(Tesla T4)" in describe(Settings(), CUDA, workers=2)


@pytest.mark.parametrize("capability", [(7, 0), (7, 5)])
def test_cards_before_ampere_get_fp16(monkeypatch, capability):
    fake_cuda(monkeypatch, capability)
    assert pick_precision(CUDA).dtype == torch.float16


@pytest.mark.parametrize("capability", [(8, 0), (8, 6), (9, 0)])
def test_ampere_and_hopper_get_bf16_without_scaling(monkeypatch, capability):
    fake_cuda(monkeypatch, capability)
    chosen = pick_precision(CUDA)
    assert chosen.dtype == torch.bfloat16
    assert not chosen.scaler.is_enabled()


def test_amp_off_is_fp32_everywhere(monkeypatch):
    fake_cuda(monkeypatch, (9, 0))
    fake_cpu(monkeypatch, True, True, "GenuineIntel")
    for device in (CPU, CUDA):
        chosen = pick_precision(device, amp=False, channels_last=False)
        assert chosen.dtype is None and chosen.name == "fp32" and not chosen.scaler.is_enabled()


def fake_cpu(monkeypatch, native_bf16, amx, vendor):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(device_module, "cpuinfo", lambda: {"vendor_id": vendor})


# The machines measured (model-only training step, batch 512, channels_last, 2 cores): see cpu_prefers_bf16.
CPU_ROWS = [  # (what, native bf16, AMX, vendor, precision picked)
    ("AMD EPYC Zen 3, AVX2 only", False, False, "AuthenticAMD", "fp32 channels_last"),
    ("Intel, AVX2 only", False, False, "GenuineIntel", "fp32 channels_last"),
    ("AMD EPYC Zen 4, AVX-512 BF16", True, False, "AuthenticAMD", "bf16 channels_last"),
    ("Intel Xeon, AVX-512 BF16 without AMX", True, False, "GenuineIntel", "fp32 channels_last"),
    ("Intel Xeon with AMX", True, True, "GenuineIntel", "bf16 channels_last"),
]


@pytest.mark.parametrize("what, native, amx, vendor, picked", CPU_ROWS, ids=[row[0] for row in CPU_ROWS])
def test_a_cpu_gets_the_precision_that_is_faster_on_it(monkeypatch, what, native, amx, vendor, picked):
    fake_cpu(monkeypatch, native, amx, vendor)
    chosen = pick_precision(CPU)
    assert chosen.name == picked
    assert not chosen.scaler.is_enabled() and cpu_prefers_bf16() == picked.startswith("bf16")


@pytest.mark.parametrize("saved", ["fp32 channels_last", "bf16 channels_last", "fp32"])
def test_a_resumed_run_keeps_its_precision_whatever_this_cpu_picks(monkeypatch, saved):
    machines = ((True, True, "GenuineIntel"), (True, False, "GenuineIntel"), (False, False, ""))
    for native, amx, vendor in machines:
        fake_cpu(monkeypatch, native, amx, vendor)
        chosen = pick_precision(CPU, keep=saved)
        assert chosen.name == saved


def test_amp_off_forces_fp32_even_on_a_cpu_that_prefers_bf16_and_over_a_kept_precision(monkeypatch):
    fake_cpu(monkeypatch, True, True, "GenuineIntel")
    assert pick_precision(CPU, amp=True).name == "bf16 channels_last"
    chosen = pick_precision(CPU, amp=False, keep="bf16 channels_last")
    assert chosen.name == "fp32 channels_last"


def test_mps_trains_in_fp32_without_loss_scaling():
    """fp16 on MPS would need loss scaling (broken there in many torch versions) and autocast
    (torch >= 2.5)."""
    chosen = pick_precision(torch.device("mps"))
    assert chosen.dtype is None and not chosen.scaler.is_enabled()


def test_cuda_lets_cudnn_pick_its_fastest_algorithms(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert pick_device("cpu") == CPU and torch.backends.cudnn.benchmark is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("cuda").type == "cuda" and torch.backends.cudnn.benchmark is True


def test_asking_for_cuda_without_a_gpu_stops_with_one_line(monkeypatch):
    from utils.config import S10Error

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(S10Error, match="S10_DEVICE=cuda but torch sees no CUDA GPU here"):
        pick_device("cuda")


def test_auto_picks_cuda_when_it_is_there(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == CPU


def test_cpuinfo_reads_the_first_cpus_fields():
    from utils.device import cpuinfo

    fields = cpuinfo()
    assert not fields or (fields["processor"] == "0" and fields.get("vendor_id"))
