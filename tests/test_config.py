import pytest

from utils.config import S10Error, Settings


def test_defaults_follow_the_spec():
    cfg = Settings()
    assert (cfg.epochs, cfg.peak_epoch, cfg.batch_size) == (24, 5, 512)


def test_environment_overrides_each_field_with_its_type():
    env = {"S10_EPOCHS": "3", "S10_PEAK_EPOCH": "1", "S10_TRAIN_SUBSET": "100", "S10_AMP": "0",
           "S10_LR_FINDER_ITERS": "7", "CIFAR10_ROOT": "/data/cifar"}
    cfg = Settings.from_env(env)
    assert (cfg.epochs, cfg.peak_epoch, cfg.train_subset, cfg.amp) == (3, 1.0, 100, False)
    assert (cfg.lr_finder_iters, cfg.data_root) == (7, "/data/cifar")


@pytest.mark.parametrize("env, named", [
    ({"S10_EPOCHS": "abc"}, "S10_EPOCHS"),
    ({"S10_EPOCHS": "2.5"}, "S10_EPOCHS"),
    ({"S10_TRAIN_SUBSET": "-5"}, "S10_TRAIN_SUBSET"),
    ({"S10_TEST_SUBSET": "-1"}, "S10_TEST_SUBSET"),
    ({"S10_BATCH_SIZE": "0"}, "S10_BATCH_SIZE"),
    ({"S10_EPOCHS": "0"}, "S10_EPOCHS"),
    ({"S10_EPOCHS": "4"}, "S10_PEAK_EPOCH"),  # peak 5 is past the end of a 4-epoch run
    ({"S10_LR_FINDER_ITERS": "ten"}, "S10_LR_FINDER_ITERS"),
    ({"S10_CUTOUT_P": "1.5"}, "S10_CUTOUT_P"),
    ({"S10_WEIGHT_DECAY": "nan"}, "S10_WEIGHT_DECAY"),
    ({"S10_AMP": "maybe"}, "S10_AMP"),
    ({"S10_DEVICE": "tpu"}, "S10_DEVICE"),
])
def test_bad_values_stop_with_one_line_naming_the_variable(env, named):
    with pytest.raises(S10Error) as err:
        Settings.from_env(env)
    message = str(err.value)
    assert named in message and "\n" not in message


@pytest.mark.parametrize("typo, meant", [("S10_WEIGHTDECAY", "S10_WEIGHT_DECAY"),
                                         ("S10_CUTOUT_SIZ", "S10_CUTOUT_SIZE"),
                                         ("S10_EPOCH", "S10_EPOCHS")])
def test_an_unknown_s10_name_stops_naming_the_nearest_setting(typo, meant):
    with pytest.raises(S10Error, match=rf"^{typo} is no setting; did you mean {meant}\?$"):
        Settings.from_env({typo: "1"})
    with pytest.raises(S10Error, match="S10_LR is no setting"):
        Settings.from_env({"S10_LR": "0.1"})


def test_the_result_settings_are_those_above_the_seed():
    result = Settings(cutout_size=16, workers=3).result()
    assert list(result)[-1] == "seed" and result["cutout_size"] == 16
    assert not {"workers", "runs_dir", "data_root", "device", "progress"} & set(result)
