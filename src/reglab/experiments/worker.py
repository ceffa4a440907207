"""Workers: the loop that pops waiting trials (or asks the sampler for new ones) until the plan is
done, local worker processes, k trials of one arm popped and trained as one stack
(``study.parallel_seeds``), and the reporter through which a run's epochs reach Optuna (its
pruner, its dashboards). A mixin of ``Engine``: what runs is the engine's plan."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Hashable, Optional

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from ..device import autocast, pick_device, seeds_per_stack
from ..errors import UserError, first_line
from ..progress import Silent
from ..training.stack import train_stack
from .artifacts import plan_store
from .tracking import point_tags
from .storage import POINT, STALE_AFTER

TAKEN_OVER = f"this worker fell silent for {STALE_AFTER} heartbeats; its run was handed to another worker and is discarded"


class Worker:
    """The work an engine's workers do; ``Engine`` supplies the plan, the queue and ``conclude``."""

    def stack_key(self, point: tuple) -> Optional[Hashable]:
        """Points with the same key differ only in their seed and may train as one stack; None:
        this point trains alone."""
        return None

    def stack_size(self) -> int:
        """How many trials the next stack may take: the plan's ``parallel_seeds`` when the next waiting
        point may stack."""
        waiting = self.queued((TrialState.WAITING,))
        if not waiting or self.stack_key(tuple(waiting[0].user_attrs[POINT])) is None:
            return 1
        recipe = self.recipe_for(tuple(waiting[0].user_attrs[POINT]))
        alone = recipe.train.compile is True or recipe.optim.sam is not None
        return seeds_per_stack(self.config.parallel_seeds, pick_device(self.device or recipe.train.device), alone)

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
                results = train_stack([self.trial_recipe(p) for p in points], attempts, [TrialReporter(t, self.monitored) for t in trials],
                                      [point_tags(self, p) for p in points])  # fmt: skip
            except Exception as exc:
                for trial in trials:
                    self.optuna.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                print(f"[worker {os.getpid()}] stack of {len(trials)} failed: {first_line(exc)}", flush=True)
                return
            for trial, point, attempt, result in zip(trials, points, attempts, results):
                try:
                    self.optuna.tell(trial, self.conclude(trial, point, attempt, result, started))
                except optuna.TrialPruned:
                    self.optuna.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)

    def work(self, timeout: Optional[float] = None) -> None:
        """Run waiting trials, and new ones while the plan wants more (for ``timeout`` seconds at
        most), until none is waiting or running elsewhere."""
        deadline = time.time() + timeout if timeout else math.inf
        plan_store(self)  # a store this machine cannot reach or write: refused before a trial is taken
        self.check_machine()
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

    def check_machine(self) -> None:
        """A machine that cannot run the plan's trials refuses before it takes one: its data folder
        is not here (``data.path`` is read on each worker), or it cannot train at the plan's
        precision (``train.amp``, pinned when the plan was created)."""
        train, path = self.recipe.train, self.recipe.data.path
        if path and not Path(path).exists():
            raise UserError(f"{path}: not found on this machine (data.path of {self.directory}; each worker reads the data itself)")
        try:
            autocast(pick_device(self.device or train.device), train.amp, self.recipe.model.name)
        except UserError as exc:
            raise UserError(f"{self.directory}: its runs train at train.amp={train.amp}, pinned when it was created, "
                            f"and this machine cannot ({exc})") from None

    def run_workers(self, workers: int, quiet: bool = False, device: Optional[str] = None, timeout: Optional[float] = None) -> None:
        """Start ``workers`` local worker processes, each with its share of the CPU threads — no more
        than there are trials left (waiting, or running: a stale one comes back queued), and none
        for a plan with nothing left to run, as when a finished study's command is run again."""
        threads = max(1, (os.cpu_count() or 1) // workers)  # from the number asked for: a run's numbers depend on its threads
        if not self.wants_more():
            workers = min(workers, len(self.optuna.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))))
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


class TrialReporter(Silent):
    """Stores each epoch's compared metric as the trial's intermediate value, and asks the study's
    pruner whether the run should go on; ``uploads`` (``artifacts.StateUploads``) sends the
    training state to the plan's artifact store first, so that the value Optuna sees is resumable."""

    def __init__(self, trial: optuna.Trial, metric: str, uploads=None):
        self.trial, self.metric, self.uploads = trial, metric, uploads

    def resumed(self, history: list[dict]) -> None:
        for row in history:
            self.report(row)

    def epoch_end(self, row: dict, note: str = "") -> None:
        if self.uploads is not None and "val_loss" in row:  # a diverged epoch saved no state
            self.uploads.epoch_end(row["epoch"])
        self.report(row)

    def report(self, row: dict) -> None:
        if self.metric in row:
            self.trial.report(float(row[self.metric]), step=row["epoch"])

    def pruned(self) -> bool:
        return self.metric is not None and self.trial.should_prune()
