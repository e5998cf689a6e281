import pytest
import torch

from tests.fakedata import loaders, tiny_net
from utils.lr import one_cycle, planned_lrs
from utils.device import Precision
from utils.run import Run
from utils.training import evaluate, fit, make_optimizer, predict

CPU = torch.device("cpu")
FP32 = Precision()


def setup(epochs=4, seed=0, n_train=40, init_seed=None):
    torch.manual_seed(seed if init_seed is None else init_seed)
    model = tiny_net()
    torch.manual_seed(seed)
    train, test = loaders(n_train=n_train, n_test=10, batch_size=50, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = one_cycle(optimizer, 2e-2, 2e-3, epochs, len(train), peak_epoch=1)
    return model, train, test, optimizer, scheduler


def test_a_few_epochs_learn_far_above_chance():
    model, train, test, optimizer, scheduler = setup(epochs=4)
    history = fit(model, train, test, optimizer, scheduler, 4, CPU, FP32, progress=False, log=lambda s: None)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[-1]["test_acc"] >= 0.6  # chance is 0.1
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_decoupled_decay_shrinks_conv_and_linear_weights_by_lr_times_decay_and_spares_bn_and_biases():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    before = [torch.rand_like(p) + 0.5 for p in model.parameters()]  # none zero: L2 moves every one
    for decoupled in (True, False):
        with torch.no_grad():
            for p, b in zip(model.parameters(), before):
                p.copy_(b)
        optimizer = make_optimizer(model, 0.1, 0.25, CPU, decoupled)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)  # Adam's own step is then zero: what moves is the decay
        optimizer.step()
        for p, b in zip(model.parameters(), before):
            if decoupled:
                torch.testing.assert_close(p.detach(), b * (1 - 0.1 * 0.25) if p.ndim > 1 else b)
            else:  # L2 in the gradient: Adam normalises it to a step of about lr on every parameter
                torch.testing.assert_close((p.detach() - b).abs(), torch.full_like(b, 0.1), rtol=1e-3, atol=1e-3)


def test_evaluate_changes_no_weights_and_keeps_the_mode():
    model, _, test, _, _ = setup()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = evaluate(model, test, CPU, FP32)
    assert 0 <= metrics["acc"] <= 1 and metrics["loss"] > 0
    assert model.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)


def test_predict_mirror_gives_the_logits_of_the_images_flipped_left_right():
    from utils.data import Split
    from utils.loaders import CIFARDataset, make_loader
    from tests.fakedata import make_images

    model, _, _, _, _ = setup()
    images, labels = make_images(10, seed=3)
    plain, mirrored = (make_loader(CIFARDataset(Split(x, labels)), 5, False, 0)
                       for x in (images, images[:, :, ::-1]))
    logits, y = predict(model, mirrored, CPU, FP32)
    flipped, y2 = predict(model, plain, CPU, FP32, mirror=True)
    torch.testing.assert_close(flipped, logits)
    assert torch.equal(y, y2) and not torch.allclose(predict(model, plain, CPU, FP32)[0], logits)


def test_resume_continues_the_history_and_the_schedule(tmp_path):
    quiet = dict(progress=False, log=lambda s: None)
    straight = fit(*setup(), 4, CPU, FP32, **quiet)

    model, train, test, optimizer, scheduler = setup()
    first = fit(model, train, test, optimizer, scheduler, 2, CPU, FP32, run=Run(tmp_path, {}, FP32), **quiet)
    assert [row["epoch"] for row in first] == [1, 2]
    resumed = fit(*setup(init_seed=1), 4, CPU, FP32, run=Run(tmp_path, {}, FP32), **quiet)  # fresh objects
    assert [row["epoch"] for row in resumed] == [1, 2, 3, 4]
    assert resumed[:2] == first
    steps = len(train)
    plan = planned_lrs(2e-2, 2e-3, 4, steps, peak_epoch=1)
    for a, b in zip(resumed, straight):
        assert a["lr"] == pytest.approx(plan[a["epoch"] * steps - 1]) == pytest.approx(b["lr"])
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1e-6)


def test_a_finished_run_executed_again_trains_nothing(tmp_path):
    done = fit(*setup(epochs=2), 2, CPU, FP32, run=Run(tmp_path, {}, FP32), progress=False,
               log=lambda s: None)
    lines = []
    again = fit(*setup(epochs=2, init_seed=1), 2, CPU, FP32, run=Run(tmp_path, {}, FP32), progress=False,
                log=lines.append)
    assert again == done
    assert "epochs 1-2 trained earlier, from its checkpoint" in lines[0]
    assert len(lines) == 3 and [row["execution"] for row in again] == [1, 1]


def test_the_weight_average_is_scored_every_epoch_and_resumes_exactly(tmp_path):
    from utils.training import make_ema

    quiet = dict(progress=False, log=lambda s: None)
    model, *rest = setup()
    straight_ema = make_ema(model)
    straight = fit(model, *rest, 4, CPU, FP32, ema=straight_ema, **quiet)
    assert all(0 <= row["ema_acc"] <= 1 and row["ema_loss"] > 0 for row in straight)
    assert [row["ema_acc"] for row in straight] != [row["test_acc"] for row in straight]

    model, *rest = setup()
    fit(model, *rest, 2, CPU, FP32, run=Run(tmp_path, {}, FP32), ema=make_ema(model), **quiet)
    model, *rest = setup(init_seed=1)
    ema = make_ema(model)
    resumed = fit(model, *rest, 4, CPU, FP32, run=Run(tmp_path, {}, FP32), ema=ema, **quiet)
    for a, b in zip(resumed, straight):
        assert a["ema_acc"] == pytest.approx(b["ema_acc"], abs=1e-6)
    for (name, a), b in zip(ema.state_dict().items(), straight_ema.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
