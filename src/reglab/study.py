"""Studies on Optuna: every (arm, seed) run is one trial of one Optuna study.

Each pair is enqueued once, idempotently, as a WAITING trial with fixed parameters; workers pop
waiting trials atomically (PostgreSQL locks the row; SQLite files are locked by ``SQLiteStorage``),
so no pair runs twice even with many workers on many machines (Optuna's ``GridSampler`` alone can
hand one grid point to two workers). With an RDB storage (SQLite by default, PostgreSQL for a
cluster) workers send heartbeats; a worker killed mid-run leaves a trial whose heartbeat goes
stale, which is failed and re-enqueued (``RetryHeartbeatStaleTrialCallback``) and run again by
whichever worker is next. Journal-file storage has no heartbeats: a killed worker's trial must be
failed by hand.

A worker that was only paused (a suspended laptop, a stopped process, a network partition) comes
back to find its trial failed and re-run elsewhere: each attempt trains in its own hidden directory
and moves into ``runs/<arm>-seed<seed>`` only once its results are recorded, so the paused attempt
discards its work without touching the retry's, and the worker goes on with the queue.

Study directory: ``study.yaml`` (resolved study recipe), ``study.json`` (name, storage URL),
``study.db`` (default storage, with ``study.db.lock`` beside it) and ``runs/<arm>-seed<seed>/``
(one run directory per pair; an attempt in progress trains in ``runs/.<arm>-seed<seed>.trial<N>/``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import optuna
import sqlalchemy
import yaml
from optuna.trial import TrialState

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from .errors import UserError
from .progress import Silent
from .recipe import StudyRecipe, load_study_recipe, read_yaml, validate
from .rundir import STATE, RunDir, write_atomic
from .train import train

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
PAIR = "pair"  # user attribute that marks a trial enqueued by reglab
STALE_AFTER = 3  # heartbeats a worker may miss before its trial is failed and retried
TAKEN_OVER = f"this worker fell silent for {STALE_AFTER} heartbeats; its run was handed to another worker and is discarded"


class SQLiteStorage(optuna.storages.RDBStorage):
    """RDB storage on a local SQLite file whose trial-state changes are serialized by a file lock
    beside it. Optuna pops a waiting trial by reading its state and writing RUNNING; its ``SELECT
    ... FOR UPDATE`` is a no-op on SQLite, and Python's sqlite3 begins a transaction only at the
    write, so two workers could both read WAITING and both run the trial."""

    def __init__(self, url: str, **kwargs):
        self.lock_path = url.removeprefix("sqlite:///") + ".lock"
        super().__init__(url, **kwargs)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values=None) -> bool:
        if fcntl is None:  # no advisory locks on this platform (Windows): Optuna's own check only
            return super().set_trial_state_values(trial_id, state, values)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or its process dies
            return super().set_trial_state_values(trial_id, state, values)


def make_storage(url: str, heartbeat_seconds: int):
    if url.startswith("journal:"):
        path = url.removeprefix("journal:").removeprefix("//")
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    sqlite = url.startswith("sqlite:///")
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else {}
    storage_class = SQLiteStorage if sqlite else optuna.storages.RDBStorage
    for _ in range(3):
        try:
            return storage_class(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_seconds,
                grace_period=STALE_AFTER * heartbeat_seconds,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
        except sqlalchemy.exc.IntegrityError as exc:  # another process created the schema at the same moment
            error = exc
            time.sleep(0.5)
        except Exception as exc:  # bad URL, server down, missing driver
            error = exc
            break
    raise UserError(f"--storage {url}: cannot open the study storage ({type(error).__name__}: {error})")


class Study:
    def __init__(self, directory: str | Path, storage_url: Optional[str] = None, name: Optional[str] = None):
        """Open a study directory; with ``name`` and ``storage_url``, one whose study.json is not written yet."""
        self.directory = Path(directory)
        if name is None:
            info_file = self.directory / "study.json"
            if not info_file.is_file():
                raise UserError(f"{self.directory}: not a reglab study directory (no study.json)")
            try:
                info = json.loads(info_file.read_text(encoding="utf-8"))
                name, storage_url = str(info["name"]), storage_url or str(info["storage"])
            except (ValueError, KeyError, TypeError) as exc:
                raise UserError(f"{info_file}: damaged ({type(exc).__name__}: {exc}); it should hold the study's name and storage URL") from None
        self.name, self.storage_url = name, storage_url
        self.recipe, self.arms = load_study_recipe(self.directory / "study.yaml")
        self.config = self.recipe.study
        self.current_trial: Optional[int] = None  # number of the trial this worker last took
        self.optuna = optuna.create_study(
            study_name=self.name,
            storage=make_storage(self.storage_url, self.config.heartbeat_seconds),
            direction="maximize" if self.config.maximize else "minimize",
            load_if_exists=True,
        )

    @classmethod
    def prepare(cls, recipe_path, overrides, out: Optional[Path], storage_url: Optional[str]) -> "Study":
        """Create the study directory (or reopen it when it holds the same resolved recipe).

        study.json is written last, atomically: once it exists, the storage and its queue do too, and
        a creation cut short is simply redone by the next run of the same command.
        """
        recipe, _ = load_study_recipe(recipe_path, overrides)
        name = recipe.name or Path(recipe_path).stem
        directory = Path(out or Path("studies") / name)
        resolved = recipe.to_dict()
        if (directory / "study.json").exists():
            stored = validate(read_yaml(directory / "study.yaml"), str(directory / "study.yaml"), StudyRecipe)
            if stored.to_dict() != resolved:  # compared through today's schema: new keys take their defaults
                raise UserError(f"{directory}: holds a different study (recipe or overrides changed); choose another --out")
            study = cls(directory, storage_url)
            study.enqueue_missing()
            return study
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / "study.yaml", lambda tmp: tmp.write_text(yaml.safe_dump(resolved, sort_keys=False)))
        url = storage_url or f"sqlite:///{(directory / 'study.db').resolve()}"
        study = cls(directory, url, name=name)
        study.enqueue_missing()
        partial = directory / "study.json.partial"
        partial.write_text(json.dumps({"name": name, "storage": url}, indent=2) + "\n")
        partial.replace(directory / "study.json")
        return study

    # --- queue -------------------------------------------------------------------------------
    def pairs(self) -> list[tuple[str, int]]:
        return [(arm, seed) for arm in self.config.arms for seed in self.config.seeds]

    def enqueue_missing(self) -> int:
        """Enqueue every (arm, seed) that has no waiting, running or recorded trial (a run that
        trained to the end is recorded even when its value is NaN: diverged, or ``at_epoch``
        beyond the epochs it ran)."""
        optuna.storages.fail_stale_trials(self.optuna)
        covered = set()
        for trial in self.optuna.get_trials(deepcopy=False):
            if PAIR not in trial.user_attrs:
                continue
            done = trial.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
            if done or "summary" in trial.user_attrs:
                covered.add(tuple(trial.user_attrs[PAIR]))
        missing = [pair for pair in self.pairs() if pair not in covered]
        for arm, seed in missing:
            self.optuna.enqueue_trial({"arm": arm, "seed": seed}, user_attrs={PAIR: [arm, seed]})
        return len(missing)

    def count(self, *states: TrialState) -> int:
        return sum(1 for t in self.optuna.get_trials(deepcopy=False, states=states) if PAIR in t.user_attrs)

    # --- work --------------------------------------------------------------------------------
    def run_path(self, arm: str, seed: int) -> Path:
        return self.directory / "runs" / f"{arm}-seed{seed}"

    def attempt_path(self, arm: str, seed: int, trial_number: int) -> Path:
        return self.directory / "runs" / f".{arm}-seed{seed}.trial{trial_number}"

    def objective(self, trial: optuna.Trial) -> float:
        if PAIR not in trial.user_attrs:  # the queue ran dry between a check and the pop
            raise optuna.TrialPruned("not a queued (arm, seed) trial")
        self.current_trial = trial.number
        trial.set_user_attr("worker_pid", os.getpid())
        arm = trial.suggest_categorical("arm", list(self.config.arms))
        seed = trial.suggest_categorical("seed", self.config.seeds)
        recipe = self.arms[arm].model_copy(update={"train": self.arms[arm].train.model_copy(update={"seed": seed})})
        attempt = self.attempt_path(arm, seed, trial.number)
        started = time.perf_counter()
        try:
            resume = self.adopt_dead_attempt(arm, seed, attempt)
            result = train(recipe, attempt, TrialReporter(trial, self.config.metric), resume=resume)
            value = run_value(result.history, self.config)
            if math.isnan(value):
                trial.set_user_attr("reason", nan_reason(result.history, self.config, result.status))
            trial.set_user_attr("status", result.status)
            trial.set_user_attr("summary", run_summary(result.history, result.metrics))
        except Exception:  # once taken over, recording fails and the attempt directory may be gone
            if self.current_trial_state() == TrialState.RUNNING:
                raise
            shutil.rmtree(attempt, ignore_errors=True)
            raise optuna.TrialPruned("taken over by another worker") from None
        final = self.run_path(arm, seed)
        shutil.rmtree(final, ignore_errors=True)  # left by an attempt taken over just after it finished
        attempt.rename(final)
        self.remove_dead_attempts(arm, seed)
        why = f"; {trial.user_attrs['reason']}" if "reason" in trial.user_attrs else ""
        print(f"[worker {os.getpid()}] {arm} seed {seed}: {self.config.metric} {value:.4f} "
              f"({result.status}{why}, {time.perf_counter() - started:.0f}s)", flush=True)  # fmt: skip
        return value  # NaN for a diverged run: Optuna records the trial as failed

    def adopt_dead_attempt(self, arm: str, seed: int, attempt: Path) -> bool:
        """Copy the furthest-trained earlier attempt of this pair that no worker runs (a killed
        worker's) into ``attempt``, so the retry resumes it; False when there is none to resume."""
        dead = [self.attempt_path(arm, seed, t.number) for t in self.optuna.get_trials(deepcopy=False)
                if t.user_attrs.get(PAIR) == [arm, seed] and t.state != TrialState.RUNNING]  # fmt: skip
        resumable = [path for path in dead if (path / STATE).is_file()]
        if not resumable:
            return False
        furthest = max(resumable, key=lambda path: len(RunDir(path).history()))
        shutil.copytree(furthest, attempt)  # copied, not moved: a paused worker may still own it
        return True

    def remove_dead_attempts(self, arm: str, seed: int) -> None:
        """Delete the directories of this pair's earlier attempts that no worker is running (killed or failed ones)."""
        for trial in self.optuna.get_trials(deepcopy=False):
            if trial.user_attrs.get(PAIR) == [arm, seed] and trial.state != TrialState.RUNNING:
                shutil.rmtree(self.attempt_path(arm, seed, trial.number), ignore_errors=True)

    def current_trial_state(self) -> Optional[TrialState]:
        """The stored state of the trial this worker last took (None before it took one)."""
        if self.current_trial is None:
            return None
        return self.optuna.get_trials(deepcopy=False)[self.current_trial].state

    def work(self) -> None:
        """Run waiting trials until none is waiting or running elsewhere."""
        while True:
            optuna.storages.fail_stale_trials(self.optuna)
            if self.count(TrialState.WAITING):
                self.current_trial = None
                try:
                    self.optuna.optimize(self.objective, n_trials=1, catch=(Exception,))
                except Exception:  # Optuna cannot record a trial that another worker has failed meanwhile
                    if self.current_trial_state() != TrialState.FAIL:
                        raise
                    print(f"[worker {os.getpid()}] trial {self.current_trial}: {TAKEN_OVER}", flush=True)
            elif self.count(TrialState.RUNNING):
                time.sleep(1.0)  # someone else's trial: it finishes, or goes stale and comes back queued
            else:
                return

    def run_workers(self, workers: int) -> None:
        """Start ``workers`` local worker processes, each with its share of the CPU threads."""
        threads = max(1, (os.cpu_count() or 1) // workers)
        command = [sys.executable, "-m", "reglab.cli", "worker", str(self.directory), "--storage", self.storage_url,
                   "--threads", str(threads)]  # fmt: skip
        processes = [subprocess.Popen(command) for _ in range(workers)]
        try:
            codes = [process.wait() for process in processes]
        except KeyboardInterrupt:
            for process in processes:
                process.terminate()
            raise
        if any(codes):
            raise UserError(f"{self.directory}: a worker exited with {max(codes)}; rerun the same command to finish")

    # --- results -----------------------------------------------------------------------------
    def results(self) -> list[dict]:
        """One row per (arm, seed): the compared value, the run's summary and status."""
        rows = {}
        for trial in self.optuna.get_trials(deepcopy=False):
            if PAIR not in trial.user_attrs or "summary" not in trial.user_attrs:
                continue
            arm, seed = trial.user_attrs[PAIR]
            value = trial.value if trial.state == TrialState.COMPLETE else float("nan")
            rows[(arm, seed)] = {"arm": arm, "seed": seed, "value": value, "status": trial.user_attrs["status"],
                                 **trial.user_attrs["summary"]}  # fmt: skip
        return [rows[pair] for pair in self.pairs() if pair in rows]


class TrialReporter(Silent):
    """Stores each epoch's compared metric as the trial's intermediate value."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric

    def resumed(self, history: list[dict]) -> None:
        for row in history:
            self.epoch_end(row)

    def epoch_end(self, row: dict, note: str = "") -> None:
        if self.metric in row:
            self.trial.report(float(row[self.metric]), step=row["epoch"])


def run_value(history: list[dict], config) -> float:
    """The study's metric for one run: at ``at_epoch``, its best epoch, or its last."""
    values = [row[config.metric] for row in history]
    if not values:
        return float("nan")
    if config.at_epoch is not None:
        return values[config.at_epoch - 1] if config.at_epoch <= len(values) else float("nan")
    if config.reduce == "last":
        return values[-1]
    return max(values) if config.maximize else min(values)


def nan_reason(history: list[dict], config, status: str) -> str:
    """Why a recorded run has no value for the study's metric."""
    if status == "diverged":
        return "diverged (loss not finite)"
    if config.at_epoch is not None and config.at_epoch > len(history):
        return f"study.at_epoch {config.at_epoch} is beyond the {len(history)} epochs it ran"
    return f"{config.metric} is NaN"


def run_summary(history: list[dict], final: dict) -> dict:
    last = history[-1] if history else {}
    return {
        "train_loss": last.get("train_loss", float("nan")),
        "val_loss": last.get("val_loss", float("nan")),
        "gap_loss": last.get("gap_loss", float("nan")),
        "best_epoch": final.get("best_epoch", 0),
        "epochs_run": len(history),
    }
