"""Live tracking: TensorBoard's own event reader and a real MLflow tracking server (sqlite backend,
started on loopback here) see every epoch a run records, its recipe and its results; a study is a
parent MLflow run whose children carry their arm, seed and verdict."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import run_cli, write_recipe

RECIPE = "name: tracked\ndata: {source: digits, image_size: 8, classes: 4}\nmodel: {name: linear}\noptim: {lr: 0.05}\ntrain: {epochs: 3, batch_size: 64}\n"


def history(run):
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_tensorboard_reads_every_epoch_the_run_recorded(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = write_recipe(tmp_path, RECIPE.replace("batch_size: 64}", "batch_size: 64, log: [tensorboard]}"))
    code, _, err = run_cli(capsys, "train", recipe, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    rows = history(tmp_path / "run")
    for key in ("val_loss", "train_loss", "lr", "val_macro_f1", "gap_loss"):
        logged = events.Scalars(key)
        assert [e.step for e in logged] == [1, 2, 3]
        assert [e.value for e in logged] == pytest.approx([row[key] for row in rows], rel=1e-6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server on loopback with a sqlite backend, for this module's tests;
    without its job execution (eight more processes running GenAI jobs, which tracking never uses),
    its temporary files (the database's initialization lock) in its own folder rather than /tmp."""
    folder, port = tmp_path_factory.mktemp("mlflow"), free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                               "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "TMPDIR": str(folder)})  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow server did not start")
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_an_mlflow_server_holds_the_runs_epochs_recipe_and_results(mlflow_server, tmp_path, capsys):
    from mlflow import MlflowClient

    recipe = write_recipe(tmp_path, RECIPE.replace("batch_size: 64}", f"batch_size: 64, log: [mlflow], tracking_uri: '{mlflow_server}'}}"))
    code, _, err = run_cli(capsys, "train", recipe, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    client = MlflowClient(mlflow_server)
    run_id = json.loads((tmp_path / "run" / "meta.json").read_text())["mlflow_run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["optim.lr"] == "0.05" and run.data.params["model.name"] == "linear"
    rows = history(tmp_path / "run")
    logged = client.get_metric_history(run_id, "val_loss")
    assert [m.step for m in logged] == [1, 2, 3] and [m.value for m in logged] == pytest.approx([r["val_loss"] for r in rows])
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"metrics.json", "recipe.yaml", "report.html"} <= artifacts


@pytest.mark.slow
def test_a_study_is_a_parent_run_whose_children_carry_arm_seed_and_verdict(mlflow_server, tmp_path, capsys, monkeypatch):
    from mlflow import MlflowClient

    study = RECIPE.replace("name: tracked", "name: tracked-study") + (
        "study: {arms: {base: {}, fast: {optim.lr: 0.2}}, baseline: base, seeds: [0, 1], metric: val_loss, heartbeat_seconds: 2}\n")
    path = write_recipe(tmp_path, study, "study.yaml")
    monkeypatch.setenv("REGLAB_LOG", "mlflow")  # reaches the study's worker process too
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    code, _, err = run_cli(capsys, "study", path, "--out", tmp_path / "s", "--workers", "1", "--quiet")
    assert code == 0, err
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("tracked-study")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted((r.data.tags["arm"], r.data.tags["seed"]) for r in children) == [("base", "0"), ("base", "1"), ("fast", "0"), ("fast", "1")]
    assert {r.data.tags["arm"]: r.data.tags["verdict"] for r in children}["base"] == "baseline"
    assert all(r.data.tags["verdict"] for r in children)
