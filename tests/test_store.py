"""A study across machines that share no folder: created in one folder, two workers started in two
other empty folders with only ``--storage`` (the plan and the artifact store's path live in the
storage), one of them SIGKILLed mid-run; ``study show`` and ``report`` in a fourth empty folder
build the table and the report from the storage and the store alone. On the PostgreSQL server CI
starts when ``REGLAB_TEST_POSTGRES_URL`` is set, else on one SQLite file the folders share."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from reglab.experiments.storage import POINT
from reglab.experiments.study import Study

from .conftest import run_cli, write_recipe

RECIPE = """name: {name}
data: {{source: digits}}
model: {{name: linear}}
optim: {{name: sgd, lr: 0.05}}
augment: {{translate: {{fraction: 0.1}}}}
train: {{epochs: 12, batch_size: 64}}
study: {{arms: {{base: {{}}, l2: {{optim.l2: 0.01}}}}, baseline: base, seeds: [0, 1], heartbeat_seconds: 1}}
"""


def reglab(*args, cwd):
    return [sys.executable, "-m", "reglab.cli", *map(str, args)], {"cwd": cwd, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}


@pytest.mark.slow
def test_workers_in_empty_folders_share_a_study_through_storage_and_store_alone(tmp_path, capsys):
    folders = {name: tmp_path / name for name in ("creator", "worker_b", "worker_c", "reader", "store")}
    for folder in folders.values():
        folder.mkdir()
    name = f"store-{os.getpid()}-{int(time.time())}"
    url = os.environ.get("REGLAB_TEST_POSTGRES_URL") or f"sqlite:///{tmp_path / 'shared.db'}"
    recipe = write_recipe(folders["creator"], RECIPE.format(name=name))
    code, _, err = run_cli(capsys, "study", recipe, "--storage", url, "--store", folders["store"], "--workers", "0", "--out", folders["creator"] / "s")
    assert code == 0, err

    workers = {}
    for key in ("worker_b", "worker_c"):
        command, options = reglab("worker", "--storage", url, "--study", name, "--quiet", cwd=folders[key])
        workers[key] = subprocess.Popen(command, **options)
    creator = Study(folders["creator"] / "s")
    deadline, victim = time.time() + 120, None
    while victim is None and time.time() < deadline:  # a worker's run past its first epoch
        time.sleep(0.1)
        running = creator.optuna.get_trials(states=(TrialState.RUNNING,))
        pids = {t.user_attrs.get("worker_pid") for t in running if len(t.intermediate_values) >= 1}
        victim = next((key for key, process in workers.items() if process.pid in pids), None)
    assert victim is not None, "no run reached its first epoch"
    workers[victim].send_signal(signal.SIGKILL)
    survivor = next(key for key in workers if key != victim)
    _, err = workers[survivor].communicate(timeout=300)
    assert workers[survivor].returncode == 0, err

    done = [t for t in creator.optuna.get_trials(states=(TrialState.COMPLETE,)) if "summary" in t.user_attrs]
    assert sorted(tuple(t.user_attrs[POINT]) for t in done) == [("base", 0), ("base", 1), ("l2", 0), ("l2", 1)]  # each once
    assert not list((folders["reader"]).iterdir())

    command, options = reglab("study", "show", "--storage", url, "--study", name, "--json", "table.json", cwd=folders["reader"])
    shown = subprocess.run(command, **options)
    assert shown.returncode == 0, shown.stderr
    table = json.loads((folders["reader"] / "table.json").read_text())
    assert table["finished"] == 4 and {arm["arm"] for arm in table["arms"]} == {"base", "l2"}
    command, options = reglab("report", f"studies/{name}", cwd=folders["reader"])
    reported = subprocess.run(command, **options)
    assert reported.returncode == 0, reported.stderr
    runs = folders["reader"] / "studies" / name / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["base-seed0", "base-seed1", "l2-seed0", "l2-seed1"]  # fetched from the store
    assert all((run / "history.jsonl").is_file() and (run / "best.pt").is_file() for run in runs.iterdir())
    html = (folders["reader"] / "studies" / name / "report.html").read_text()
    assert "Curves per arm" in html and "Learnt weights, arm beside arm" in html


@pytest.mark.parametrize("store", ["missing", "a file"])
def test_an_unusable_store_is_one_line_and_nothing_is_written(tmp_path, capsys, store):
    path = tmp_path / store
    if store == "a file":
        path.write_text("")
    recipe = write_recipe(tmp_path, RECIPE.format(name="bad-store"))
    code, _, err = run_cli(capsys, "study", recipe, "--store", path, "--workers", "0", "--out", tmp_path / "s")
    assert code == 2 and err.count("\n") == 1 and f"--store {path}: not a folder" in err
    assert not (tmp_path / "s").exists()


def test_the_cluster_examples_are_a_valid_slurm_script_and_kubernetes_job():
    import yaml

    from .conftest import ROOT

    cluster = ROOT / "examples" / "cluster"
    assert subprocess.run(["bash", "-n", str(cluster / "slurm.sh")], capture_output=True).returncode == 0
    assert "reglab worker --storage" in (cluster / "slurm.sh").read_text()
    job = yaml.safe_load((cluster / "kubernetes-job.yaml").read_text())
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job" and job["metadata"]["name"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("OnFailure", "Never")  # what a Job requires
    container = pod["containers"][0]
    assert container["name"] and container["image"] and container["command"][:2] == ["reglab", "worker"]
    volumes = {v["name"] for v in pod["volumes"]}
    assert all(mount["name"] in volumes for mount in container["volumeMounts"])
