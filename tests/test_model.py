import pytest
import torch

from models import CustomResNet

PARTS = {"prep": (64, 32, 32), "layer1": (128, 16, 16), "res1": (128, 16, 16), "layer2": (256, 8, 8),
         "layer3": (512, 4, 4), "res3": (512, 4, 4), "pool": (512, 1, 1), "fc": (10,)}


def test_parameter_count_matches_the_spec():
    model = CustomResNet()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 6_573_130
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 8 and all(c.bias is None for c in convs)
    assert model.fc.bias is not None


def test_shape_after_each_named_part():
    model = CustomResNet().eval()
    shapes = {}
    for name in PARTS:
        getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert shapes == PARTS


@pytest.mark.parametrize("block, before, after", [("res1", "layer1", "layer2"), ("res3", "layer3", "pool")])
def test_residual_adds_the_block_output_to_its_input(block, before, after):
    model = CustomResNet().eval()
    seen = {}
    getattr(model, before).register_forward_hook(lambda m, i, o: seen.__setitem__("x", o))
    getattr(model, block).register_forward_hook(lambda m, i, o: seen.__setitem__("r", o))
    getattr(model, after).register_forward_hook(lambda m, i, o: seen.__setitem__("into_next", i[0]))
    model(torch.randn(2, 3, 32, 32))
    assert seen["r"].abs().sum() > 0
    torch.testing.assert_close(seen["into_next"], seen["x"] + seen["r"])


def test_forward_returns_logits_and_predict_proba_softmax():
    model = CustomResNet().eval()
    x = torch.randn(4, 3, 32, 32)
    logits = model(x)
    probs = model.predict_proba(x)
    assert not torch.allclose(logits.sum(1), torch.ones(4))  # logits, not probabilities
    torch.testing.assert_close(probs.sum(1), torch.ones(4))
    torch.testing.assert_close(probs, torch.softmax(logits, 1))


def test_model_follows_the_input_device_and_layout():
    model = CustomResNet().to(memory_format=torch.channels_last).eval()
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    assert model(x).shape == (2, 10)
