"""Attempt directories: each try at a point trains in its own hidden directory
(``runs/.<name>.trial<N>/``, the engine's ``attempt_path``); a retry resumes the furthest-trained
dead attempt of its point, and once a point is recorded its dead attempts are removed."""

from __future__ import annotations

import shutil
from pathlib import Path

from optuna.trial import TrialState

from ..rundir import STATE, RunDir
from .storage import POINT


class Attempts:
    """Mixed into the engine, which provides ``queued()`` and ``attempt_path()``."""

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
