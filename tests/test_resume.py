"""A killed or interrupted ``reglab train`` resumes to the numbers of a run never stopped."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from .conftest import run_cli

pytestmark = pytest.mark.slow

RECIPE = """
data: {source: digits}
model: {name: instrunet, width: 0.25, dropout: {rate: 0.3, where: head}}
optim: {name: adamw, lr: 0.003, weight_decay: 0.0001}
schedule: {name: plateau, patience: 1}
augment: {hflip: 0.5, mix: {mixup_alpha: 0.4, p: 0.5}}
train: {epochs: 5, batch_size: 64, seed: 1, ema_decay: 0.9, early_stopping: {patience: 4}}
"""

# Runs ``reglab train`` in this process and SIGKILLs it at a chosen moment, by wrapping the
# function that is running at that moment; the kill itself is real.
KILLER = """
import os, signal, sys
import torch
from reglab import cli
from reglab.training import learner
from reglab.augment import EpochPlanner

moment, recipe, out = sys.argv[1:4]
calls = {"n": 0}

def die_on(count):
    calls["n"] += 1
    if calls["n"] == count:
        os.kill(os.getpid(), signal.SIGKILL)

if moment == "mid_epoch":  # the 30th optimizer step: inside epoch 2 (23 steps an epoch)
    step = learner.Learner.step
    learner.Learner.step = lambda self, *a: (die_on(30), step(self, *a))[1]
elif moment == "between_epochs":  # epochs 1 and 2 recorded, epoch 3 not begun
    plan = EpochPlanner.epoch
    EpochPlanner.epoch = lambda self, *a: (die_on(3), plan(self, *a))[1]
else:  # half of epoch 2's training state written to its temporary file
    save = torch.save
    def half_save(obj, path, *a, **k):
        save(obj, path, *a, **k)
        if str(path).endswith("training_state.pt.tmp") and calls["n"] == 1:
            os.truncate(path, os.path.getsize(path) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        if str(path).endswith("training_state.pt.tmp"):
            calls["n"] += 1
    torch.save = half_save
sys.exit(cli.main(["train", recipe, "--out", out, "--quiet"]))
"""


def reglab(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "reglab.cli", *map(str, args)], capture_output=True, text=True, **kwargs)


def without_time(run):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (run / "history.jsonl").read_text().splitlines()]


def same_weights(a, b):
    first, second = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE)
    done = reglab("train", recipe, "--out", root / "whole", "--quiet")
    assert done.returncode == 0, done.stderr
    return recipe, root / "whole"


def assert_resumes_to(run, uninterrupted_run, recipe, capsys):
    code, _, err = run_cli(capsys, "train", recipe, "--out", run, "--quiet")
    assert code == 2 and "--resume" in err  # says how, touches nothing
    resumed = reglab("train", recipe, "--out", run, "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert without_time(run) == without_time(uninterrupted_run)
    assert same_weights(run / "best.pt", uninterrupted_run / "best.pt")
    assert json.loads((run / "metrics.json").read_text())["accuracy"] == json.loads((uninterrupted_run / "metrics.json").read_text())["accuracy"]
    assert not (run / "training_state.pt").exists()


@pytest.mark.parametrize("moment, epochs_kept", [("mid_epoch", 1), ("between_epochs", 2), ("checkpoint_writing", 1)])
def test_sigkill_then_resume_gives_the_uninterrupted_run(uninterrupted, tmp_path, moment, epochs_kept, capsys):
    recipe, whole = uninterrupted
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILLER, moment, str(recipe), str(run)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(without_time(run)) >= epochs_kept and len(without_time(run)) < 5
    assert_resumes_to(run, whole, recipe, capsys)


def test_sigint_then_resume_gives_the_uninterrupted_run(uninterrupted, tmp_path, capsys):
    recipe, whole = uninterrupted
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "reglab.cli", "train", str(recipe), "--out", str(run), "--quiet"],
                               stderr=subprocess.PIPE, text=True,  # a shell's background job inherits SIGINT ignored
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    while not (run / "history.jsonl").is_file() or not (run / "history.jsonl").read_text():
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert "interrupted" in process.stderr.read()
    assert_resumes_to(run, whole, recipe, capsys)


def test_resume_refuses_a_different_recipe_and_a_finished_run(uninterrupted, tmp_path, capsys):
    recipe, whole = uninterrupted
    code, _, err = run_cli(capsys, "train", recipe, "--out", whole, "--resume", "--quiet")
    assert code == 2 and "finished" in err
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILLER, "between_epochs", str(recipe), str(run)], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    before = (run / "history.jsonl").read_text()
    code, _, err = run_cli(capsys, "train", recipe, "optim.lr=0.1", "--out", run, "--resume", "--quiet")
    assert code == 2 and "optim.lr differs" in err and len(err.splitlines()) == 1
    assert (run / "history.jsonl").read_text() == before
