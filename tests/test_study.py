"""The recipe study's table and its noise rule, on made-up records."""
import dataclasses
import json

import numpy as np
import pytest

from utils.config import Settings
from tests.study import difference_noise, read_study, study_table


def write(folder, name, final, epochs_done=24, **changes):
    """A record as the first study's code wrote it: its settings then included two since removed."""
    settings = dataclasses.asdict(Settings(weight_decay=1e-4, decoupled_weight_decay=False))  # its recipe
    names = list(settings)
    result, rest = names[:names.index("seed")], names[names.index("seed"):]
    settings = {**{k: settings[k] for k in result}, "label_smoothing": 0.0, "lr_max_divisor": 1.0,
                **{k: settings[k] for k in rest}}
    settings.update(validation=5000, **changes)
    rows = [{"epoch": e, "test_acc": final if e == epochs_done else 0.5,
             "train_acc": 0.95 if e == epochs_done else 0.6} for e in range(1, epochs_done + 1)]
    record = {"settings": settings, "epochs": 24, "history": rows,
              "lr_test": {"lr_max": 8.5e-3, "lr_min": 8.5e-5}, "evaluated_on": "validation"}
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_the_noise_of_a_difference_grows_for_fewer_images_and_for_two_runs():
    seeds = [0.9019, 0.9042, 0.9053]
    s = np.std(seeds, ddof=1)
    assert difference_noise(seeds, 10_000, 10_000) == pytest.approx(np.sqrt(2) * s)
    assert difference_noise(seeds, 10_000, 5_000) == pytest.approx(2 * s)


def test_the_study_table_names_each_change_and_judges_it_against_twice_the_noise(tmp_path):
    write(tmp_path, "baseline", 0.9000)
    write(tmp_path, "ls0.2", 0.9100, label_smoothing=0.2)
    write(tmp_path, "wd5e-4", 0.9030, weight_decay=5e-4)
    write(tmp_path, "lr2x", 0.8900, lr_max_divisor=0.5)
    write(tmp_path, "later", 0.7, epochs_done=3, label_smoothing=0.1)
    records = read_study(tmp_path)
    assert [r["name"] for r in records][0] == "baseline" and records[0]["changes"] == []
    table = study_table(records, noise=0.004).splitlines()
    by_name = {line.split()[0]: line for line in table[1:-1]}
    assert "+1.00  gain      95.0%" in by_name["ls0.2"]
    assert "S10_LABEL_SMOOTHING 0.0 -> 0.2" in by_name["ls0.2"]
    assert "+0.30  noise" in by_name["wd5e-4"] and "S10_WEIGHT_DECAY 0.0001 -> 0.0005" in by_name["wd5e-4"]
    assert "-1.00  loss" in by_name["lr2x"]
    assert "3/24 ep" in by_name["later"] and "%" not in by_name["later"]  # neither accuracy while it trains
    assert table[-1] == "noise of a difference: 0.40 points (1 sd); a change counts beyond 0.80"


def test_the_paired_table_judges_each_groups_two_seed_mean_against_the_baselines(tmp_path):
    from tests.study import paired_table

    for group, final in (("baseline", 0.910), ("anchor", 0.920), ("onset", 0.913), ("adamw", 0.900)):
        for seed in (1, 2):
            rows = [{"epoch": e, "test_acc": final + 0.001 * seed, "ema_acc": final + 0.007}
                    for e in range(1, 25)]
            (tmp_path / f"{group}-seed{seed}.json").write_text(json.dumps({"history": rows}))
    (tmp_path / "adamw-seed2.json").write_text(json.dumps({
        "history": [{"epoch": 1, "test_acc": 0.3}], "device_name": "Intel(R) Xeon(R) Processor",
        "precision": "bf16 channels_last", "lr_test": {"lr_max": 1.7e-2, "lr_min": 1.7e-4}}))
    table = paired_table(tmp_path).splitlines()
    assert table[-1].split() == ["adamw-seed2", "Intel", "Xeon,", "bf16", "1.70e-02", "/", "1.70e-04", "1/24"]
    assert [line.split()[0] for line in table[-8:-1]] == [f"{g}-seed{s}" for s in (1, 2) for g in
                                                          ("baseline", "anchor", "onset", "adamw")][:7]
    lines = {line.split()[0]: line for line in table if line}
    assert lines["baseline"].split()[1:4] == ["91.10%", "91.20%", "91.15%"]
    assert lines["baseline"].endswith("+0.55 gain")  # the EMA of the baseline's own runs
    assert lines["anchor"].split()[4:6] == ["+1.00", "gain"]
    assert lines["onset"].split()[4:6] == ["+0.30", "level"]
    assert lines["adamw"].split()[1:3] == ["90.10%", "1/24"]  # unfinished: no mean, no verdict
    assert "loss" not in lines["adamw"] and "gain" not in lines["adamw"]

    (tmp_path / "adamw-seed1.json").write_text((tmp_path / "adamw-seed2.json").read_text())
    (tmp_path / "adamw-seed2.json").write_text(json.dumps({"history": [
        {"epoch": e, "test_acc": 0.902, "ema_acc": 0.907} for e in range(1, 25)]}))
    adamw = next(line for line in paired_table(tmp_path).splitlines() if line.startswith("adamw "))
    assert adamw.split() == ["adamw", "1/24", "ep", "90.20%", "-", "-", "90.70%", "-"]  # each EMA under its seed
