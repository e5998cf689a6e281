"""Device and precision choice, with the hardware queries faked: no GPU is needed to test the GPU rules."""
import pytest
import torch

import utils.device as device_module
from utils.device import cpu_has_bf16, describe, pick_device, pick_precision
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
    line = describe(Settings(), CUDA, chosen, workers=2)
    assert "(Tesla T4)" in line and "fp16 channels_last with loss scaling" in line


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
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: True)
    for device in (CPU, CUDA):
        chosen = pick_precision(device, amp=False, channels_last=False)
        assert chosen.dtype is None and chosen.name == "fp32" and not chosen.scaler.is_enabled()


def test_a_cpu_with_native_bf16_gets_bf16(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: True)
    chosen = pick_precision(CPU)
    assert chosen.dtype == torch.bfloat16 and not chosen.scaler.is_enabled()


def test_a_cpu_without_native_bf16_stays_fp32(monkeypatch):
    """Emulated bf16 is ~10x slower than fp32 on such a CPU (an AVX2-only EPYC): never pick it there."""
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: False)
    chosen = pick_precision(CPU)
    assert chosen.dtype is None
    assert "(this CPU has no native bf16)" in describe(Settings(), CPU, chosen, workers=1)


def test_cpu_has_bf16_follows_onednn(monkeypatch):
    for answer in (True, False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda answer=answer: answer)
        assert cpu_has_bf16() is answer


def test_cuda_lets_cudnn_pick_its_fastest_algorithms(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert pick_device("cpu") == CPU and torch.backends.cudnn.benchmark is False
    assert pick_device("cuda").type == "cuda" and torch.backends.cudnn.benchmark is True


def test_auto_picks_cuda_when_it_is_there(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == CPU
