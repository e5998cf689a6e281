import warnings

import numpy as np
import pytest
import torch

from tests.fakedata import loaders, tiny_net
from utils.config import S10Error, Settings
from utils.device import Precision
from utils.lr import lr_range_test, one_cycle, pick_lrs, planned_lrs

EPOCHS, STEPS, PEAK = 24, 10, 5


def test_schedule_peaks_at_the_end_of_epoch_5_and_ends_at_lrmin():
    lrs = np.array(planned_lrs(lr_max=1e-2, lr_min=1e-3, epochs=EPOCHS, steps_per_epoch=STEPS,
                               peak_epoch=PEAK))
    peak = PEAK * STEPS - 1  # 0-based index of the last step of epoch 5
    assert len(lrs) == EPOCHS * STEPS
    assert int(np.argmax(lrs)) == peak and lrs[peak] == pytest.approx(1e-2, rel=1e-9)
    assert lrs[0] == pytest.approx(1e-3, rel=1e-9) and lrs[-1] == pytest.approx(1e-3, rel=1e-9)
    up, down = np.diff(lrs[:peak + 1]), np.diff(lrs[peak:])
    assert np.allclose(up, up[0]) and up[0] > 0  # linear rise
    assert np.allclose(down, down[0]) and down[0] < 0  # linear fall, no annihilation below LRMIN
    assert lrs.min() >= 1e-3 * (1 - 1e-9)


def test_scheduler_allows_exactly_epochs_times_steps():
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sched = one_cycle(opt, 1e-2, 1e-3, EPOCHS, STEPS, PEAK)
    for _ in range(EPOCHS * STEPS):
        opt.step()
        sched.step()
    with pytest.raises(ValueError):
        sched.step()


def test_the_schedule_leaves_adams_beta1_alone():
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sched = one_cycle(opt, 1e-2, 1e-3, EPOCHS, STEPS, PEAK)
    betas = set()
    for _ in range(EPOCHS * STEPS):
        betas.add(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    assert betas == {0.9}


def curve(n=100, start=1e-5, end=1.0, best_lr=2.4e-2, noise_dip=True):
    """A range-test-like curve: flat, steep dip in the first steps (noise), minimum at best_lr, divergence."""
    lrs = np.geomspace(start, end, n)
    x = np.log10(lrs / best_lr)
    losses = 2.3 - 1.0 * np.exp(-x ** 2) + np.where(x > 0, 3 * x ** 2, 0)
    if noise_dip:
        losses[2] -= 0.05
    return lrs, losses


def test_rule_uses_the_loss_minimum_not_early_noise():
    lrs, losses = curve()
    found = pick_lrs(lrs, losses)
    best = lrs[np.argmin(losses)]
    assert found.lr_at_min == best
    assert found.lr_max == pytest.approx(best)  # the stated rule
    assert found.lr_min == pytest.approx(best / 100)
    custom = pick_lrs(lrs, losses, min_divisor=10)
    assert custom.lr_max == pytest.approx(best) and custom.lr_min == pytest.approx(best / 10)


def test_rule_ignores_nan_and_refuses_a_curve_that_never_falls():
    lrs, losses = curve()
    best = int(np.argmin(losses))
    losses[best - 20] = np.nan  # a NaN before the minimum (np.argmin would pick the first NaN) ...
    losses[-5:] = np.nan        # ... and after it, where a diverging sweep ends
    assert pick_lrs(lrs, losses).lr_at_min == lrs[best]
    with pytest.raises(S10Error, match="never fell"):
        pick_lrs(lrs, np.linspace(2.3, 5, len(lrs)))


def test_a_sweep_with_fewer_than_5_finite_losses_stops_with_one_line():
    lrs, losses = curve()
    losses[4:] = np.nan
    with pytest.raises(S10Error, match=r"^the LR range test has fewer than 5 finite losses; "
                                       r"raise S10_LR_FINDER_ITERS"):
        pick_lrs(lrs, losses)


def test_a_loss_still_falling_at_the_last_lr_warns_to_sweep_further():
    lrs = np.geomspace(1e-5, 1e-2, 50)
    losses = np.linspace(2.3, 1.0, 50)
    with pytest.warns(UserWarning, match=r"still falling at the last LR tested \(1.00e-02\); "
                                         r"raise S10_LR_FINDER_END"):
        found = pick_lrs(lrs, losses)
    assert found.lr_at_min == lrs[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pick_lrs(*curve())  # a curve with a minimum inside the sweep does not warn


def test_range_test_finds_lrs_in_range_and_restores_the_weights():
    torch.manual_seed(0)
    model = tiny_net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = optimizer.state_dict()["param_groups"][0]["lr"]
    train, _ = loaders(n_train=40, batch_size=40)
    cfg = Settings(lr_finder_start=1e-5, lr_finder_end=10, lr_finder_iters=60, progress=False)
    found = lr_range_test(model, optimizer, train, torch.device("cpu"), cfg, Precision())
    assert np.isfinite([found.lr_min, found.lr_max]).all()
    assert 1e-5 <= found.lr_min < found.lr_max <= 10
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=k)
    assert optimizer.state_dict()["param_groups"][0]["lr"] == opt_before
    assert optimizer.state_dict()["state"] == {}
    one_cycle(optimizer, found.lr_max, found.lr_min, 2, 3, peak_epoch=1)  # the finder left no scheduler


@pytest.mark.parametrize("progress", [True, False])
def test_the_range_test_shows_its_progress_bar_only_when_asked(capsys, progress):
    torch.manual_seed(0)
    model = tiny_net()
    train, _ = loaders(n_train=40, batch_size=40)
    cfg = Settings(lr_finder_start=1e-5, lr_finder_end=1.0, lr_finder_iters=30, progress=progress)
    lr_range_test(model, torch.optim.Adam(model.parameters()), train, torch.device("cpu"), cfg, Precision())
    assert ("/30 [" in capsys.readouterr().err) == progress
