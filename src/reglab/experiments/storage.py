"""Optuna storage for the trial queue: an RDB (SQLite by default, PostgreSQL for a cluster) with
heartbeats, whose stale trials are failed and re-enqueued, or a journal file on a shared disk
(no heartbeats). ``SQLiteStorage`` serializes the pop of a waiting trial with a file lock."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import TrialState

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from ..errors import UserError

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
POINT = "pair"  # user attribute holding a queued trial's point (its values, in order); named so since the first studies
STALE_AFTER = 3  # heartbeats a worker may miss before its trial is failed and retried
PLAN = "reglab_plan"  # study user attribute: the kind and resolved recipe, so that a worker needs only the storage


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
