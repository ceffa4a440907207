"""Runs kept in an artifact store, for studies and sweeps whose workers share no folder: each
finished run is archived (everything ``report`` and ``predict`` read: history, metrics,
predictions, checkpoints, recipe) into Optuna's ``FileSystemArtifactStore`` — a path that may be
a network mount or a synced folder — against its trial, before the trial is recorded complete (an
upload that fails leaves it failed, to be run again, never recorded without its files). A machine
without the run directory fetches the archive when it builds the report. The store's path is
kept in the storage with the plan, so workers and readers need only ``--storage``."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

from optuna.artifacts import FileSystemArtifactStore, download_artifact, upload_artifact
from optuna.trial import TrialState

from ..errors import UserError, first_line
from ..rundir import STATE
from .storage import POINT

STORE = "artifact_store"  # Optuna study user attribute: the store's folder
ARTIFACT = "run_artifact"  # trial user attribute: the id of its run's archive


def store_at(path: str, option: str = "--store") -> FileSystemArtifactStore:
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{option} {path}: not a folder (create it, or mount the shared store there)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: not writable")
    return FileSystemArtifactStore(str(folder.resolve()))


def keep_store(engine, path: Optional[str]) -> None:
    """Name the store in the storage when the plan is created (checked writable first)."""
    if path:
        store_at(path)
        engine.optuna.set_user_attr(STORE, str(Path(path).resolve()))


def upload_run(engine, trial, attempt: Path) -> None:
    """Archive a finished attempt into the plan's store (if it has one) against its trial."""
    path = engine.optuna.user_attrs.get(STORE)
    if not path:
        return
    store = store_at(path, "the plan's artifact store")
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "run.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for file in sorted(attempt.rglob("*")):
                if file.is_file() and file.name != STATE:
                    tar.add(file, arcname=str(file.relative_to(attempt)))
        artifact = upload_artifact(artifact_store=store, file_path=str(archive), study_or_trial=trial)
    trial.set_user_attr(ARTIFACT, artifact)


def fetch_runs(engine) -> int:
    """Every recorded run this machine lacks, fetched from the store into ``runs/`` (archives are
    unpacked as data: no link, device or path outside the run directory); returns how many."""
    path = engine.optuna.user_attrs.get(STORE)
    if not path:
        return 0
    store, fetched = store_at(path, "the plan's artifact store"), 0
    for trial in engine.optuna.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        artifact = trial.user_attrs.get(ARTIFACT)
        if not artifact or POINT not in trial.user_attrs:
            continue
        final = engine.run_path(tuple(trial.user_attrs[POINT]))
        if final.exists():
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=final.parent) as folder:
            archive = Path(folder) / "run.tar.gz"
            try:
                download_artifact(artifact_store=store, file_path=str(archive), artifact_id=artifact)
                with tarfile.open(archive) as tar:
                    tar.extractall(Path(folder) / "run", filter="data")
            except (OSError, tarfile.TarError) as exc:
                raise UserError(f"{path}: the archive of run {final.name} cannot be read ({first_line(exc)})") from None
            shutil.move(str(Path(folder) / "run"), final)
        fetched += 1
    return fetched
