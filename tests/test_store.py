"""Studies and sweeps across machines that share no folder: created in one folder, two workers
started in two other empty folders with only ``--storage`` (the plan and the artifact store's path
live in the storage), one of them SIGKILLed mid-run and its run resumed by the other from the
training state it left in the store; ``show`` and ``report`` in another empty folder build the
table and the report from the storage and the store alone, and a sweep's confirmation is made,
run and reported the same way. On the PostgreSQL server CI starts when
``REGLAB_TEST_POSTGRES_URL`` is set, else on one SQLite file the folders share."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from reglab.experiments.artifacts import ARTIFACT, StateUploads
from reglab.experiments.storage import POINT
from reglab.experiments.study import Study
from reglab.experiments.sweep import Sweep

from .conftest import run_cli, worker_mid_run, write_recipe

RECIPE = """name: {name}
data: {{source: digits}}
model: {{name: linear}}
optim: {{name: sgd, lr: 0.05}}
augment: {{translate: {{fraction: 0.1}}}}
train: {{epochs: 12, batch_size: 64}}
study: {{arms: {{base: {{}}, l2: {{optim.l2: 0.01}}}}, baseline: base, seeds: [0, 1], heartbeat_seconds: 1}}
"""
SWEEP = RECIPE.replace("study: {{arms: {{base: {{}}, l2: {{optim.l2: 0.01}}}}, baseline: base, seeds: [0, 1], heartbeat_seconds: 1}}",
                       "search: {{metric: val_accuracy, heartbeat_seconds: 1, sampler: grid, space: {{optim.l2: {{choice: [0.0, 0.01]}}}}}}")


def reglab(*args, cwd):
    return [sys.executable, "-m", "reglab.cli", *map(str, args)], {"cwd": cwd, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}


def run_in(monkeypatch, capsys, folder, *args) -> tuple[int, str, str]:
    """``reglab ARGS`` in this process, as if started in ``folder`` (another machine's)."""
    monkeypatch.chdir(folder)
    return run_cli(capsys, *args)


def machines(tmp_path, *names) -> dict:
    """Empty folders standing for machines that share no disk, and the store they all reach."""
    folders = {name: tmp_path / name for name in (*names, "store")}
    for folder in folders.values():
        folder.mkdir()
    return folders


def storage_url(tmp_path) -> str:
    return os.environ.get("REGLAB_TEST_POSTGRES_URL") or f"sqlite:///{tmp_path / 'shared.db'}"


def created_in(folders, tmp_path, capsys, engine, text: str):
    """A study or sweep created in the creator's folder with the shared storage and store, no
    workers; returns it (as the creator sees it) and the storage URL."""
    name, url = f"{engine.kind}-store-{os.getpid()}-{int(time.time())}", storage_url(tmp_path)
    recipe = write_recipe(folders["creator"], text.format(name=name))
    code, _, err = run_cli(capsys, engine.kind, recipe, "--storage", url, "--store", folders["store"], "--workers", "0", "--out", folders["creator"] / "s")
    assert code == 0, err
    return engine(folders["creator"] / "s"), url


def work_with_a_kill(engine, url, name, folders) -> tuple:
    """Two workers in their own folders with only ``--storage URL --study NAME``; the one whose run
    got past its first epoch is SIGKILLed, the other finishes the plan. Returns the killed worker's
    points (their runs were retried by the other)."""
    workers = {}
    for key in ("worker_b", "worker_c"):
        command, options = reglab("worker", "--storage", url, "--study", name, "--quiet", cwd=folders[key])
        workers[key] = subprocess.Popen(command, **options)
    pid, number = worker_mid_run(engine.optuna.get_trials, epochs=12, pids={process.pid for process in workers.values()})
    victim = next(key for key, process in workers.items() if process.pid == pid)
    workers[victim].send_signal(signal.SIGKILL)
    killed = tuple(engine.optuna.get_trials()[number].user_attrs[POINT])
    survivor = next(key for key in workers if key != victim)
    _, err = workers[survivor].communicate(timeout=300)
    assert workers[survivor].returncode == 0, err
    return killed


def recorded_points(engine) -> list:
    return sorted(tuple(t.user_attrs[POINT]) for t in engine.optuna.get_trials(states=(TrialState.COMPLETE,)) if "summary" in t.user_attrs)


def assert_resumed_from_the_store(run, store) -> None:
    """The killed run was resumed on the other machine from the training state its dead attempt
    uploaded, and no training state is left in the store once every run is recorded."""
    assert json.loads((run / "meta.json").read_text())["resumed_after"], f"{run.name} started over instead of resuming"
    assert not [path.name for path in store.iterdir() if path.name.startswith("state-")]


@pytest.mark.slow
def test_workers_in_empty_folders_share_a_study_through_storage_and_store_alone(tmp_path, capsys, monkeypatch):
    folders = machines(tmp_path, "creator", "worker_b", "worker_c", "reader")
    creator, url = created_in(folders, tmp_path, capsys, Study, RECIPE)
    name = creator.name
    killed = work_with_a_kill(creator, url, name, folders)
    assert recorded_points(creator) == [("base", 0), ("base", 1), ("l2", 0), ("l2", 1)]  # each once
    assert not list((folders["reader"]).iterdir())

    code, _, err = run_in(monkeypatch, capsys, folders["reader"], "study", "show", "--storage", url, "--study", name, "--json", "table.json")
    assert code == 0, err
    table = json.loads((folders["reader"] / "table.json").read_text())
    assert table["finished"] == 4 and {arm["arm"] for arm in table["arms"]} == {"base", "l2"}
    code, _, err = run_in(monkeypatch, capsys, folders["reader"], "report", f"studies/{name}")
    assert code == 0, err
    runs = folders["reader"] / "studies" / name / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["base-seed0", "base-seed1", "l2-seed0", "l2-seed1"]  # fetched from the store
    assert all((run / "history.jsonl").is_file() and (run / "best.pt").is_file() for run in runs.iterdir())
    assert_resumed_from_the_store(runs / f"{killed[0]}-seed{killed[1]}", folders["store"])
    html = (folders["reader"] / "studies" / name / "report.html").read_text()
    assert "Curves per arm" in html and "Learnt weights, arm beside arm" in html


@pytest.mark.slow
def test_a_sweep_and_its_confirmation_run_on_machines_that_share_only_storage_and_store(tmp_path, capsys, monkeypatch):
    folders = machines(tmp_path, "creator", "worker_b", "worker_c", "confirmer", "reader")
    creator, url = created_in(folders, tmp_path, capsys, Sweep, SWEEP)
    name = creator.name
    killed = work_with_a_kill(creator, url, name, folders)
    assert recorded_points(creator) == [(0.0,), (0.01,)]

    code, out, err = run_in(monkeypatch, capsys, folders["confirmer"], "sweep", "confirm", "--storage", url, "--study", name, "--top", "2",
                            "--seeds", "2", "--workers", "0")  # fmt: skip
    assert code == 0, err
    assert f"--study {name}-confirm" in out  # how another machine joins it
    code, _, err = run_in(monkeypatch, capsys, folders["worker_b"], "worker", "--storage", url, "--study", f"{name}-confirm", "--quiet")
    assert code == 0, err

    code, _, err = run_in(monkeypatch, capsys, folders["reader"], "sweep", "show", "--storage", url, "--study", name, "--json", "sweep.json")
    assert code == 0, err
    assert json.loads((folders["reader"] / "sweep.json").read_text())["finished"] == 2
    code, _, err = run_in(monkeypatch, capsys, folders["reader"], "study", "show", "--storage", url, "--study", f"{name}-confirm",
                          "--json", "confirm.json")  # fmt: skip
    assert code == 0, err
    confirmation = json.loads((folders["reader"] / "confirm.json").read_text())
    assert confirmation["finished"] == 4 and {arm["arm"] for arm in confirmation["arms"]} == {"top1", "top2"}
    code, _, err = run_in(monkeypatch, capsys, folders["reader"], "report", f"sweeps/{name}")
    assert code == 0, err
    html = (folders["reader"] / "sweeps" / name / "report.html").read_text()
    assert "Confirmation on fresh seeds" in html and "Curves" in html
    runs = folders["reader"] / "sweeps" / name / "runs"
    killed_run = runs / creator.run_name(killed)
    assert (killed_run / "best.pt").is_file()
    assert_resumed_from_the_store(killed_run, folders["store"])


def test_a_name_the_storage_holds_with_another_plan_is_refused_and_the_same_plan_is_joined(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = write_recipe(tmp_path, RECIPE.format(name="taken"), "first.yaml")
    assert run_cli(capsys, "study", first, "--storage", url, "--workers", "0", "--out", tmp_path / "a")[0] == 0
    other = write_recipe(tmp_path, RECIPE.format(name="taken").replace("optim.l2: 0.01", "optim.l2: 0.1"), "other.yaml")
    code, _, err = run_cli(capsys, "study", other, "--storage", url, "--workers", "0", "--out", tmp_path / "b")
    assert code == 2 and err.count("\n") == 1 and "holds a study named 'taken' with another plan" in err
    assert not (tmp_path / "b").exists()
    code, _, err = run_cli(capsys, "study", first, "--storage", url, "--workers", "0", "--out", tmp_path / "c")
    assert code == 0, err
    assert len(Study(tmp_path / "c").optuna.get_trials()) == 4  # joined: nothing enqueued twice


def test_a_run_whose_upload_fails_stays_unrecorded_and_runs_again(tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    recipe = write_recipe(tmp_path, RECIPE.format(name="upload").replace("seeds: [0, 1]", "seeds: [0]").replace("epochs: 12", "epochs: 3"))
    assert run_cli(capsys, "study", recipe, "--store", store, "--workers", "0", "--out", tmp_path / "s")[0] == 0
    sent = StateUploads.epoch_end

    def then_the_store_goes(self, epoch):  # the store vanishes mid-run, after the first epoch's upload
        sent(self, epoch)
        shutil.rmtree(store, ignore_errors=True)

    monkeypatch.setattr(StateUploads, "epoch_end", then_the_store_goes)
    study = Study(tmp_path / "s")
    study.quiet = True
    study.work()
    trials = study.optuna.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 2 and not any("summary" in t.user_attrs for t in trials)  # not recorded
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "trial 0 failed: the plan's artifact store" in err  # one line a trial

    monkeypatch.setattr(StateUploads, "epoch_end", sent)
    store.mkdir()
    assert run_cli(capsys, "study", recipe, "--store", store, "--workers", "0", "--out", tmp_path / "s")[0] == 0  # queues them again
    study.work()
    done = [t for t in study.optuna.get_trials(states=(TrialState.COMPLETE,)) if ARTIFACT in t.user_attrs]
    assert sorted(tuple(t.user_attrs[POINT]) for t in done) == [("base", 0), ("l2", 0)]
    assert sorted(p.name for p in (tmp_path / "s" / "runs").iterdir()) == ["base-seed0", "l2-seed0"]  # no dead attempt left


@pytest.fixture
def s3(monkeypatch):
    """An S3-compatible server on a loopback port (moto's standalone server: the S3 API over HTTP,
    objects in memory) with a bucket ``runs``; boto3 finds it through ``AWS_ENDPOINT_URL``, in this
    process and in the workers it starts."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "reglab", "AWS_SECRET_ACCESS_KEY": "reglab",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket="runs")
    yield client
    server.stop()


@pytest.mark.slow
def test_runs_archived_in_an_s3_bucket_are_fetched_by_a_reader_elsewhere(tmp_path, capsys, monkeypatch, s3):
    folders = {name: tmp_path / name for name in ("creator", "reader")}
    for folder in folders.values():
        folder.mkdir()
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    recipe = write_recipe(folders["creator"], RECIPE.format(name="in-s3").replace("seeds: [0, 1]", "seeds: [0]").replace("epochs: 12", "epochs: 3"))
    code, _, err = run_cli(capsys, "study", recipe, "--storage", url, "--store", "s3://runs/team-a", "--workers", "0", "--out", folders["creator"] / "s")
    assert code == 0, err
    code, _, err = run_cli(capsys, "worker", folders["creator"] / "s", "--quiet")  # a worker in this process
    assert code == 0, err
    keys = [entry["Key"] for entry in s3.list_objects_v2(Bucket="runs")["Contents"]]
    assert len(keys) == 2 and all(key.startswith("team-a/") for key in keys)  # one archive a run, under the prefix; no state left
    code, _, err = run_in(monkeypatch, capsys, folders["reader"], "study", "show", "--storage", url, "--study", "in-s3")
    assert code == 0, err
    code, _, err = run_in(monkeypatch, capsys, folders["reader"], "report", "studies/in-s3/runs/l2-seed0")  # one run, as predict would
    assert code == 0, err
    assert [p.name for p in (folders["reader"] / "studies" / "in-s3" / "runs").iterdir()] == ["l2-seed0"]  # that one fetched, and kept
    assert (folders["reader"] / "studies" / "in-s3" / "runs" / "l2-seed0" / "report.html").is_file()
    code, _, err = run_in(monkeypatch, capsys, folders["reader"], "report", "studies/in-s3")
    assert code == 0, err
    runs = folders["reader"] / "studies" / "in-s3" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["base-seed0", "l2-seed0"]
    assert all((run / "best.pt").is_file() for run in runs.iterdir())


def test_a_bucket_that_cannot_be_written_is_one_line_and_nothing_is_written(tmp_path, capsys, s3):
    recipe = write_recipe(tmp_path, RECIPE.format(name="no-bucket"))
    code, _, err = run_cli(capsys, "study", recipe, "--store", "s3://no-such-bucket", "--workers", "0", "--out", tmp_path / "s")
    assert code == 2 and err.count("\n") == 1 and "--store s3://no-such-bucket: cannot write to the bucket" in err
    assert not (tmp_path / "s").exists()


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


def test_a_plan_pins_its_precision_and_a_machine_that_cannot_train_at_it_refuses(tmp_path, capsys, monkeypatch):
    import reglab.device
    import reglab.experiments.engine
    from reglab.device import pinned_amp

    one_run = RECIPE.replace("seeds: [0, 1]", "seeds: [0]").replace("epochs: 12", "epochs: 1")
    recipe = write_recipe(tmp_path, one_run.format(name="pinned"))
    assert run_cli(capsys, "study", recipe, "--workers", "0", "--out", tmp_path / "s")[0] == 0
    here = pinned_amp("auto", "linear")  # 'off' on a CPU, 'bf16' on a CUDA GPU with bfloat16
    assert Study(tmp_path / "s").recipe.train.amp == here  # auto, made concrete when the study was created
    monkeypatch.setattr(reglab.experiments.engine, "pinned_amp", lambda device, model: "off" if here == "bf16" else "bf16")
    code, _, err = run_cli(capsys, "study", recipe, "--workers", "0", "--out", tmp_path / "s")  # the same command on a machine that
    assert code == 0, err  # would resolve auto otherwise: the same study, still at its pinned precision
    assert Study(tmp_path / "s").recipe.train.amp == here
    Study(tmp_path / "s").work()
    meta = json.loads((tmp_path / "s" / "runs" / "base-seed0" / "meta.json").read_text())
    assert meta["precision"] == {"off": "float32", "bf16": "bfloat16"}[here]

    recipe = write_recipe(tmp_path, one_run.format(name="bf16").replace("train: {", "train: {amp: bf16, device: cpu, "), "bf16.yaml")
    assert run_cli(capsys, "study", recipe, "--workers", "0", "--out", tmp_path / "b")[0] == 0
    monkeypatch.setattr(reglab.device, "cpu_has_bf16", lambda: False)  # a worker on a CPU without bfloat16 instructions
    code, _, err = run_cli(capsys, "worker", tmp_path / "b")
    assert code == 2 and err.count("\n") == 1 and "train.amp=bf16, pinned when it was created, and this machine cannot" in err
    assert not (tmp_path / "b" / "runs").exists()  # refused before taking a trial


def test_a_worker_whose_machine_lacks_the_data_refuses_before_taking_a_trial(tmp_path, capsys):
    recipe = write_recipe(tmp_path, RECIPE.format(name="elsewhere").replace("{source: digits}", "{source: image_folder, path: /mnt/nowhere}"))
    assert run_cli(capsys, "study", recipe, "--workers", "0", "--out", tmp_path / "s")[0] == 0  # the creating machine need not see it
    code, _, err = run_cli(capsys, "worker", tmp_path / "s")
    assert code == 2 and err.count("\n") == 1 and "/mnt/nowhere: not found on this machine (data.path of" in err
    assert all(t.state == TrialState.WAITING for t in Study(tmp_path / "s").optuna.get_trials())  # no trial taken


def test_a_gpu_study_can_be_created_on_a_machine_without_one(tmp_path, capsys):
    recipe = write_recipe(tmp_path, RECIPE.format(name="gpu").replace("train: {", "train: {device: cuda, "))
    assert run_cli(capsys, "study", recipe, "--workers", "0", "--out", tmp_path / "s")[0] == 0  # a login node queues it
    assert Study(tmp_path / "s").recipe.train.amp == "bf16"  # what auto means on the GPUs that will run it
