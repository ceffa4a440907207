"""A study or sweep in MLflow: one parent run (created with the plan, its id kept in the storage so
that workers anywhere find it) and each trained run its child, tagged with what it is (a study's
arm and seed, a sweep's configuration); when a study ends, each child is tagged with its arm's
verdict (``training/tracking.py`` logs the runs themselves)."""

from __future__ import annotations

from typing import Optional

from ..training.tracking import experiment_id, kinds_of, mlflow_client, tracking_uri

PARENT = "mlflow_parent_run"  # Optuna user attribute


def open_parent(engine) -> None:
    """The plan's parent run, when its runs log to MLflow (once: a rerun of the plan keeps it)."""
    if "mlflow" not in kinds_of(engine.recipe) or PARENT in engine.optuna.user_attrs:
        return
    client = mlflow_client(tracking_uri(engine.recipe))
    run = client.create_run(experiment_id(client, engine.name), run_name=engine.name, tags={"reglab.kind": engine.kind})
    engine.optuna.set_user_attr(PARENT, run.info.run_id)


def point_tags(engine, point: tuple) -> dict:
    """A trained point's tags: its plan, its name, what it is, its parent run."""
    tags = {"reglab.experiment": engine.name, "reglab.run": engine.run_name(point), "reglab.kind": engine.kind, **engine.describe(point)}
    parent: Optional[str] = engine.optuna.user_attrs.get(PARENT) if "mlflow" in kinds_of(engine.recipe) else None
    return {**tags, "mlflow.parentRunId": parent} if parent else tags


def tag_verdicts(engine, arms: list[dict]) -> None:
    """Every child run of a finished study tagged with its arm's verdict; the parent marked finished."""
    parent = engine.optuna.user_attrs.get(PARENT)
    if not parent or "mlflow" not in kinds_of(engine.recipe):
        return
    client = mlflow_client(tracking_uri(engine.recipe))
    verdicts = {row["arm"]: str(row.get("verdict", "")) for row in arms}
    experiment = client.get_run(parent).info.experiment_id
    for child in client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'", max_results=10000):
        arm = child.data.tags.get("arm")
        if arm in verdicts:
            client.set_tag(child.info.run_id, "verdict", verdicts[arm])
    client.set_terminated(parent, "FINISHED")
