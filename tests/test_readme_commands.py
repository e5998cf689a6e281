"""The README's commands do what the README says they do: the reproduction check of a committed
seed (a new record of its own, never over the committed one, and a refusal in one line), the short
experiment, and, on the real JPEG copy, the weights route with the accuracy it prints."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REAL_ROOT

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def plain_env(**extra) -> dict:
    """This environment without the test suite's smoke settings (a reader's shell), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("S10_")}
    env["S10_CACHE_DIR"] = os.environ.get("S10_CACHE_DIR", str(ROOT / "data" / "cache"))
    return {**env, **extra}


def check(env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "utils.runs", "check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_rerunning_a_committed_seed_writes_a_record_of_its_own_and_names_the_committed_one(tmp_path):
    committed = (ROOT / "runs" / "s10-seed2.json").read_bytes()
    done = check(plain_env(S10_SEED="2", S10_CHECKPOINT=str(tmp_path / "s10-seed2.pt"),
                           S10_FIGURES=str(tmp_path / "images")))
    assert done.returncode == 0, done.stderr
    assert "run record: runs/s10-seed2.json belongs to another run (" in done.stdout
    assert "ready: seed 2" in done.stdout and "s10-seed2-record.json" in done.stdout
    assert (ROOT / "runs" / "s10-seed2.json").read_bytes() == committed
    assert "belongs to another run" in README and "make full-run SEED=2" in README


def test_a_refusal_is_one_line_that_names_the_fix(tmp_path):
    (tmp_path / "s10-seed2.pt").write_bytes(b"not a checkpoint")
    done = check(plain_env(S10_SEED="2", S10_CHECKPOINT=str(tmp_path / "s10-seed2.pt"),
                           S10_FIGURES=str(tmp_path / "images")))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: checkpoint ") and "delete it to start over" in lines[0]
    assert "error: checkpoint" in README  # the README shows what a refusal looks like


def test_the_short_experiment_of_the_readme_runs_and_prints_its_result(tmp_path):
    command = re.search(r"```bash\n(S10_EPOCHS=2 [^`]*?)\n```", README)
    assert command, "the README shows a short experiment"
    line = command.group(1).replace("\\\n", " ")
    env = plain_env(S10_CHECKPOINT=str(tmp_path / "short.pt"), S10_FIGURES=str(tmp_path / "images"),
                    S10_TEST_SUBSET="200")
    settings = dict(re.findall(r"(S10_\w+)=(\S+)", line))
    for name in ("S10_TEST_SUBSET", "S10_CHECKPOINT", "S10_FIGURES"):
        settings.pop(name)  # fewer test images, and this test's own folder
    out = tmp_path / "short.ipynb"
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                    "S10.ipynb", "--log-level=ERROR", "--output", str(out)], cwd=ROOT, env={**env, **settings},
                   check=True, timeout=900)
    from utils.runs import result_lines

    lines = result_lines(out)
    assert re.match(r"test accuracy \d+\.\d\d%", lines[0]) and "(epoch 2/2)" in "\n".join(lines)


@pytest.mark.skipif(not REAL_ROOT, reason="needs the CIFAR-10 JPEG copy (CIFAR10_ROOT)")
def test_make_weights_prints_the_accuracy_the_readme_quotes(tmp_path):
    record = json.loads((ROOT / "runs" / "s10-seed3.json").read_text())
    final = 100 * record["history"][-1]["test_acc"]
    done = subprocess.run(["make", "-s", "weights", "WEIGHTS=runs/s10-seed3.pt", f"RUN_DIR={tmp_path}",
                           f"CIFAR10_ROOT={REAL_ROOT}"], cwd=ROOT, env=plain_env(), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = float(re.search(r"^test accuracy (\d+\.\d\d)%", done.stdout, re.M).group(1))
    assert abs(shown - final) <= 0.1  # bf16 arithmetic differs a little between CPUs
    assert "make weights WEIGHTS=runs/s10-seed3.pt" in README
    assert re.search(rf"test accuracy {final:.2f}%", README)
