"""The trial engine on Optuna storage, shared by everything that runs many trainings (studies
and sweeps): what to run is a subclass's business, how it runs is this module's.

Every point of a subclass's plan is enqueued once, idempotently, as a WAITING trial with fixed
parameters; workers pop waiting trials atomically (PostgreSQL locks the row; SQLite files are
locked by ``SQLiteStorage``), so no point runs twice even with many workers on many machines
(Optuna's ``GridSampler`` alone can hand one grid point to two workers). With an RDB storage
(SQLite by default, PostgreSQL for a cluster) workers send heartbeats; a worker killed mid-run
leaves a trial whose heartbeat goes stale, which is failed and re-enqueued
(``RetryHeartbeatStaleTrialCallback``) and run again by whichever worker is next, resuming the
dead attempt from its last completed epoch. Journal-file storage has no heartbeats: a killed
worker's trial must be failed by hand.

A worker that was only paused (a suspended laptop, a stopped process, a network partition) comes
back to find its trial failed and re-run elsewhere: each attempt trains in its own hidden directory
(``runs/.<name>.trial<N>/``) and moves into ``runs/<name>`` only once its results are recorded, so
the paused attempt discards its work without touching the retry's, and the worker goes on.

A subclass says what to run: ``load`` and ``read_plan`` (its recipe file), ``points``,
``point_params``, ``suggest``, ``run_name``, ``recipe_for``, ``measure`` and ``summary``; a plan
whose points are proposed rather than enqueued (a sampled sweep) adds ``sampler``, ``wants_more``
and ``admits``, and one that stops runs early a ``pruner``. ``monitored`` is the per-epoch metric
reported to Optuna.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Hashable, Optional

import optuna
import sqlalchemy
import torch
import yaml
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from ..errors import UserError, first_line
from ..progress import Silent
from ..recipe import Recipe
from ..rundir import STATE, RunDir, write_atomic
from ..training.stack import train_stack
from ..training.run import RunResult, train

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
POINT = "pair"  # user attribute holding a queued trial's point (its values, in order); named so since the first studies
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
        if not Path(path).parent.is_dir():
            raise UserError(f"--storage {url}: the folder {Path(path).parent} does not exist")
        try:
            return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
        except OSError as exc:
            raise UserError(f"--storage {url}: cannot open the journal ({exc.strerror})") from None
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


class Engine:
    """A queue of trainings on one Optuna study, kept in a directory: ``<kind>.yaml`` (the resolved
    recipe), ``<kind>.json`` (name and storage URL), ``<kind>.db`` (the default storage) and
    ``runs/`` (a run directory per point)."""

    kind: str  # "study" or "sweep": names the directory's files
    home: str  # where directories go by default: studies/<name>, sweeps/<name>
    monitored: str  # the per-epoch metric each trial reports (for dashboards and pruners)

    def __init__(self, directory: str | Path, storage_url: Optional[str] = None, name: Optional[str] = None):
        """Open a directory; with ``name`` and ``storage_url``, one whose ``<kind>.json`` is not written yet."""
        self.directory = Path(directory)
        if name is None:
            name, stored_url = self.read_info()
            storage_url = storage_url or stored_url
        self.name, self.storage_url = name, storage_url
        self.current_trial: Optional[int] = None  # number of the trial this worker last took
        self.quiet = False  # no line per finished run
        self.device: Optional[str] = None  # train.device for every run, when the worker was given one
        self.read_plan(self.directory / f"{self.kind}.yaml")
        self.monitored = self.config.metric
        self.optuna = optuna.create_study(
            study_name=name,
            storage=make_storage(storage_url, self.config.heartbeat_seconds),
            sampler=self.sampler(),
            pruner=self.pruner() or optuna.pruners.NopPruner(),
            direction="maximize" if self.config.maximize else "minimize",
            load_if_exists=True,
        )

    def read_info(self) -> tuple[str, str]:
        info_file = self.directory / f"{self.kind}.json"
        if not info_file.is_file():
            raise UserError(f"{self.directory}: not a reglab {self.kind} directory (no {self.kind}.json)")
        try:
            info = json.loads(info_file.read_text(encoding="utf-8"))
            return str(info["name"]), str(info["storage"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{info_file}: damaged ({type(exc).__name__}: {exc}); it should hold the {self.kind}'s name and storage URL") from None

    @classmethod
    def prepare(cls, recipe_path, overrides, out: Optional[Path], storage_url: Optional[str]) -> "Engine":
        """Create the directory (or reopen it when it holds the same resolved recipe) and enqueue
        what is missing.

        ``<kind>.json`` is written last, atomically: once it exists, the storage and its queue do
        too, and a creation cut short is simply redone by the next run of the same command.
        """
        recipe = cls.load(recipe_path, overrides)
        name = recipe.name or Path(recipe_path).stem
        directory = Path(out or Path(cls.home) / name)
        resolved = recipe.to_dict()
        info = directory / f"{cls.kind}.json"
        if info.exists():
            stored = cls.load(directory / f"{cls.kind}.yaml", saved=True).to_dict()  # through today's schema
            if cls.comparable(stored) != cls.comparable(resolved):
                raise UserError(f"{directory}: holds a different {cls.kind} (recipe or overrides changed); choose another --out")
            if stored != resolved:  # a new budget
                cls.write_recipe(directory, resolved)
            engine = cls(directory, storage_url)
            engine.enqueue_missing()
            return engine
        if storage_url and storage_url.startswith("journal:"):  # a path that cannot hold it: refused before anything is written
            make_storage(storage_url, 1)
        directory.mkdir(parents=True, exist_ok=True)
        cls.write_recipe(directory, resolved)
        url = storage_url or f"sqlite:///{(directory / f'{cls.kind}.db').resolve()}"
        engine = cls(directory, url, name=name)
        engine.enqueue_missing()
        write_atomic(info, lambda tmp: tmp.write_text(json.dumps({"name": name, "storage": url}, indent=2) + "\n"))
        return engine

    @classmethod
    def write_recipe(cls, directory: Path, resolved: dict) -> None:
        write_atomic(directory / f"{cls.kind}.yaml", lambda tmp: tmp.write_text(yaml.safe_dump(resolved, sort_keys=False)))

    @classmethod
    def load(cls, path, overrides=(), saved: bool = False):
        """The plan's recipe file, validated (``saved``: one reglab wrote)."""
        raise NotImplementedError

    @classmethod
    def comparable(cls, tree: dict) -> dict:
        """What of a resolved recipe must match for a rerun to continue the same directory."""
        return tree

    def read_plan(self, path: Path) -> None:
        """Set ``recipe`` and ``config`` (its plan section: metric, direction, heartbeats) from the stored recipe."""
        raise NotImplementedError

    def sampler(self) -> Optional[optuna.samplers.BaseSampler]:
        """Proposes new points (None: Optuna's default; a plan that only enqueues never asks it)."""
        return None

    def pruner(self) -> Optional[optuna.pruners.BasePruner]:
        """Stops runs early from their per-epoch values (None: never)."""
        return None

    def wants_more(self) -> bool:
        """Whether workers should ask the sampler for a new point when the queue is empty."""
        return False

    def admits(self, trial: optuna.Trial) -> bool:
        """Whether a trial the sampler created (not one enqueued) should run."""
        return False

    # --- what to run: the subclass's plan ----------------------------------------------------
    def points(self) -> list[tuple]:
        """Every point to run, as a tuple of parameter values."""
        raise NotImplementedError

    def suggest(self, trial: optuna.Trial) -> tuple:
        """The point of a popped trial, read through ``trial.suggest_*`` (its enqueued values)."""
        raise NotImplementedError

    def point_params(self, point: tuple) -> dict:
        """The parameters to enqueue for ``point`` (what ``suggest`` reads back)."""
        raise NotImplementedError

    def run_name(self, point: tuple) -> str:
        raise NotImplementedError

    def recipe_for(self, point: tuple) -> Recipe:
        raise NotImplementedError

    def measure(self, result: RunResult) -> tuple[float, Optional[str]]:
        """The trial's value, and why it is NaN when it is."""
        raise NotImplementedError

    def summary(self, result: RunResult) -> dict:
        """What the results table needs of a run besides its value."""
        return {}

    # --- queue -------------------------------------------------------------------------------
    def queued(self, states: Optional[tuple] = None) -> list[optuna.trial.FrozenTrial]:
        """The trials this engine enqueued (in the given states)."""
        return [t for t in self.optuna.get_trials(deepcopy=False, states=states) if POINT in t.user_attrs]

    def enqueue_missing(self) -> int:
        """Enqueue every point that has no waiting, running or recorded trial (a run that trained
        to the end is recorded even when its value is NaN: diverged, or ``at_epoch`` beyond the
        epochs it ran)."""
        optuna.storages.fail_stale_trials(self.optuna)
        covered = self.covered()
        missing = [point for point in self.points() if point not in covered]
        for point in missing:
            self.optuna.enqueue_trial(self.point_params(point), user_attrs={POINT: list(point)})
        return len(missing)

    def covered(self) -> dict[tuple, optuna.trial.FrozenTrial]:
        """Point → the trial that holds it: waiting, running, or recorded."""
        return {tuple(t.user_attrs[POINT]): t for t in self.queued()
                if t.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE) or "summary" in t.user_attrs}  # fmt: skip

    def count(self, *states: TrialState) -> int:
        return len(self.queued(states))

    # --- work --------------------------------------------------------------------------------
    def run_path(self, point: tuple) -> Path:
        return self.directory / "runs" / self.run_name(point)

    def attempt_path(self, point: tuple, trial_number: int) -> Path:
        return self.directory / "runs" / f".{self.run_name(point)}.trial{trial_number}"

    def objective(self, trial: optuna.Trial) -> float:
        proposed = POINT not in trial.user_attrs
        if proposed and not self.admits(trial):  # the queue ran dry between a check and the pop, or the budget is spent
            raise optuna.TrialPruned("not a queued trial")
        self.current_trial = trial.number
        trial.set_user_attr("worker_pid", os.getpid())
        point = self.suggest(trial)
        if proposed:
            earlier = self.covered().get(point)
            if earlier is not None:  # a sampler over a small discrete space proposes points again
                return self.repeat(trial, earlier)
            trial.set_user_attr(POINT, list(point))
        attempt = self.attempt_path(point, trial.number)
        started = time.perf_counter()
        try:
            resume = self.adopt_dead_attempt(point, attempt)
            result = train(self.trial_recipe(point), attempt, TrialReporter(trial, self.monitored), resume=resume)
            value = self.record(trial, result)
        except Exception:
            self.give_up(trial.number, attempt)
        return self.settle(point, attempt, result, value, time.perf_counter() - started)

    def trial_recipe(self, point: tuple) -> Recipe:
        recipe = self.recipe_for(point)
        if self.device:
            recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"device": self.device})})
        return recipe

    def record(self, trial: optuna.Trial, result: RunResult) -> float:
        """Store what the results table needs of a trained run; returns its value."""
        value, reason = self.measure(result)
        if reason is not None:
            trial.set_user_attr("reason", reason)
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("summary", {**self.summary(result), "threads": torch.get_num_threads()})  # what reproduces it on CPU
        return value

    def give_up(self, number: int, attempt: Path) -> None:
        """After a failure: re-raised while the trial is this worker's; once another worker has
        taken it over (recording fails, and the attempt directory may be gone), pruned."""
        if self.state_of(number) == TrialState.RUNNING:
            raise
        shutil.rmtree(attempt, ignore_errors=True)
        raise optuna.TrialPruned("taken over by another worker") from None

    def settle(self, point: tuple, attempt: Path, result: RunResult, value: float, seconds: float) -> float:
        """The finished attempt becomes the point's run directory; returns the trial's value."""
        final = self.run_path(point)
        shutil.rmtree(final, ignore_errors=True)  # left by an attempt taken over just after it finished
        attempt.rename(final)
        self.remove_dead_attempts(point)
        why = f"; {self.measure(result)[1]}" if math.isnan(value) else ""
        if not self.quiet:
            print(f"[worker {os.getpid()}] {self.run_name(point)}: {self.monitored} {value:.4f} "
              f"({result.status}{why}, {seconds:.0f}s)", flush=True)  # fmt: skip
        if result.status == "pruned":
            raise optuna.TrialPruned(f"pruned after epoch {len(result.history)}")
        return value  # NaN: Optuna records the trial as failed; its summary keeps it from running again

    # --- k trials of one arm as one stack (``train.parallel_seeds``) ---------------------------
    def stack_key(self, point: tuple) -> Optional[Hashable]:
        """Points with the same key differ only in their seed and may train as one stack; None:
        this point trains alone."""
        return None

    def stack_size(self) -> int:
        """How many trials the next stack may take: the next waiting point's ``train.parallel_seeds``."""
        waiting = self.queued((TrialState.WAITING,))
        if not waiting or self.stack_key(tuple(waiting[0].user_attrs[POINT])) is None:
            return 1
        return self.recipe_for(tuple(waiting[0].user_attrs[POINT])).train.parallel_seeds

    def take_stack(self, size: int) -> list[optuna.Trial]:
        """Up to ``size`` waiting trials with the first one's stack key, popped in queue order.
        Another worker may pop the trial looked at first: what is popped instead is taken too
        (``work_stack`` trains each key's trials as their own stack)."""
        taken: list[optuna.Trial] = []
        while len(taken) < size:
            waiting = self.queued((TrialState.WAITING,))
            if not waiting or (taken and self.stack_key(tuple(waiting[0].user_attrs[POINT])) != self.stack_key(self.point_of(taken[0]))):
                break
            trial = self.optuna.ask()
            if POINT not in trial.user_attrs:  # the queue ran dry meanwhile: ask() made a new trial
                self.optuna.tell(trial, state=TrialState.PRUNED)
                break
            trial.set_user_attr("worker_pid", os.getpid())
            taken.append(trial)
        return taken

    @staticmethod
    def point_of(trial: optuna.Trial) -> tuple:
        return tuple(trial.user_attrs[POINT])

    def work_stack(self, size: int) -> None:
        """Pop up to ``size`` trials of one arm, train them as one stack (``stack.train_stack``)
        under their own heartbeats, and record each; a killed stack's trials go stale and are
        retried like any other."""
        taken = self.take_stack(size)
        for key in dict.fromkeys(self.stack_key(self.point_of(trial)) for trial in taken):
            self.train_as_stack([trial for trial in taken if self.stack_key(self.point_of(trial)) == key])

    def train_as_stack(self, trials: list[optuna.Trial]) -> None:
        """Train popped trials of one key together; each is told its own value."""
        points = [self.point_of(trial) for trial in trials]
        attempts = [self.attempt_path(point, trial.number) for point, trial in zip(points, trials)]
        for attempt in attempts:
            shutil.rmtree(attempt, ignore_errors=True)
        started = time.perf_counter()
        with contextlib.ExitStack() as beating:
            for trial in trials:
                beating.enter_context(get_heartbeat_thread(trial._trial_id, self.optuna._storage))
            try:
                results = train_stack([self.trial_recipe(p) for p in points], attempts, [TrialReporter(t, self.monitored) for t in trials])
            except Exception as exc:
                for trial in trials:
                    self.optuna.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                print(f"[worker {os.getpid()}] stack of {len(trials)} failed: {first_line(exc)}", flush=True)
                return
            for trial, point, attempt, result in zip(trials, points, attempts, results):
                try:
                    try:
                        value = self.record(trial, result)
                    except Exception:
                        self.give_up(trial.number, attempt)
                    self.optuna.tell(trial, self.settle(point, attempt, result, value, time.perf_counter() - started))
                except optuna.TrialPruned:
                    self.optuna.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)

    def repeat(self, trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> float:
        """A proposed point that another trial holds is not trained again: the trial takes the
        earlier one's value (the sampler learns the truth), or is pruned when that one has none yet."""
        trial.set_user_attr("repeat_of", earlier.number)
        if earlier.state == TrialState.COMPLETE:
            return earlier.value
        raise optuna.TrialPruned(f"repeats trial {earlier.number}")

    def repeats(self) -> int:
        return sum("repeat_of" in t.user_attrs for t in self.optuna.get_trials(deepcopy=False))

    def dead_attempts(self, point: tuple) -> list[Path]:
        """Directories of this point's earlier attempts that no worker is running (killed or failed ones)."""
        return [self.attempt_path(point, t.number) for t in self.queued()
                if tuple(t.user_attrs[POINT]) == point and t.state != TrialState.RUNNING]  # fmt: skip

    def adopt_dead_attempt(self, point: tuple, attempt: Path) -> bool:
        """Copy the furthest-trained dead attempt of this point into ``attempt``, so the retry
        resumes it; False when there is none to resume."""
        resumable = [path for path in self.dead_attempts(point) if (path / STATE).is_file()]
        if not resumable:
            return False
        furthest = max(resumable, key=lambda path: len(RunDir(path).history()))
        shutil.copytree(furthest, attempt)  # copied, not moved: a paused worker may still own it
        return True

    def remove_dead_attempts(self, point: tuple) -> None:
        for path in self.dead_attempts(point):
            shutil.rmtree(path, ignore_errors=True)

    def state_of(self, number: Optional[int]) -> Optional[TrialState]:
        """The stored state of trial ``number`` (None for none)."""
        if number is None:
            return None
        return self.optuna.get_trials(deepcopy=False)[number].state

    def proposed(self, before: Optional[int] = None) -> int:
        """Trials the sampler created (neither enqueued nor retries), numbered below ``before``."""
        return sum(1 for t in self.optuna.get_trials(deepcopy=False)
                   if (before is None or t.number < before) and not {"fixed_params", "failed_trial"} & set(t.system_attrs))  # fmt: skip

    def work(self, timeout: Optional[float] = None) -> None:
        """Run waiting trials, and new ones while the plan wants more (for ``timeout`` seconds at
        most), until none is waiting or running elsewhere."""
        deadline = time.time() + timeout if timeout else math.inf
        while True:
            optuna.storages.fail_stale_trials(self.optuna)
            waiting = self.count(TrialState.WAITING)
            size = self.stack_size() if waiting else 1  # no extra read of the storage while waiting on others
            if size > 1:
                self.work_stack(size)
            elif waiting or (self.wants_more() and time.time() < deadline):
                self.current_trial = None
                try:
                    self.optuna.optimize(self.objective, n_trials=1, catch=(Exception,))
                except Exception:  # Optuna cannot record a trial that another worker has failed meanwhile
                    if self.state_of(self.current_trial) != TrialState.FAIL:
                        raise
                    print(f"[worker {os.getpid()}] trial {self.current_trial}: {TAKEN_OVER}", flush=True)
            elif self.count(TrialState.RUNNING):
                time.sleep(1.0)  # someone else's trial: it finishes, or goes stale and comes back queued
            else:
                return

    def run_workers(self, workers: int, quiet: bool = False, device: Optional[str] = None, timeout: Optional[float] = None) -> None:
        """Start ``workers`` local worker processes, each with its share of the CPU threads."""
        threads = max(1, (os.cpu_count() or 1) // workers)
        command = [sys.executable, "-m", "reglab.cli", "worker", str(self.directory), "--storage", self.storage_url,
                   "--threads", str(threads)] + (["--quiet"] if quiet else []) + (["--device", device] if device else [])  # fmt: skip
        command += ["--timeout", str(timeout)] if timeout else []
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
    def records(self) -> dict[tuple, dict]:
        """Point → its recorded run: value (NaN when the trial did not complete), status, reason
        and summary; points not yet recorded are absent."""
        rows = {}
        for trial in self.queued():
            if "summary" not in trial.user_attrs:
                continue
            value = trial.value if trial.state == TrialState.COMPLETE else float("nan")
            rows[tuple(trial.user_attrs[POINT])] = {"value": value, "status": trial.user_attrs["status"],
                                                    "reason": trial.user_attrs.get("reason"), **trial.user_attrs["summary"]}  # fmt: skip
        return rows


class TrialReporter(Silent):
    """Stores each epoch's compared metric as the trial's intermediate value, and asks the study's
    pruner whether the run should go on."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric

    def resumed(self, history: list[dict]) -> None:
        for row in history:
            self.epoch_end(row)

    def epoch_end(self, row: dict, note: str = "") -> None:
        if self.metric in row:
            self.trial.report(float(row[self.metric]), step=row["epoch"])

    def pruned(self) -> bool:
        return self.trial.should_prune()
