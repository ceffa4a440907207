"""Optuna storage for the trial queue: an RDB (SQLite by default, PostgreSQL for a cluster) with
heartbeats, whose stale trials are failed and re-enqueued, or a journal file on a shared disk
(no heartbeats). ``SQLiteStorage`` serializes the pop of a waiting trial with a file lock.

A worker that loses the database (a network partition, a server restart) retries each call with
exponential back-off for ``patience`` seconds, then stops with one line (``StorageLost``): its
trial's heartbeat goes stale and another worker runs it again. A heartbeat that cannot be sent is
skipped rather than retried, so the training thread never waits on it."""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path
from typing import Optional

import optuna
import sqlalchemy
from optuna.trial import TrialState

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from ..errors import UserError, first_line

optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is reported in one line by the engine, not Optuna's traceback
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
POINT = "pair"  # user attribute holding a queued trial's point (its values, in order); named so since the first studies
STALE_AFTER = 3  # heartbeats a worker may miss before its trial is failed and retried
PLAN = "reglab_plan"  # study user attribute: the kind and resolved recipe, so that a worker needs only the storage
PATIENCE = 120.0  # seconds a worker retries a lost database before it stops
CONNECTION_LOST = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


class StorageLost(UserError):
    """The database stayed unreachable for the worker's patience."""


def lost_connection(exc: BaseException) -> Optional[BaseException]:
    """The database error behind ``exc`` when it is a lost or refused connection (Optuna wraps
    SQLAlchemy's errors in ``StorageInternalError``), else None."""
    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    return cause if isinstance(cause, CONNECTION_LOST) else None


def patient(method):
    """A storage call retried with back-off (1, 2, 4 … 30 s) while the database is unreachable."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        delay, waited = 1.0, 0.0
        while True:
            if self.lost is not None:
                raise StorageLost(self.lost)
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                cause = lost_connection(exc)
                if cause is None:
                    raise
                if waited >= self.patience:
                    self.lost = (f"--storage {self.shown_url}: unreachable for {waited:.0f} s ({first_line(cause)}); this worker stops, "
                                 "and its trial runs again on another worker once its heartbeat goes stale")  # fmt: skip
                    raise StorageLost(self.lost) from None
                time.sleep(delay)
                waited, delay = waited + delay, min(2 * delay, 30.0)

    return call


class PatientStorage(optuna.storages.RDBStorage):
    """RDB storage whose calls outlast a lost connection for ``patience`` seconds (``patient``);
    a heartbeat is tried once."""

    def __init__(self, url: str, patience: float = PATIENCE, **kwargs):
        self.patience, self.lost = patience, None
        self.shown_url = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
        super().__init__(url, **kwargs)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:  # a missed beat; the next one, or the training thread's next call, finds out more
            if lost_connection(exc) is None:
                raise


PRIVATE_CALLS = ["_create_new_trial", "_get_best_trial_id", "_get_stale_trial_ids", "_get_trials", "_set_trial_param"]  # Optuna's cache calls these
for _name in [n for n in dir(optuna.storages.BaseStorage) if not n.startswith("_")] + PRIVATE_CALLS:
    if _name != "record_heartbeat" and callable(getattr(optuna.storages.RDBStorage, _name, None)):
        setattr(PatientStorage, _name, patient(getattr(optuna.storages.RDBStorage, _name)))


class SQLiteStorage(PatientStorage):
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


def make_storage(url: str, heartbeat_seconds: int, patience: float = PATIENCE):
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
    storage_class = SQLiteStorage if sqlite else PatientStorage
    for _ in range(3):
        try:
            return storage_class(
                url,
                patience=patience,
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


def stored_plan(url: str, name: str) -> Optional[dict]:
    """The plan a storage keeps for the study or sweep ``name`` (made on another machine,
    perhaps): None when the storage holds no such study, empty when it was made before reglab
    kept its plan there."""
    try:
        return optuna.load_study(study_name=name, storage=make_storage(url, 10)).user_attrs.get(PLAN, {})
    except KeyError:
        return None
