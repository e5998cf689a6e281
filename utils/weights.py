"""The weights route (`S10_WEIGHTS`): a published run explored without training, with the settings
of the run that made the weights, read from the record beside them."""
import json
import os
from pathlib import Path

import torch

from utils.config import S10Error, Settings, first_line
from utils.lr import LRTest


def settings(env=None) -> Settings:
    """The settings of this execution: the environment's; with S10_WEIGHTS those of the run that made
    the weights (its record), which the environment may not contradict."""
    cfg = Settings.from_env(env)
    if not cfg.weights:
        return cfg
    record = read_record(Path(cfg.weights).with_suffix(".json"))
    trained = {name: record["settings"][name] for name in Settings().result()}
    env = os.environ if env is None else env
    for name, value in cfg.result().items():
        if f"S10_{name.upper()}" in env and value != trained[name]:
            raise S10Error(f"S10_{name.upper()}={value} but {cfg.weights} was trained with {trained[name]}; "
                           f"unset S10_{name.upper()} to explore these weights")
    return Settings.from_env(env, **trained)


def read_record(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise S10Error(f"{path} does not exist; set S10_WEIGHTS to a runs/s10-seed<n>.pt with its .json beside it") from None
    except ValueError as exc:
        raise S10Error(f"{path} is unreadable ({first_line(exc)}); restore it from git") from None


class TrainedRun:
    """A finished run read back from its weights and record (`S10_WEIGHTS`): it offers what a Run
    offers the notebook, and never sweeps or trains; its figures go to a folder of its own."""

    mark = ""

    def __init__(self, weights, runs_dir, precision):
        self.path, self.precision = Path(weights), precision
        self.info = read_record(self.path.with_suffix(".json"))
        self.history, self.resumes = self.info["history"], self.info.get("resumes", 0)
        self.figures = str(Path(runs_dir) / f"weights-{self.path.stem}" / "images")

    def range_test(self, sweep=None, log=print) -> LRTest:
        found = LRTest(**self.info["lr_test"])
        log(f"LR range test from the record of {self.path} (not swept): {found}")
        return found

    def restore(self, model, *rest, **ignored) -> list:
        try:
            model.load_state_dict(torch.load(self.path, map_location="cpu", weights_only=True))
        except Exception as exc:
            raise S10Error(f"cannot load {self.path} ({first_line(exc)}); use weights a run of this notebook saved") from None
        return list(self.history)

    def heading(self, epochs: int) -> str:
        return f"the {len(self.history)} epochs of the run that made {self.path}, from its record (nothing trained)"
