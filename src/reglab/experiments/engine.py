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

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import optuna
import torch
import yaml
from optuna.trial import TrialState

from ..errors import UserError, first_line
from ..device import pinned_amp
from ..recipe import Recipe, with_amp
from ..rundir import write_atomic
from ..training.run import RunResult, train
from .storage import PATIENCE, PLAN, POINT, make_storage, stored_plan
from .tracking import open_parent, point_tags
from .artifacts import StateUploads, keep_store, store_at, upload_run
from .attempts import Attempts
from .worker import TrialReporter, Worker


class Engine(Attempts, Worker):
    """A queue of trainings on one Optuna study, kept in a directory: ``<kind>.yaml`` (the resolved
    recipe), ``<kind>.json`` (name and storage URL), ``<kind>.db`` (the default storage) and
    ``runs/`` (a run directory per point)."""

    kind: str  # "study" or "sweep": names the directory's files
    home: str  # where directories go by default: studies/<name>, sweeps/<name>
    monitored: Optional[str]  # the per-epoch metric each trial reports (for dashboards and pruners); None: several objectives

    def __init__(self, directory: str | Path, storage_url: Optional[str] = None, name: Optional[str] = None, patience: float = PATIENCE):
        """Open a directory; with ``name`` and ``storage_url``, one whose ``<kind>.json`` is not written yet.
        ``patience``: seconds a lost database is retried before a ``StorageLost``."""
        self.directory = Path(directory)
        if name is None:
            name, stored_url = self.read_info()
            storage_url = storage_url or stored_url
        self.name, self.storage_url = name, storage_url
        self.current_trial: Optional[int] = None  # number of the trial this worker last took
        self.quiet = False  # no line per finished run
        self.device: Optional[str] = None  # train.device for every run, when the worker was given one
        self.read_plan(self.directory / f"{self.kind}.yaml")
        self.monitored = self.config.metric if len(self.config.objectives) == 1 else None  # Optuna takes no intermediate values for several
        self.optuna = optuna.create_study(
            study_name=name,
            storage=make_storage(storage_url, self.config.heartbeat_seconds, patience),
            sampler=self.sampler(),
            pruner=self.pruner() or optuna.pruners.NopPruner(),
            directions=["maximize" if up else "minimize" for _, up in self.config.objectives],
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
    def prepare(cls, recipe_path, overrides, out: Optional[Path], storage_url: Optional[str], store: Optional[str] = None) -> "Engine":
        """Create the directory (or reopen it when it holds the same resolved recipe) and enqueue
        what is missing.

        ``<kind>.json`` is written last, atomically: once it exists, the storage and its queue do
        too, and a creation cut short is simply redone by the next run of the same command.
        """
        recipe = cls.load(recipe_path, overrides)
        if store:
            store_at(store)  # an unusable store is refused before anything is written
        name = recipe.name or Path(recipe_path).stem
        directory = Path(out or Path(cls.home) / name)
        resolved = recipe.to_dict()
        info = directory / f"{cls.kind}.json"
        if info.exists():
            stored = cls.load(directory / f"{cls.kind}.yaml", saved=True).to_dict()  # through today's schema
            resolved = with_amp(resolved, stored["train"]["amp"])
            if cls.comparable(stored) != cls.comparable(resolved):
                raise UserError(f"{directory}: holds a different {cls.kind} (recipe or overrides changed); choose another --out")
            if stored != resolved:  # a new budget
                cls.write_recipe(directory, resolved)
            engine = cls(directory, storage_url)
            engine.optuna.set_user_attr(PLAN, {"kind": cls.kind, "recipe": resolved})
            engine.enqueue_missing()
            return engine
        plan = stored_plan(storage_url, name) if storage_url else None  # a journal path that cannot hold it is refused here
        resolved = with_amp(resolved, plan["recipe"]["train"]["amp"] if plan else pinned_amp(resolved["train"]["device"], resolved["model"]["name"]))
        if plan and (plan["kind"] != cls.kind or cls.comparable(plan["recipe"]) != cls.comparable(resolved)):
            raise UserError(f"--storage {storage_url}: holds a {plan['kind']} named {name!r} with another plan; give the recipe another "
                            f"name: (or join that one: reglab worker --storage URL --study {name})")  # fmt: skip
        directory.mkdir(parents=True, exist_ok=True)
        cls.write_recipe(directory, resolved)
        url = storage_url or f"sqlite:///{(directory / f'{cls.kind}.db').resolve()}"
        engine = cls(directory, url, name=name)
        engine.optuna.set_user_attr(PLAN, {"kind": cls.kind, "recipe": resolved})  # a worker elsewhere needs nothing else
        open_parent(engine)
        keep_store(engine, store)
        engine.enqueue_missing()
        cls.write_info(directory, name, url)
        return engine

    @classmethod
    def write_info(cls, directory: Path, name: str, storage_url: str) -> None:
        """``<kind>.json``, written last: once it exists, the directory is this study or sweep's."""
        write_atomic(directory / f"{cls.kind}.json", lambda tmp: tmp.write_text(json.dumps({"name": name, "storage": storage_url}, indent=2) + "\n"))

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

    def describe(self, point: tuple) -> dict[str, str]:
        """What a point is, as a tracker's tags."""
        return {}

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
            result = self.train_point(point, attempt, TrialReporter(trial, self.monitored, StateUploads(self, trial, attempt)), resume)
        except Exception:
            self.give_up(trial.number, attempt)
        return self.conclude(trial, point, attempt, result, started)

    def train_point(self, point: tuple, attempt: Path, reporter, resume: bool) -> RunResult:
        """Train one point into its attempt directory (``resume``: continue the dead attempt copied there)."""
        return train(self.trial_recipe(point), attempt, reporter, resume=resume, tags=point_tags(self, point))

    def trial_recipe(self, point: tuple) -> Recipe:
        recipe = self.recipe_for(point)
        if self.device:
            recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"device": self.device})})
        return recipe

    def conclude(self, trial: optuna.Trial, point: tuple, attempt: Path, result: RunResult, started: float) -> float:
        """How every trained attempt ends, alone or in a stack: recorded, then made the point's
        run directory; returns the trial's value (``TrialPruned`` when the run was pruned, or the
        trial was taken over by another worker meanwhile)."""
        try:
            upload_run(self, trial, attempt)  # first: a run whose upload fails stays unrecorded, to run again
            value = self.record(trial, result)
        except Exception:
            self.give_up(trial.number, attempt)
        return self.settle(point, attempt, result, value, time.perf_counter() - started)

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
            print(f"[worker {os.getpid()}] trial {number} failed: {first_line(sys.exc_info()[1])}", file=sys.stderr, flush=True)
            raise
        shutil.rmtree(attempt, ignore_errors=True)
        raise optuna.TrialPruned("taken over by another worker") from None

    def settle(self, point: tuple, attempt: Path, result: RunResult, value: float, seconds: float) -> float:
        """The finished attempt becomes the point's run directory; returns the trial's value."""
        final = self.run_path(point)
        shutil.rmtree(final, ignore_errors=True)  # left by an attempt taken over just after it finished
        attempt.rename(final)
        self.remove_dead_attempts(point)
        values = value if isinstance(value, list) else [value]  # a multi-objective sweep's are a list
        why = f"; {self.measure(result)[1]}" if any(math.isnan(v) for v in values) else ""
        if not self.quiet:
            shown = ", ".join(f"{metric} {v:.4f}" for (metric, _), v in zip(self.config.objectives, values))
            print(f"[worker {os.getpid()}] {self.run_name(point)}: {shown} ({result.status}{why}, {seconds:.0f}s)", flush=True)
        if result.status == "pruned":
            raise optuna.TrialPruned(f"pruned after epoch {len(result.history)}")
        return value  # NaN: Optuna records the trial as failed; its summary keeps it from running again

    def repeat(self, trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> float:
        """A proposed point that another trial holds is not trained again: the trial takes the
        earlier one's value (the sampler learns the truth), or is pruned when that one has none yet."""
        trial.set_user_attr("repeat_of", earlier.number)
        if earlier.state == TrialState.COMPLETE:
            return earlier.values if len(earlier.values) > 1 else earlier.value
        raise optuna.TrialPruned(f"repeats trial {earlier.number}")

    def repeats(self) -> int:
        return sum("repeat_of" in t.user_attrs for t in self.optuna.get_trials(deepcopy=False))

    def state_of(self, number: Optional[int]) -> Optional[TrialState]:
        """The stored state of trial ``number`` (None for none)."""
        if number is None:
            return None
        return self.optuna.get_trials(deepcopy=False)[number].state

    def proposed(self, before: Optional[int] = None) -> int:
        """Trials the sampler created (neither enqueued nor retries), numbered below ``before``."""
        return sum(1 for t in self.optuna.get_trials(deepcopy=False)
                   if (before is None or t.number < before) and not {"fixed_params", "failed_trial"} & set(t.system_attrs))  # fmt: skip

    # --- results -----------------------------------------------------------------------------
    def records(self) -> dict[tuple, dict]:
        """Point → its recorded run: value (NaN when the trial did not complete), status, reason
        and summary; points not yet recorded are absent."""
        rows = {}
        for trial in self.queued():
            if "summary" not in trial.user_attrs:
                continue
            value = (trial.values if len(trial.values) > 1 else trial.value) if trial.state == TrialState.COMPLETE else float("nan")
            rows[tuple(trial.user_attrs[POINT])] = {"value": value, "status": trial.user_attrs["status"],
                                                    "reason": trial.user_attrs.get("reason"), **trial.user_attrs["summary"]}  # fmt: skip
        return rows
