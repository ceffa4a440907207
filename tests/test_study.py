"""Studies as a user runs them: parallel workers, a worker killed mid-run, a rerun that finishes."""

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from reglab.cli import main
from reglab.experiments.table import arm_rows
from reglab.errors import UserError
from reglab.recipe import load_study_recipe
from reglab.experiments.storage import POINT as PAIR
from reglab.experiments.storage import make_storage
from reglab.experiments.study import Study

from .conftest import torch_threads, trials_reader, worker_mid_run

STUDY = """
name: kill-test
data: {source: digits}
model: {name: resnet18, width: 0.125}
optim: {name: adam, lr: 0.003}
train: {epochs: 3, batch_size: 64}
study:
  arms: {none: {}, dropout: {model.dropout.rate: 0.5}}
  baseline: none
  seeds: [0, 1]
  heartbeat_seconds: 1
"""


def study_command(recipe, out, workers=2):
    return [sys.executable, "-m", "reglab.cli", "study", str(recipe), "--out", str(out), "--workers", str(workers)]


def completed(directory):
    study = Study(directory)
    trials = [t for t in study.optuna.get_trials() if PAIR in t.user_attrs and t.state == TrialState.COMPLETE]
    return {tuple(t.user_attrs[PAIR]): t for t in trials}


PAIRS = {(arm, seed) for arm in ("none", "dropout") for seed in (0, 1)}


@pytest.fixture(scope="module")
def study_recipe(tmp_path_factory):
    recipe = tmp_path_factory.mktemp("recipe") / "study.yaml"
    recipe.write_text(STUDY.replace("epochs: 3", "epochs: 4"))  # a victim taken after epoch 1 has 3 to go
    return recipe


@pytest.fixture(scope="module")
def uninterrupted(study_recipe, tmp_path_factory):
    """The study never stopped: this process as its one worker, at the thread count each of two
    local workers gets (a run's numbers depend on its threads)."""
    out = tmp_path_factory.mktemp("clean") / "study"
    study = Study.prepare(study_recipe, [], out, None)
    study.quiet = True
    with torch_threads(max(1, (os.cpu_count() or 1) // 2)):
        study.work()
    return completed(out)


def worker_after_first_epoch(directory, epochs: int = 4) -> tuple[int, int]:
    """The pid of a worker whose running trial has finished an epoch with another to spare, and its number."""
    return worker_mid_run(trials_reader(directory, Study), epochs)


def suspend_outside_locks(pid: int, database: Path) -> None:
    """SIGSTOPs ``pid`` at a moment it holds neither the trial-state file lock nor a lock on the
    SQLite file (a worker suspended inside one would stall every other worker until it wakes)."""
    for _ in range(200):
        os.kill(pid, signal.SIGSTOP)
        with open(f"{database}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                connection = sqlite3.connect(database, timeout=0.5, isolation_level=None)
                try:
                    connection.execute("BEGIN EXCLUSIVE")  # granted only while no other connection holds a lock
                    connection.execute("ROLLBACK")
                    return
                finally:
                    connection.close()
            except (BlockingIOError, sqlite3.OperationalError):
                os.kill(pid, signal.SIGCONT)
                time.sleep(0.05)
    raise AssertionError(f"worker {pid} never let go of the study's locks")


def assert_same_results(directory, expected):
    got = completed(directory)
    assert set(got) == set(expected) == PAIRS
    for pair, trial in expected.items():
        assert got[pair].value == trial.value
        assert got[pair].intermediate_values == trial.intermediate_values
    assert sorted(path.name for path in (directory / "runs").iterdir()) == sorted(f"{a}-seed{s}" for a, s in PAIRS)
    stale = [t for t in Study(directory).optuna.get_trials() if t.state == TrialState.FAIL]
    states = [(t.number, t.state.name, t.user_attrs.get(PAIR), t.user_attrs.get("worker_pid")) for t in Study(directory).optuna.get_trials()]
    assert len(stale) == 1, states  # the interrupted attempt, failed by its stale heartbeat and retried once


@pytest.mark.slow
def test_killed_worker_rerun_gives_the_uninterrupted_results(tmp_path, study_recipe, uninterrupted):
    killed = subprocess.Popen(study_command(study_recipe, tmp_path / "killed"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, _ = worker_after_first_epoch(tmp_path / "killed")
    os.kill(victim, signal.SIGKILL)
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == 2 and "rerun the same command" in err

    rerun = subprocess.run(study_command(study_recipe, tmp_path / "killed"), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "4/4 runs finished" in rerun.stdout
    assert_same_results(tmp_path / "killed", uninterrupted)
    resumed = [json.loads((run / "meta.json").read_text())["resumed_after"] for run in (tmp_path / "killed" / "runs").iterdir()]
    assert sorted(resumed, key=len)[-1] and sorted(resumed, key=len)[:-1] == [[]] * 3  # the victim's retry went on from its last epoch


@pytest.mark.slow
def test_a_paused_worker_whose_trial_was_taken_over_carries_on(tmp_path, study_recipe, uninterrupted):
    """A stopped worker (a suspended laptop, a network partition) wakes up after its trial was failed
    as stale and retried elsewhere: it drops its attempt and goes on; the study finishes in one go."""
    directory = tmp_path / "paused"
    study = subprocess.Popen(study_command(study_recipe, directory), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, number = worker_after_first_epoch(directory)
    suspend_outside_locks(victim, directory / "study.db")
    try:
        deadline = time.time() + 120
        while Study(directory).optuna.get_trials()[number].state == TrialState.RUNNING and time.time() < deadline:
            time.sleep(0.3)
    finally:
        os.kill(victim, signal.SIGCONT)
    out, err = study.communicate(timeout=300)
    assert study.returncode == 0, err
    assert "4/4 runs finished" in out
    assert f"[worker {victim}] trial {number}: this worker fell silent" in out, out + err
    assert_same_results(directory, uninterrupted)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("REGLAB_TEST_POSTGRES_URL"), reason="set REGLAB_TEST_POSTGRES_URL (CI starts a PostgreSQL server on loopback)")
def test_two_workers_on_postgresql_run_each_pair_once(tmp_path):
    url = os.environ["REGLAB_TEST_POSTGRES_URL"]
    recipe = tmp_path / "study.yaml"
    recipe.write_text(STUDY.replace("kill-test", f"pg-{os.getpid()}-{int(time.time())}").replace("epochs: 3", "epochs: 1"))
    done = subprocess.run(study_command(recipe, tmp_path / "pg") + ["--storage", url], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    trials = [t for t in Study(tmp_path / "pg").optuna.get_trials() if PAIR in t.user_attrs]
    pairs = [tuple(t.user_attrs[PAIR]) for t in trials]
    assert sorted(pairs) == sorted({(a, s) for a in ("none", "dropout") for s in (0, 1)})  # each once, none twice
    assert all(t.state == TrialState.COMPLETE for t in trials)


def test_study_recipe_errors_name_the_key(tmp_path):
    recipe = tmp_path / "s.yaml"
    recipe.write_text(STUDY.replace("model.dropout.rate: 0.5", "model.dropout.rat: 0.5"))
    with pytest.raises(UserError, match="study.arms.dropout: unknown key 'model.dropout.rat'; did you mean 'model.dropout.rate'"):
        load_study_recipe(recipe)
    recipe.write_text(STUDY.replace("dropout: {model.dropout.rate: 0.5}", "dropout: 0.5"))
    with pytest.raises(UserError, match="study.arms.dropout: Input should be a valid dictionary"):
        load_study_recipe(recipe)
    recipe.write_text(STUDY.replace("baseline: none", "baseline: nothing"))
    with pytest.raises(UserError, match="study.baseline 'nothing' is not one of the arms"):
        load_study_recipe(recipe)


def test_a_changed_recipe_does_not_reuse_a_study_directory(tmp_path, capsys):
    recipe = tmp_path / "s.yaml"
    recipe.write_text(STUDY)
    assert main(["study", str(recipe), "--out", str(tmp_path / "st"), "--workers", "0"]) == 0
    assert main(["study", str(recipe), "train.epochs=5", "--out", str(tmp_path / "st"), "--workers", "0"]) == 2
    assert "holds a different study" in capsys.readouterr().err
    study = Study(tmp_path / "st")
    assert study.count(TrialState.WAITING) == 4 and study.enqueue_missing() == 0  # enqueueing is idempotent


def test_arm_rows_pair_runs_by_seed(tmp_path):
    recipe = tmp_path / "s.yaml"
    recipe.write_text(STUDY.replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3, 4, 5]"))
    config = load_study_recipe(recipe)[0].study
    summary = {"train_loss": 1.0, "val_loss": 1.0, "gap_loss": 0.0, "best_epoch": 3}
    results = [{"arm": "none", "seed": s, "value": 0.5 + 0.01 * s, "status": "completed", **summary} for s in range(6)]
    results += [{"arm": "dropout", "seed": s, "value": 0.6 + 0.01 * s, "status": "completed", **summary} for s in range(6)]
    rows = {row["arm"]: row for row in arm_rows(results, config)}
    assert rows["dropout"]["difference"].mean == pytest.approx(0.1)
    assert rows["dropout"]["verdict"] == "better than baseline"
    assert rows["none"]["verdict"] == "baseline"


@pytest.mark.slow
def test_workers_popping_the_sqlite_queue_at_once_never_share_a_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    study = optuna.create_study(storage=make_storage(url, heartbeat_seconds=60), study_name="queue")
    for number in range(60):
        study.enqueue_trial({"x": number})
    popper = (
        "import sys, optuna\n"
        "from reglab.experiments.storage import make_storage\n"
        "study = optuna.load_study(study_name='queue', storage=make_storage(sys.argv[1], 60))\n"
        "print(' '.join(str(study.ask().number) for _ in range(15)))\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", popper, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]  # fmt: skip
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], [err for _, err in outputs]
    popped = [int(number) for out, _ in outputs for number in out.split()]
    assert sorted(popped) == list(range(60))  # each queued trial went to exactly one worker


def test_a_run_without_a_value_is_recorded_once_with_its_reason(tmp_path, capsys):
    recipe = tmp_path / "study.yaml"
    recipe.write_text("data: {source: digits}\nmodel: {name: linear}\ntrain: {epochs: 2}\n"
                      "study: {arms: {none: {}}, baseline: none, seeds: [0], at_epoch: 5}\n")  # fmt: skip
    assert main(["study", str(recipe), "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    first = capsys.readouterr().out
    assert "0/1 runs finished" not in first
    study = Study(tmp_path / "s")
    (trial,) = study.optuna.get_trials()
    assert trial.user_attrs["reason"] == "study.at_epoch 5 is beyond the 2 epochs it ran"
    assert main(["study", str(recipe), "--workers", "1", "--out", str(tmp_path / "s")]) == 0  # nothing is trained again
    assert len(Study(tmp_path / "s").optuna.get_trials()) == 1
    assert [row["status"] for row in Study(tmp_path / "s").results()] == ["completed"]


def test_an_adaptive_study_adds_seeds_only_to_undecided_arms(tmp_path, capsys):
    recipe = tmp_path / "adaptive.yaml"
    recipe.write_text("data: {source: digits}\nmodel: {name: linear}\noptim: {name: adam, lr: 0.01}\ntrain: {epochs: 2}\n"
                      "study:\n  arms: {plain: {}, broken: {optim.lr: 1.0e-7}, same: {train.batch_size: 128}}\n  baseline: plain\n"
                      "  metric: val_accuracy\n  seeds: {min: 3, max: 9, step: 3}\n")  # fmt: skip
    assert main(["study", str(recipe), "--workers", "0", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    study = Study(tmp_path / "s")
    assert study.config.looks == [3, 6, 9] and study.config.alpha == 0.05
    while True:  # what `reglab study --workers N` does between rounds
        study.work()
        if not study.enqueue_missing():
            break
    runs = {}
    for row in study.results():
        runs.setdefault(row["arm"], []).append(row["seed"])
    assert sorted(runs["broken"]) == list(range(9))  # lr 1e-7 learns nothing: decided only once p < 0.05/2/3 can be reached (2 arms, 3 looks)
    assert sorted(runs["plain"]) == list(range(max(len(r) for r in runs.values())))  # the baseline pairs every seed
    rows = {row["arm"]: row for row in arm_rows(study.results(), study.config)}
    assert rows["broken"]["verdict"] == "worse than baseline"


STACKED = """
name: stacked
data: {source: digits}
model: {name: linear}
optim: {name: sgd, lr: 0.05, momentum: 0.9}
augment: {translate: {fraction: 0.1}, mix: {mixup_alpha: 0.2}}
train: {epochs: 10, batch_size: 64}
study:
  arms: {none: {}, l2: {optim.l2: 0.01}}
  baseline: none
  seeds: [0, 1]
  heartbeat_seconds: 1
  parallel_seeds: 2
"""


@pytest.mark.slow
def test_a_study_in_stacks_of_two_seeds_survives_a_kill_and_matches_the_study_run_seed_by_seed(tmp_path):
    recipe, single = tmp_path / "stacked.yaml", tmp_path / "single.yaml"
    recipe.write_text(STACKED)
    single.write_text(STACKED.replace("parallel_seeds: 2", "parallel_seeds: 1"))
    reference = Study.prepare(single, [], tmp_path / "single", None)  # this process as the one-by-one worker
    reference.quiet = True
    reference.work()
    expected = completed(tmp_path / "single")

    killed = subprocess.Popen(study_command(recipe, tmp_path / "stacked", 1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, number = worker_after_first_epoch(tmp_path / "stacked", epochs=10)
    partner = [t for t in Study(tmp_path / "stacked").optuna.get_trials(states=(TrialState.RUNNING,)) if t.number != number]
    assert [t.user_attrs["worker_pid"] for t in partner] == [victim]  # the other seed of the arm trains in the same stack
    os.kill(victim, signal.SIGKILL)
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == 2 and "rerun the same command" in err
    rerun = subprocess.run(study_command(recipe, tmp_path / "stacked", 1), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr

    got = completed(tmp_path / "stacked")
    assert set(got) == set(expected) == {(arm, seed) for arm in ("none", "l2") for seed in (0, 1)}
    for pair, trial in expected.items():
        assert got[pair].value == pytest.approx(trial.value, abs=1e-6)
        assert got[pair].intermediate_values == pytest.approx(trial.intermediate_values, abs=1e-6)
    assert sorted(path.name for path in (tmp_path / "stacked" / "runs").iterdir()) == sorted(f"{a}-seed{s}" for a, s in expected)
    failed = [t for t in Study(tmp_path / "stacked").optuna.get_trials() if t.state == TrialState.FAIL]
    assert len(failed) == 2  # the killed stack's two trials, stale and retried


def test_parallel_seeds_auto_stacks_nothing_on_a_cpu_and_a_number_is_taken_as_given(tmp_path):
    """The default, ``auto``: one seed at a time on the CPU (stacks are slower per seed there) and
    for a run that must train alone; the GPU's stack size on CUDA."""
    import torch

    from reglab.device import SEEDS_PER_CUDA_STACK, seeds_per_stack

    recipe = tmp_path / "auto.yaml"
    recipe.write_text(STACKED.replace("  parallel_seeds: 2\n", ""))
    study = Study.prepare(recipe, [], tmp_path / "auto", None)
    assert study.config.parallel_seeds == "auto" and study.stack_size() == 1
    (tmp_path / "two.yaml").write_text(STACKED)
    assert Study.prepare(tmp_path / "two.yaml", [], tmp_path / "two", None).stack_size() == 2
    cuda = torch.device("cuda")
    assert seeds_per_stack("auto", cuda, alone=False) == SEEDS_PER_CUDA_STACK > 1
    assert seeds_per_stack("auto", cuda, alone=True) == 1 and seeds_per_stack(3, torch.device("cpu"), alone=False) == 3


AT_EPOCH = """
name: at-epoch
data: {source: digits}
model: {name: linear}
optim: {name: sgd, lr: 0.05}
train: {epochs: 4, batch_size: 64}
study:
  arms: {none: {}, l2: {optim.l2: 0.01}}
  baseline: none
  seeds: [0, 1]
  metric: val_accuracy
  at_epoch: 2
  also: [val_ece, val_macro_f1]
"""


def val_ids(run) -> set:
    return {line.split(",")[0] for line in (run / "val_predictions.csv").read_text().splitlines()[1:]}


def test_the_table_is_taken_at_the_compared_epoch_and_each_seed_draws_its_own_split(tmp_path, capsys):
    recipe = tmp_path / "at.yaml"
    recipe.write_text(AT_EPOCH)
    assert main(["study", str(recipe), "--workers", "0", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    study = Study(tmp_path / "s")
    study.work()
    rows = {row["arm"]: row for row in arm_rows(study.results(), study.config)}
    for result in study.results():
        history = [json.loads(line) for line in (study.run_path((result["arm"], result["seed"])) / "history.jsonl").read_text().splitlines()]
        assert len(history) == 4
        for key in ("train_loss", "val_loss", "gap_loss"):
            assert result[key] == history[1][key]  # epoch 2, not the last
        assert result["value"] == history[1]["val_accuracy"]
    ece = [r["at_compared_epoch"]["val_ece"] for r in study.results() if r["arm"] == "l2"]
    assert rows["l2"]["also"]["val_ece"]["value"].mean == pytest.approx(np.mean(ece))
    assert rows["l2"]["also"]["val_ece"]["difference"] is not None and "p_value" not in rows["l2"]["also"]["val_ece"]
    runs = tmp_path / "s" / "runs"
    assert val_ids(runs / "none-seed0") == val_ids(runs / "l2-seed0") and val_ids(runs / "none-seed1") == val_ids(runs / "l2-seed1")
    assert val_ids(runs / "none-seed0") != val_ids(runs / "none-seed1")  # the split is part of what a seed varies
    assert main(["study", "show", str(tmp_path / "s"), "--json", str(tmp_path / "show.json")]) == 0
    shown = capsys.readouterr().out
    assert "val loss@2" in shown and "val_ece (exploratory)" in shown and "p (Holm)" in shown
    assert "and the train/validation split" in shown and "at most 0.05" in shown
    arms = {row["arm"]: row for row in json.loads((tmp_path / "show.json").read_text())["arms"]}
    assert set(arms["l2"]) >= {"p_value", "p_adjusted", "outcome", "seeds_needed", "also"}

    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(AT_EPOCH.replace("data: {source: digits}", "data: {source: digits, split_seed: 3}").replace("also: [val_ece, val_macro_f1]", ""))
    assert main(["study", str(pinned), "--workers", "0", "--out", str(tmp_path / "p"), "--quiet"]) == 0
    Study(tmp_path / "p").work()
    runs = tmp_path / "p" / "runs"
    assert val_ids(runs / "none-seed0") == val_ids(runs / "none-seed1")  # the recipe pins it


def test_a_study_with_a_margin_says_which_arms_are_equivalent_and_may_change_it_on_rerun(tmp_path, capsys):
    recipe = tmp_path / "eq.yaml"
    recipe.write_text(AT_EPOCH.replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3, 4, 5, 6]").replace("l2: {optim.l2: 0.01}", "same: {train.eval_batch_size: 64}")
                      .replace("also: [val_ece, val_macro_f1]", "margin: 0.05"))  # fmt: skip
    assert main(["study", str(recipe), "--workers", "0", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    Study(tmp_path / "s").work()
    assert main(["study", "show", str(tmp_path / "s")]) == 0
    assert "equivalent to baseline within ±0.05" in capsys.readouterr().out  # the same training, evaluated in other batches
    assert main(["study", str(recipe), "study.margin=0.0001", "--workers", "0", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert Study(tmp_path / "s").count(TrialState.WAITING) == 0  # a margin reads the same runs: nothing to retrain
    assert main(["study", "show", str(tmp_path / "s")]) == 0
    assert "equivalent to baseline within ±0.0001" in capsys.readouterr().out


def test_a_worker_elsewhere_joins_from_the_storage_alone(tmp_path, capsys):
    """The plan lives in the storage: a worker with no shared folder gets the study's recipe from
    it, trains into a directory of its own, and the storage lists what it holds."""
    recipe = tmp_path / "here" / "plan.yaml"
    recipe.parent.mkdir()
    recipe.write_text(AT_EPOCH.replace("name: at-epoch", "name: remote").replace("also: [val_ece, val_macro_f1]", ""))
    url = f"sqlite:///{tmp_path / 'here' / 'shared.db'}"
    assert main(["study", str(recipe), "--storage", url, "--workers", "0", "--out", str(tmp_path / "here" / "s"), "--quiet"]) == 0
    elsewhere = tmp_path / "elsewhere"
    assert main(["worker", "--storage", url, "--study", "remote", "--out", str(elsewhere), "--quiet"]) == 0
    assert sorted(p.name for p in (elsewhere / "runs").iterdir()) == ["l2-seed0", "l2-seed1", "none-seed0", "none-seed1"]
    assert not (tmp_path / "here" / "s" / "runs").exists()  # nothing trained where the study was created
    capsys.readouterr()
    assert main(["study", "show", str(elsewhere)]) == 0 and "4/4 runs finished" in capsys.readouterr().out
    assert main(["study", "list", "--storage", url]) == 0
    assert "remote  study  4/4 trials finished" in capsys.readouterr().out
    assert main(["worker", "--storage", url, "--study", "nobody", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--study nobody: " in err and err.count("\n") == 1
