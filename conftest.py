"""pytest session set-up, shared by the unit tests and the notebook smoke run (`--nbval-lax`).

Smoke settings go into the environment before the notebook's kernel starts (it inherits them):
a short schedule on a small subset, whatever S10_* variables the caller had exported. Without
CIFAR10_ROOT the notebook runs on a small generated image folder, since a test never downloads anything.
"""
import dataclasses
import os
import shutil
import tempfile

from tests.fakedata import make_image_folder
from utils.config import Settings, env_name

SMOKE = {
    "S10_EPOCHS": "2",
    "S10_PEAK_EPOCH": "1",
    "S10_TRAIN_SUBSET": "1024",
    "S10_TEST_SUBSET": "500",
    "S10_BATCH_SIZE": "128",
    "S10_LR_FINDER_ITERS": "20",
    "S10_LR_FINDER_START": "1e-4",
    "S10_PROGRESS": "0",
}
REAL_ROOT = os.environ.get("CIFAR10_ROOT")  # the real JPEG copy, if the caller pointed at it
_made = []


def pytest_configure(config):
    # A developer's exported S10_* settings (S10_WEIGHTS, S10_EPOCHS=24, ...) must not change what the
    # tests run: every setting but the data folder is cleared, then the smoke settings are set.
    for field in dataclasses.fields(Settings):
        if field.name != "data_root":
            os.environ.pop(env_name(field.name), None)
    os.environ.update(SMOKE)
    scratch = tempfile.mkdtemp(prefix="s10-test-")
    _made.append(scratch)
    os.environ["S10_RUNS_DIR"] = os.path.join(scratch, "experiments")
    if not REAL_ROOT:
        os.environ["CIFAR10_ROOT"] = str(make_image_folder(os.path.join(scratch, "cifar10"), 110, 50))
        os.environ["S10_CACHE_DIR"] = os.path.join(scratch, "cache")


def pytest_unconfigure(config):
    for path in _made:
        shutil.rmtree(path, ignore_errors=True)
