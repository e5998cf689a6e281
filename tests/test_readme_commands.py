"""The README's commands do what the README says: short experiments that train into run folders of
their own and leave every committed file as it was, Ctrl-C and the same command again, one-line
refusals before any kernel starts, and on the real JPEG copy the weights route's accuracy."""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REAL_ROOT

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
COMMANDS = [c.replace("\\\n", " ")
            for c in re.findall(r"^(S10_[^\n]*(?:\\\n[^\n]*)*make run)$", README, re.M)]


def plain_env(runs_dir, **extra) -> dict:
    """This environment without the test suite's smoke settings (a reader's shell), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("S10_")}
    cache = os.environ.get("S10_CACHE_DIR", str(ROOT / "data" / "cache"))
    env.update(S10_CACHE_DIR=cache, S10_RUNS_DIR=str(runs_dir), S10_PROGRESS="0")
    return {**env, **extra}


def make_run(command: str, env: dict, **popen):
    """`command` (S10_... make run) as a shell would run it, with `env` under it."""
    settings = dict(re.findall(r"(S10_\w+)=(\S+)", command))
    return subprocess.Popen(["make", "-s", "run"], cwd=ROOT, env={**env, **settings}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def committed() -> dict:
    tracked = subprocess.run(["git", "ls-files", "S10.ipynb", "runs", "images"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    return {name: (ROOT / name).read_bytes() for name in tracked}


def test_the_readme_short_experiments_train_in_folders_of_their_own_and_change_no_committed_file(tmp_path):
    assert len(COMMANDS) == 2 and "S10_CUTOUT_SIZE=16" in COMMANDS[1]
    before = committed()
    for command in COMMANDS:
        done = make_run(command, plain_env(tmp_path, S10_TEST_SUBSET="200"))
        out, _ = done.communicate(timeout=900)
        assert done.returncode == 0, out[-3000:]
        assert re.search(r"^test accuracy \d+\.\d\d%", out, re.M) and "(epoch 2/2)" in out
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and ["cutout_size=16" in name for name in folders] == [True, False]
    assert all((tmp_path / folder / "images" / "augmentation.png").is_file() for folder in folders)
    assert committed() == before


def processes_of(marker: str) -> list:
    """Processes whose environment holds `marker` (this test's run folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_ctrl_c_stops_every_process_within_a_minute_and_the_same_command_continues(tmp_path):
    command = COMMANDS[0].replace("S10_EPOCHS=2", "S10_EPOCHS=3")
    env = plain_env(tmp_path, S10_TEST_SUBSET="200")
    running = make_run(command, env, start_new_session=True)
    deadline = time.time() + 600
    while not list(tmp_path.glob("*/record.json")) or \
            not json.loads(next(tmp_path.glob("*/record.json")).read_text())["history"]:
        assert running.poll() is None and time.time() < deadline, running.stdout.read()
        time.sleep(1)
    os.killpg(running.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, _ = running.communicate(timeout=60)
    assert "stopped by Ctrl-C; the same command continues" in out
    time.sleep(2)
    assert processes_of(str(tmp_path)) == []
    again = make_run(command, env)
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out[-3000:]
    assert "(epoch 3/3)" in out and re.search(r"^resumed +once$", out, re.M)


def test_a_mistyped_setting_stops_before_any_kernel_in_one_line(tmp_path):
    start = time.time()
    done = subprocess.run(["make", "-s", "run"], cwd=ROOT, env=plain_env(tmp_path, S10_WEIGHTDECAY="5e-4"),
                          capture_output=True, text=True, timeout=300)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0 and len(lines) <= 8
    assert lines[0] == "error: S10_WEIGHTDECAY is no setting; did you mean S10_WEIGHT_DECAY?"
    assert time.time() - start < 60 and not any(tmp_path.iterdir())
    assert "did you mean S10_WEIGHT_DECAY?" in README


def test_make_weights_without_data_says_what_to_set(tmp_path):
    env = {k: v for k, v in plain_env(tmp_path).items() if k != "CIFAR10_ROOT"}
    env.update(S10_DOWNLOAD_DIR=str(tmp_path / "download"), https_proxy="http://127.0.0.1:9",
               http_proxy="http://127.0.0.1:9")  # no network, whatever this machine has
    done = subprocess.run(["make", "-s", "weights", "WEIGHTS=runs/s10-seed3.pt", f"RUN_DIR={tmp_path}",
                           f"DATA_ARCHIVE={tmp_path}/none.tar.gz"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0 and len(lines) <= 6, lines
    assert "CIFAR10_ROOT" in lines[0] and "DATA_ARCHIVE" in lines[0] and "download" in lines[0]


@pytest.mark.skipif(not REAL_ROOT, reason="needs the CIFAR-10 JPEG copy (CIFAR10_ROOT)")
def test_make_weights_prints_seed_3_and_the_accuracy_its_record_claims(tmp_path):
    record = json.loads((ROOT / "runs" / "s10-seed3.json").read_text())
    final = 100 * record["history"][-1]["test_acc"]
    done = subprocess.run(["make", "-s", "weights", "WEIGHTS=runs/s10-seed3.pt", f"CIFAR10_ROOT={REAL_ROOT}"],
                          cwd=ROOT, env=plain_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seed 3" in done.stdout.splitlines()[0]
    shown = float(re.search(r"^test accuracy (\d+\.\d\d)%", done.stdout, re.M).group(1))
    assert abs(shown - final) <= 0.05  # bf16 arithmetic differs a little between CPUs
    assert "make weights WEIGHTS=runs/s10-seed3.pt" in README and f"{final:.2f}%" in README
