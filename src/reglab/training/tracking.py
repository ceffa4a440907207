"""Live tracking in the tools researchers keep open: TensorBoard (its own event files, through
``torch.utils.tensorboard``, in ``<run>/tensorboard``) and MLflow (its client, any tracking URI).
A run logs its resolved recipe as parameters, every epoch's values with the epoch as step, and at
the end ``metrics.json``, ``recipe.yaml`` and the report as artifacts. ``train.log`` chooses them;
``REGLAB_LOG=tensorboard,mlflow`` adds them to every run (a study's or a sweep's workers too).
A study or sweep is a parent MLflow run; each of its runs a child tagged with what it is."""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Optional

from ..errors import UserError, first_line

ENVIRONMENT = "REGLAB_LOG"
KINDS = ("tensorboard", "mlflow")
PARAM_LIMIT = 6000  # MLflow's longest parameter value


def kinds_of(recipe) -> list[str]:
    """The trackers a run logs to: ``train.log`` and the environment's."""
    extra = [k.strip() for k in os.environ.get(ENVIRONMENT, "").split(",") if k.strip()]
    for kind in extra:
        if kind not in KINDS:
            raise UserError(f"{ENVIRONMENT}={os.environ[ENVIRONMENT]}: unknown tracker '{kind}'; one of {', '.join(KINDS)}")
    return list(dict.fromkeys([*recipe.train.log, *extra]))


def check_available(recipe) -> None:
    """Refuse, before anything is written, a tracker whose package is missing."""
    kinds = kinds_of(recipe)
    if "mlflow" in kinds:
        mlflow_client(tracking_uri(recipe))
    if "tensorboard" in kinds and importlib.util.find_spec("tensorboard") is None:
        raise UserError("train.log: tensorboard is not installed; pip install 'reglab[track]' (or tensorboard)")


def tracking_uri(recipe) -> str:
    """``train.tracking_uri``, else MLflow's environment variable, else ``mlflow.db`` in the current
    folder (MLflow's own default store, SQLite; ``mlflow ui`` run there shows it)."""
    return recipe.train.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def mlflow_client(uri: str):
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise UserError("train.log: mlflow is not installed; pip install 'reglab[track]' (or mlflow)") from None
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its store's set-up notes are not the user's business
    try:
        return MlflowClient(uri)
    except Exception as exc:
        raise UserError(f"train.tracking_uri: MLflow cannot use {uri} ({type(exc).__name__}: {first_line(exc)})") from None


def experiment_id(client, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another worker created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def flat(tree: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)[:PARAM_LIMIT]
    return out


class MLflowRun:
    """One reglab run as an MLflow run (reopened, not duplicated, when the run resumes)."""

    def __init__(self, recipe, run_path: Path, tags: dict, resumed_id: Optional[str]):
        self.client = mlflow_client(tracking_uri(recipe))
        try:
            if resumed_id:
                self.id = resumed_id
                self.client.update_run(self.id, status="RUNNING")
            else:
                experiment = experiment_id(self.client, tags.get("reglab.experiment") or recipe.name or "reglab")
                run = self.client.create_run(experiment, run_name=tags.get("reglab.run") or run_path.name, tags={k: str(v) for k, v in tags.items()})
                self.id = run.info.run_id
                params = flat(recipe.to_dict())
                from mlflow.entities import Param

                items = [Param(k, v) for k, v in params.items()]
                for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters a call
                    self.client.log_batch(self.id, params=items[start : start + 100])
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"train.tracking_uri: MLflow at {tracking_uri(recipe)} refused the run ({type(exc).__name__}: {first_line(exc)})") from None

    def epoch(self, row: dict) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        values = [Metric(k, float(v), stamp, int(row["epoch"])) for k, v in row.items() if k != "epoch" and isinstance(v, (int, float))]
        self.client.log_batch(self.id, metrics=values)

    def finish(self, run_path: Path, status: str) -> None:
        for name in ("metrics.json", "recipe.yaml", "meta.json", "history.jsonl"):
            if (run_path / name).is_file():
                self.client.log_artifact(self.id, str(run_path / name))
        self.client.set_terminated(self.id, "FINISHED" if status in ("completed", "early_stopped") else "KILLED")


class TensorBoardRun:
    def __init__(self, run_path: Path, recipe):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_path / "tensorboard"))
        self.writer.add_text("recipe", "```\n" + "\n".join(f"{k}: {v}" for k, v in flat(recipe.to_dict()).items()) + "\n```")

    def epoch(self, row: dict) -> None:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, int(row["epoch"]))
        self.writer.flush()

    def finish(self, run_path: Path, status: str) -> None:
        self.writer.close()


class Tracking:
    """The trackers of one run; ``state`` (kept in ``meta.json``) lets a resumed run continue its
    MLflow run."""

    def __init__(self, recipe, run_path: Path, tags: Optional[dict] = None, state: Optional[dict] = None):
        kinds, state = kinds_of(recipe), state or {}
        self.trackers = []
        self.mlflow: Optional[MLflowRun] = None
        if "tensorboard" in kinds:
            self.trackers.append(TensorBoardRun(run_path, recipe))
        if "mlflow" in kinds:
            self.mlflow = MLflowRun(recipe, run_path, tags or {}, state.get("mlflow_run_id"))
            self.trackers.append(self.mlflow)

    @property
    def state(self) -> dict:
        return {"mlflow_run_id": self.mlflow.id} if self.mlflow else {}

    def epoch(self, row: dict) -> None:
        for tracker in self.trackers:
            tracker.epoch(row)

    def finish(self, run_path: Path, status: str) -> None:
        for tracker in self.trackers:
            tracker.finish(run_path, status)


def attach_report(run_path: Path, meta: dict, recipe) -> None:
    """The report of a finished run, added to its MLflow run once it is written."""
    if meta.get("mlflow_run_id") and "mlflow" in kinds_of(recipe):
        client = mlflow_client(tracking_uri(recipe))
        for name in ("report.html", "report.md"):
            if (run_path / name).is_file():
                client.log_artifact(meta["mlflow_run_id"], str(run_path / name))
