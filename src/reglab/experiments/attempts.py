"""Attempt directories: each try at a point trains in its own hidden directory
(``runs/.<name>.trial<N>/``, the engine's ``attempt_path``); a retry resumes the furthest-trained
dead attempt of its point — from this machine's disk, or from the training state the dead attempt
left in the artifact store — and once a point is recorded its dead attempts are removed."""

from __future__ import annotations

import shutil
from pathlib import Path

from optuna.trial import TrialState

from ..rundir import STATE, RunDir
from .artifacts import fetch_state, remove_states
from .storage import POINT


class Attempts:
    """Mixed into the engine, which provides ``queued()`` and ``attempt_path()``."""

    def trials_of(self, point: tuple) -> list:
        return [t for t in self.queued() if tuple(t.user_attrs[POINT]) == point]

    def dead_trials(self, point: tuple) -> list:
        """This point's earlier trials that no worker is running (killed or failed ones)."""
        return [t for t in self.trials_of(point) if t.state != TrialState.RUNNING]

    def adopt_dead_attempt(self, point: tuple, attempt: Path) -> bool:
        """Put the furthest-trained dead attempt of this point into ``attempt``, so the retry
        resumes it: one on this machine's disk, or a training state another machine's attempt
        left in the store when that one got further; False when there is none to resume."""
        dead = self.dead_trials(point)
        epochs = {path: len(RunDir(path).history()) for path in (self.attempt_path(point, t.number) for t in dead) if (path / STATE).is_file()}
        furthest = max(epochs, key=epochs.get, default=None)
        if fetch_state(self, dead, attempt, beyond=epochs.get(furthest, 0)):
            return True
        if furthest is None:
            return False
        shutil.copytree(furthest, attempt)  # copied, not moved: a paused worker may still own it
        return True

    def remove_dead_attempts(self, point: tuple) -> None:
        """Once the point is recorded: its dead attempts' directories here, and every training
        state its attempts left in the store."""
        for trial in self.dead_trials(point):
            shutil.rmtree(self.attempt_path(point, trial.number), ignore_errors=True)
        remove_states(self, self.trials_of(point))
