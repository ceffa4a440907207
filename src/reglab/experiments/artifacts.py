"""Runs kept in an artifact store, for studies and sweeps whose workers share no folder: each
finished run is archived (everything ``report`` and ``predict`` read: history, metrics,
predictions, checkpoints, recipe) into the plan's artifact store (``stores.py``: a folder every
machine reaches, or an S3 bucket) against its trial, before the trial is recorded complete (an
upload that fails leaves it failed, to be run again, never recorded without its files). A machine
without the run directory fetches the archive when it builds the report. The store's path is
kept in the storage with the plan, so workers and readers need only ``--storage``.

A running attempt also sends its training state (``StateUploads``: after its first epoch, then at
most every ``STATE_EVERY`` seconds), so that when its worker dies the retry, on whichever machine
takes it, resumes from there (``fetch_state``) instead of starting over. Every archive has an id of
its own, kept on its own trial: two workers never write over each other's attempt."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator, Optional

from optuna.artifacts import download_artifact, upload_artifact
from optuna.trial import TrialState

from ..errors import UserError, first_line
from ..rundir import STATE
from .storage import POINT
from .stores import STORE_ERRORS, kept_as, store_at

STORE = "artifact_store"  # Optuna study user attribute: the store's folder
ARTIFACT = "run_artifact"  # trial user attribute: the id of its run's archive
STATE_ARTIFACT = "state_artifact"  # trial user attribute: {"id", "epoch"} of its running attempt's latest archive with the training state
STATE_EVERY = 60.0  # seconds between two uploads of a running attempt's training state


def keep_store(engine, path: Optional[str]) -> None:
    """Name the store in the storage when the plan is created (checked writable first)."""
    if path:
        store_at(path)
        engine.optuna.set_user_attr(STORE, kept_as(path))


def plan_store(engine):
    """The store the plan names in its storage, or None."""
    path = engine.optuna.user_attrs.get(STORE)
    return store_at(path, "the plan's artifact store") if path else None


@contextlib.contextmanager
def archived(attempt: Path, with_state: bool) -> Iterator[Path]:
    """A temporary tar.gz of an attempt directory (its training state only ``with_state``)."""
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "run.tar.gz"
        with tarfile.open(archive, "w:gz", compresslevel=1) as tar:  # checkpoints hardly compress: speed first
            for file in sorted(attempt.rglob("*")):
                if file.is_file() and (with_state or file.name != STATE):
                    tar.add(file, arcname=str(file.relative_to(attempt)))
        yield archive


def unpack(store, artifact: str, into: Path) -> None:
    """Download an archive and unpack it as data (no link, device or path outside) into ``into``,
    which must not exist; moved there only once whole."""
    into.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into.parent) as folder:
        archive = Path(folder) / "run.tar.gz"
        download_artifact(artifact_store=store, file_path=str(archive), artifact_id=artifact)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(folder) / "run", filter="data")
        shutil.move(str(Path(folder) / "run"), into)


def upload_run(engine, trial, attempt: Path) -> None:
    """Archive a finished attempt into the plan's store (if it has one) against its trial."""
    store = plan_store(engine)
    if store is None:
        return
    with archived(attempt, with_state=False) as archive:
        artifact = upload_artifact(artifact_store=store, file_path=str(archive), study_or_trial=trial)
    trial.set_user_attr(ARTIFACT, artifact)


class StateUploads:
    """A running attempt's training state sent to the plan's store after its first epoch and then
    at most every ``STATE_EVERY`` seconds, each upload replacing this attempt's previous one."""

    def __init__(self, engine, trial, attempt: Path):
        self.store, self.trial, self.attempt = plan_store(engine), trial, attempt
        self.sent: Optional[str] = None
        self.last = -math.inf

    def epoch_end(self, epoch: int) -> None:
        if self.store is None or time.monotonic() - self.last < STATE_EVERY:
            return
        artifact = f"state-{uuid.uuid4().hex}"
        with archived(self.attempt, with_state=True) as archive, open(archive, "rb") as stream:
            self.store.write(artifact, stream)
        try:
            self.trial.set_user_attr(STATE_ARTIFACT, {"id": artifact, "epoch": epoch})
        except Exception:  # the trial is no longer this worker's (taken over): its upload goes
            self.store.remove(artifact)
            raise
        if self.sent:
            self.store.remove(self.sent)
        self.sent, self.last = artifact, time.monotonic()


def fetch_state(engine, trials, attempt: Path, beyond: int = 0) -> bool:
    """Unpack into ``attempt`` the furthest-trained training state that dead ``trials`` of a point
    left in the store, when it got ``beyond`` that many epochs; False when there is none (or it
    cannot be read: the retry goes on without it)."""
    states = [t.user_attrs[STATE_ARTIFACT] for t in trials if t.user_attrs.get(STATE_ARTIFACT, {}).get("epoch", 0) > beyond]
    store = plan_store(engine) if states else None
    if store is None:
        return False
    furthest = max(states, key=lambda state: state["epoch"])
    try:
        unpack(store, furthest["id"], attempt)
    except (tarfile.TarError, *STORE_ERRORS) as exc:
        print(f"[worker {os.getpid()}] the training state of {attempt.name} (epoch {furthest['epoch']}) cannot be fetched "
              f"({first_line(exc)}); going on without it", flush=True)  # fmt: skip
        shutil.rmtree(attempt, ignore_errors=True)
        return False
    return True


def remove_states(engine, trials) -> None:
    """The training states ``trials`` left in the store, removed once their point is recorded."""
    ids = {t.user_attrs[STATE_ARTIFACT]["id"] for t in trials if STATE_ARTIFACT in t.user_attrs}
    store = plan_store(engine) if ids else None
    for artifact in ids if store else ():
        with contextlib.suppress(*STORE_ERRORS):
            store.remove(artifact)


def fetch_runs(engine, only: Optional[str] = None) -> int:
    """Every recorded run this machine lacks (or the one named ``only``), fetched from the store
    into ``runs/``, where it stays; returns how many."""
    store, fetched = plan_store(engine), 0
    if store is None:
        return 0
    for trial in engine.optuna.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        artifact = trial.user_attrs.get(ARTIFACT)
        if not artifact or POINT not in trial.user_attrs:
            continue
        final = engine.run_path(tuple(trial.user_attrs[POINT]))
        if final.exists() or only not in (None, final.name):
            continue
        try:
            unpack(store, artifact, final)
        except (tarfile.TarError, *STORE_ERRORS) as exc:
            raise UserError(f"{engine.optuna.user_attrs[STORE]}: the archive of run {final.name} cannot be read ({first_line(exc)})") from None
        fetched += 1
    return fetched
