"""Sweeps as a user runs them: a grid over workers with one killed, seeded samplers, conditional
parameters, pruning, best.yaml, and confirmation of the winners over seeds."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from optuna.trial import TrialState

from reglab.cli import main
from reglab.experiments.storage import POINT
from reglab.recipe import load_recipe
from reglab.report import build_report
from reglab.rundir import RunDir
from reglab.experiments.study import Study, run_value
from reglab.experiments.sweep import Sweep
from reglab.training.run import train

from .conftest import SHARED_DATA, torch_threads, trials_reader, worker_mid_run

def on_digits(name: str, model: str, optim: str, epochs: int, search: str) -> str:
    """A sweep recipe on the built-in digits, ranked by validation accuracy."""
    return (f"name: {name}\ndata: {{source: digits}}\nmodel: {model}\noptim: {optim}\ntrain: {{epochs: {epochs}, batch_size: 64}}\n"
            f"search:\n  metric: val_accuracy\n  heartbeat_seconds: 1\n{search}")  # fmt: skip


GRID = on_digits("kill-grid", "{name: resnet18, width: 0.125}", "{name: adam, lr: 0.003}", 3, """  sampler: grid
  space:
    model.dropout.rate: {choice: [0.3, 0.4, 0.5]}
    optim.lr: {choice: [0.003, 0.001]}
""")
SMALL = on_digits("small", "{name: linear}", "{name: sgd, lr: 0.05}", 2, """  sampler: grid
  space:
    optim.lr: {choice: [0.05, 0.2, 1.0e+38]}
  cocktail:
    augment.mix: {mixup_alpha: {choice: [0.4]}}
""")
SAMPLED = on_digits("sampled", "{name: linear}", "{name: sgd, lr: 0.05}", 3, """  sampler: random
  trials: 8
  space:
    optim.lr: {loguniform: [0.001, 0.3]}
  cocktail:
    augment.mix: {mixup_alpha: {uniform: [0.1, 1.0]}}
""")


def write(tmp_path, text, **search):
    tree = yaml.safe_load(text)
    tree["search"].update(search)
    path = tmp_path / f"{tree['name']}.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def recorded(directory):
    """Point -> the trials that completed it."""
    done = {}
    for trial in Sweep(directory).optuna.get_trials(states=(TrialState.COMPLETE,)):
        done.setdefault(tuple(trial.user_attrs[POINT]), []).append(trial.number)
    return done


@pytest.mark.slow
def test_a_grid_runs_every_point_once_with_a_worker_killed_and_a_rerun(tmp_path):
    recipe, out = write(tmp_path, GRID), tmp_path / "grid"
    command = [sys.executable, "-m", "reglab.cli", "sweep", str(recipe), "--out", str(out), "--workers", "2", "--quiet"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, _ = worker_mid_run(trials_reader(out, Sweep), epochs=3, ready=lambda trials: sum(t.state == TrialState.COMPLETE for t in trials) >= 3)
    os.kill(victim, signal.SIGKILL)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 2 and "a worker exited" in err, err  # the other worker may have finished the grid meanwhile
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    done = recorded(out)
    assert set(done) == set(Sweep(out).points()) and len(done) == 6
    assert all(len(numbers) == 1 for numbers in done.values()), done  # no point ran twice
    killed = [t for t in Sweep(out).optuna.get_trials(states=(TrialState.FAIL,)) if t.user_attrs.get("worker_pid") == victim]
    assert len(killed) == 1 and tuple(killed[0].user_attrs[POINT]) in done  # its point was run again, once
    assert len([p for p in (out / "runs").iterdir()]) == 6  # no attempt left behind
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)  # nothing missing: nothing runs
    assert again.returncode == 0 and recorded(out) == done


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A finished 6-point grid: three rates (one diverges) x mixup off or on."""
    tmp = tmp_path_factory.mktemp("small")
    assert main(["sweep", str(write(tmp, SMALL)), "--out", str(tmp / "sweep"), "--workers", "0", "--quiet"]) == 0
    Sweep(tmp / "sweep").work()
    return tmp / "sweep"


def test_sweep_show_ranks_runs_and_a_diverged_one_is_last(small, tmp_path, capsys):
    assert main(["sweep", "show", str(small), "--json", str(tmp_path / "show.json")]) == 0
    shown = json.loads((tmp_path / "show.json").read_text())
    runs = shown["runs"]
    assert shown["finished"] == shown["total"] == 6 and [r["rank"] for r in runs] == list(range(1, 7))
    assert [r["status"] for r in runs[-2:]] == ["diverged", "diverged"]  # lr 1e38, with and without mixup
    assert all(r["params"]["optim.lr"] == 1e38 for r in runs[-2:])
    values = [r["value"] for r in runs[:4]]
    assert values == sorted(values, reverse=True)
    table = capsys.readouterr().out
    assert "rank" in table and "augment.mix?" in table and "diverged" in table and "best.yaml" in table


def test_the_command_of_a_finished_sweep_run_again_starts_no_worker(small, monkeypatch, capsys):
    """Nothing left to run: the command shows the table again at once, without starting worker processes."""
    from types import SimpleNamespace

    from reglab.experiments import worker

    monkeypatch.setattr(worker, "subprocess", SimpleNamespace(Popen=lambda *args, **kwargs: pytest.fail("a worker was started for a finished sweep")))
    assert main(["sweep", str(small.parent / "small.yaml"), "--out", str(small), "--workers", "2"]) == 0
    assert "sweep small: 6/6 configurations run" in capsys.readouterr().out


def test_a_conditional_parameter_exists_only_where_its_regularizer_is_on(small):
    for run in (small / "runs").iterdir():
        recipe = load_recipe(run / "recipe.yaml", saved=True)
        switch = "mixon" in run.name
        assert (recipe.augment.mix is not None) == switch
        if switch:
            assert recipe.augment.mix.mixup_alpha == 0.4


def test_best_yaml_trains_to_the_value_the_sweep_reported(small, tmp_path):
    main(["sweep", "show", str(small), "--json", str(tmp_path / "show.json")])
    best = json.loads((tmp_path / "show.json").read_text())["runs"][0]
    text = (small / "best.yaml").read_text()
    assert f"{best['value']:.4f}" in text.splitlines()[0] and f"OMP_NUM_THREADS={best['threads']}" in text
    with torch_threads(best["threads"]):
        result = train(load_recipe(small / "best.yaml"), tmp_path / "again")
    assert run_value(result.history, Sweep(small).config) == best["value"]


def test_sweep_confirm_turns_the_top_configurations_into_a_study_on_fresh_seeds(small, tmp_path, capsys):
    out = tmp_path / "confirm"
    assert main(["sweep", "confirm", str(small), "--top", "2", "--seeds", "3", "--workers", "0", "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "top1: optim.lr=" in shown and "top2: optim.lr=" in shown
    study = Study(out)
    assert Sweep(small).recipe.train.seed == 0 and Sweep(small).recipe.data.split_seed == 0  # what the sweep ranked on
    assert study.config.baseline == "top1" and set(study.config.arms) == {"top1", "top2"} and study.config.seeds == [1, 2, 3]
    assert study.config.split_follows_seed and "seeds 1, 2, 3" in (small / "confirm.yaml").read_text().splitlines()[0]
    study.work()
    swept = {row["name"]: row["value"] for row in Sweep(small).results()}
    top1 = Sweep(small).optuna.user_attrs["confirmation"]["arms"]["top1"]
    selected = [row["val_loss"] for row in RunDir(small / "runs" / top1).history()]
    for seed in (1, 2, 3):  # not the run that selected it, nor its split
        assert [row["val_loss"] for row in RunDir(study.run_path(("top1", seed))).history()] != selected
    html, _ = build_report(small)
    page = html.read_text()
    assert "Confirmation on fresh seeds" in page and f"{swept[top1]:.4f}" in page and "winner&#39;s curse" in page
    assert main(["study", "show", str(out), "--json", str(tmp_path / "study.json")]) == 0
    arms = {row["arm"]: row for row in json.loads((tmp_path / "study.json").read_text())["arms"]}
    assert arms["top1"]["seeds"] == arms["top2"]["seeds"] == 3
    low, high = arms["top2"]["value"]["low"], arms["top2"]["value"]["high"]
    assert low <= arms["top2"]["value"]["mean"] <= high
    assert arms["top2"]["verdict"] and arms["top2"]["p_value"] is not None
    assert "95% bootstrap intervals" in capsys.readouterr().out


def proposals(directory):
    trials = sorted(Sweep(directory).optuna.get_trials(), key=lambda t: t.number)
    return [t.params for t in trials if POINT in t.user_attrs]


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_the_same_sampled_sweep_proposes_the_same_configurations(tmp_path, sampler):
    recipe = write(tmp_path, SAMPLED, sampler=sampler, trials=4)
    for out in ("a", "b"):
        assert main(["sweep", str(recipe), "--out", str(tmp_path / out), "--workers", "0", "--quiet"]) == 0
        Sweep(tmp_path / out).work()
    first, second = proposals(tmp_path / "a"), proposals(tmp_path / "b")
    assert len(first) == 4 and first == second
    for params in first:  # mixup_alpha is sampled only when mixup is on
        assert ("augment.mix.mixup_alpha" in params) == params["augment.mix?"]
    other = write(tmp_path, SAMPLED.replace("name: sampled", "name: other"), sampler=sampler, trials=4, seed=1)
    main(["sweep", str(other), "--out", str(tmp_path / "c"), "--workers", "0", "--quiet"])
    Sweep(tmp_path / "c").work()
    assert proposals(tmp_path / "c") != first  # another seed, other proposals


def test_a_pruned_run_keeps_its_directory_history_and_row(tmp_path):
    recipe = write(tmp_path, SAMPLED, trials=8, pruner="successive_halving")
    assert main(["sweep", str(recipe), "--out", str(tmp_path / "s"), "--workers", "0", "--quiet"]) == 0
    sweep = Sweep(tmp_path / "s")
    sweep.work()
    rows = sweep.results()
    assert len(rows) == 8
    pruned = [row for row in rows if row["status"] == "pruned"]
    assert pruned, [row["status"] for row in rows]
    for row in pruned:
        history = RunDir(sweep.directory / "runs" / row["name"]).history()
        assert 1 <= len(history) == row["epochs_run"] < 3
        assert row["value"] == max(h["val_accuracy"] for h in history)
    states = {t.state for t in sweep.optuna.get_trials() if POINT in t.user_attrs}
    assert TrialState.PRUNED in states


def test_trials_bounds_a_sampled_sweep_and_a_rerun_can_extend_it(tmp_path):
    recipe = write(tmp_path, SAMPLED, trials=2)
    out = tmp_path / "s"
    main(["sweep", str(recipe), "--out", str(out), "--workers", "0", "--quiet"])
    Sweep(out).work()
    assert len(Sweep(out).results()) == 2
    assert main(["sweep", str(recipe), "--out", str(out), "--workers", "0", "--quiet", "--trials", "3"]) == 0
    Sweep(out).work()
    assert len(Sweep(out).results()) == 3
    assert main(["sweep", str(recipe), "optim.name=adam", "--out", str(out), "--workers", "0", "--quiet"]) == 2


def test_timeout_bounds_a_sampled_sweep(tmp_path):
    recipe = write(tmp_path, SAMPLED, trials=50)
    started = time.time()
    assert main(["sweep", str(recipe), "--out", str(tmp_path / "s"), "--workers", "1", "--timeout", "3", "--quiet"]) == 0
    assert time.time() - started < 60
    assert 1 <= len(Sweep(tmp_path / "s").results()) < 50  # no configuration is started after 3 s


@pytest.mark.parametrize("argv, needle", [
    (["--top", "0"], "--top 0: sweep confirm compares 1 or more configurations"),
    (["--seeds", "1"], "--seeds 1: a confirmation needs 2 or more seeds"),
    (["--seeds", "0,1,2"], "--seeds 0,1,2: seed 0 is one the sweep selected on"),
    (["--seeds", "3,3"], "a confirmation needs 2 or more different seeds"),
    (["--seeds", "a,b"], "--seeds a,b: a count, or seeds separated by commas"),
])  # fmt: skip
def test_a_confirmation_that_cannot_be_fresh_or_run_is_refused(small, tmp_path, capsys, argv, needle):
    before = sorted((p, p.stat().st_mtime_ns) for p in small.rglob("*") if p.name != "sweep.db")
    assert main(["sweep", "confirm", str(small), *argv, "--workers", "0", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists() and sorted((p, p.stat().st_mtime_ns) for p in small.rglob("*") if p.name != "sweep.db") == before


def test_best_yaml_trains_as_printed_and_stacking_is_the_studys_setting(tmp_path, capsys):
    recipe = write(tmp_path, SAMPLED.replace("epochs: 3", "epochs: 1"), trials=2)
    assert main(["sweep", str(recipe), "--out", str(tmp_path / "s"), "--workers", "0", "--quiet"]) == 0
    Sweep(tmp_path / "s").work()
    assert main(["sweep", "show", str(tmp_path / "s")]) == 0
    assert "ranked by best val_accuracy" in (tmp_path / "s" / "best.yaml").read_text().splitlines()[0]
    assert main(["train", str(tmp_path / "s" / "best.yaml"), "--out", str(tmp_path / "best"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sweep", str(recipe), "train.parallel_seeds=4", "--out", str(tmp_path / "t"), "--workers", "0"]) == 2
    assert "it moved to 'study.parallel_seeds'" in capsys.readouterr().err  # a worker setting, never in a run's recipe


@pytest.mark.parametrize("name", ["sweep.json", "sweep.yaml", "best.yaml", "confirm.yaml", "report.html"])
def test_json_and_out_never_overwrite_a_sweeps_own_files(small, tmp_path, capsys, name):
    target = small / name
    before = target.read_bytes() if target.exists() else None
    assert main(["sweep", "show", str(small), "--json", str(target)]) == 2
    assert main(["data", "inspect", str(SHARED_DATA / "typefaces" / "train"), "--json", str(target)]) == 2
    assert f"belongs to the sweep in {small}" in capsys.readouterr().err
    assert (target.read_bytes() if target.exists() else None) == before


@pytest.mark.slow
def test_a_multi_objective_sweep_ranks_its_pareto_front_first_and_draws_it(tmp_path, capsys):
    from reglab.cli import main

    path = tmp_path / "pareto.yaml"
    path.write_text(on_digits("pareto", "{name: linear}", "{name: sgd, lr: 0.05}", 2, """  sampler: random
  trials: 8
  metrics: [val_macro_f1, val_ece]
  space:
    optim.lr: {loguniform: [0.001, 1.0]}
    loss.label_smoothing: {uniform: [0.0, 0.4]}
""").replace("  metric: val_accuracy\n", ""))
    assert main(["sweep", str(path), "--out", str(tmp_path / "s"), "--workers", "1", "--quiet", "--json", str(tmp_path / "s.json")]) == 0
    runs = [r for r in json.loads((tmp_path / "s.json").read_text())["runs"] if r["status"] == "completed"]
    assert len(runs) >= 6

    def dominates(a, b):  # better or equal on both (macro F1 up, ECE down), better on one
        pa, pb = (a["values"]["val_macro_f1"], -a["values"]["val_ece"]), (b["values"]["val_macro_f1"], -b["values"]["val_ece"])
        return all(x >= y for x, y in zip(pa, pb)) and pa != pb

    front = [r for r in runs if r["front"] == 1]
    assert front and all(not dominates(other, r) for r in front for other in runs)  # the front is non-dominated
    assert all(any(dominates(other, r) for other in runs) for r in runs if r["front"] > 1)  # everything else is dominated
    assert [r["front"] for r in runs] == sorted(r["front"] for r in runs)  # the front ranks first
    html = (tmp_path / "s" / "report.html").read_text()
    assert "Pareto front" in html and "val_ece (min)" in html
    best = (tmp_path / "s" / "best.yaml").read_text()
    assert all(f"Pareto-optimal (val_macro_f1, val_ece): {r['name']}" in best for r in front)
    path.write_text(path.read_text().replace("  sampler: random\n", "  sampler: random\n  pruner: median\n"))
    assert main(["sweep", str(path), "--out", str(tmp_path / "other")]) == 2
    assert "pruners stop runs on one metric" in capsys.readouterr().err
