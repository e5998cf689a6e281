"""pytest session set-up, shared by the unit tests and the notebook smoke run (`--nbval-lax`).

Smoke settings go into the environment before the notebook's kernel starts (it inherits them):
a short schedule on a small subset. Without CIFAR10_ROOT the notebook runs on a small generated
image folder, since a test never downloads anything.
"""
import os
import shutil
import tempfile

from tests.fakedata import make_image_folder

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
    for name, value in SMOKE.items():
        os.environ.setdefault(name, value)
    scratch = tempfile.mkdtemp(prefix="s10-test-")
    _made.append(scratch)
    os.environ.setdefault("S10_CHECKPOINT", os.path.join(scratch, "smoke.pt"))
    os.environ.setdefault("S10_RECORD", os.path.join(scratch, "runs", "smoke.json"))  # never over runs/
    os.environ.setdefault("S10_FIGURES", os.path.join(scratch, "images"))  # never over images/
    if not REAL_ROOT:
        os.environ["CIFAR10_ROOT"] = str(make_image_folder(os.path.join(scratch, "cifar10"), 110, 50))
        os.environ["S10_CACHE_DIR"] = os.path.join(scratch, "cache")


def pytest_unconfigure(config):
    for path in _made:
        shutil.rmtree(path, ignore_errors=True)
