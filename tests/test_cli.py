"""The command line as a user meets it: exit codes, one-line errors, files written."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from reglab.cli import main

from .conftest import SHARED_DATA, run_cli, write_recipe


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.lrr=0.1"], "unknown key 'optim.lrr'; did you mean 'optim.lr'?"),
        (["train.epochs=two"], "train.epochs: Input should be a valid integer"),
        (["optim.lr=-0.01"], "optim.lr: Input should be greater than 0"),
        (["model.dropout.rate=1.5"], "model.dropout.rate: Input should be less than 1"),
        (["data.path=does/not/exist"], "does/not/exist: image folder not found"),
        (["evaluate.logit_adjustment=maybe"], "evaluate.logit_adjustment: Input should be a valid number or 'fit' (got 'maybe')"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(tmp_path, capsys, overrides, message):
    recipe = write_recipe(tmp_path, "data: {source: image_folder, path: somewhere}\nmodel: {name: linear}\n")
    code, out, err = run_cli(capsys, "train", recipe, *overrides, "--out", tmp_path / "run", "--quiet")
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_overrides_may_follow_the_options_and_stray_words_are_still_refused(tmp_path, capsys, image_tree):
    recipe = image_folder_recipe(tmp_path, image_tree)
    code, _, err = run_cli(capsys, "train", recipe, "--out", tmp_path / "run", "--quiet", "train.epochs=1", "train.seed=5")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["status"] == "completed"
    assert len((tmp_path / "run" / "history.csv").read_text().splitlines()) == 2  # header + the one epoch asked for
    with pytest.raises(SystemExit) as stop:
        main(["train", str(recipe), "--out", str(tmp_path / "other"), "--quiet", "typo"])
    assert stop.value.code == 2 and "unrecognized arguments: typo" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_console_script_exit_code_and_stderr(tmp_path):
    recipe = write_recipe(tmp_path, "optim: {lr: -1}\n")
    done = subprocess.run([sys.executable, "-m", "reglab.cli", "train", str(recipe)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"reglab: error: {recipe}: optim.lr: Input should be greater than 0 (got -1)"


def image_folder_recipe(tmp_path, image_tree, extra: str = ""):
    """A 3-epoch linear model on the ``image_tree`` fixture; ``extra`` adds YAML lines."""
    return write_recipe(tmp_path, f"""
data: {{source: image_folder, path: {image_tree}, image_size: 12, val_fraction: 0.3}}
model: {{name: linear}}
optim: {{name: adam, lr: 0.01}}
train: {{epochs: 3, batch_size: 8}}
{extra}""")


def test_train_evaluate_predict_on_image_folders(tmp_path, capsys, image_tree, test_folder):
    recipe = image_folder_recipe(tmp_path, image_tree)
    run = tmp_path / "run"
    code, out, _ = run_cli(capsys, "train", recipe, "--out", run, "--quiet")
    assert code == 0
    code, out, _ = run_cli(capsys, "evaluate", run, "--data", image_tree)
    assert code == 0 and "macro_f1" in out and (run / "eval_images.json").exists()
    folder, labels = test_folder
    submission = tmp_path / "submission.csv"
    code, out, _ = run_cli(capsys, "predict", run, "--images", folder, "--out", submission, "--labels", labels)
    assert code == 0 and "wrote 9 predictions" in out and "accuracy" in out
    rows = list(csv.DictReader(submission.open()))
    assert [r["id"] for r in rows] == [f"{i:04d}" for i in range(9)]
    assert {r["label"] for r in rows} <= {"red", "green", "blue"}
    code, _, err = run_cli(capsys, "evaluate", run, "--data", folder)
    assert code == 2 and "pass --labels" in err


def test_evaluate_a_cifar_run_on_its_test_batch(tmp_path, capsys, cifar_tree):
    recipe = write_recipe(tmp_path, f"data: {{source: cifar, path: {cifar_tree}}}\nmodel: {{name: linear}}\ntrain: {{epochs: 1}}\n")
    assert run_cli(capsys, "train", recipe, "--out", tmp_path / "run", "--quiet")[0] == 0
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "run", "--data", cifar_tree)
    assert code == 0 and "6 samples" in out


def test_data_inspect(capsys, cifar_tree):
    code, out, _ = run_cli(capsys, "data", "inspect", cifar_tree)
    assert code == 0 and "cifar" in out and "imbalance ratio (largest/smallest) 1.00" in out
    code, _, err = run_cli(capsys, "data", "inspect", cifar_tree / "missing")
    assert code == 2 and "data folder not found" in err


def test_shared_typefaces_submission_has_the_competition_format(tmp_path, capsys):
    """Real data: train briefly on the shared typeface set and write its submission."""
    typefaces = SHARED_DATA / "typefaces"
    recipe = write_recipe(tmp_path, f"""
data: {{source: image_folder, path: {typefaces / 'train'}, image_size: 32}}
model: {{name: linear}}
optim: {{name: adam, lr: 0.001}}
train: {{epochs: 1}}
""")
    assert run_cli(capsys, "train", recipe, "--out", tmp_path / "run", "--quiet")[0] == 0
    submission = tmp_path / "submission.csv"
    code, out, _ = run_cli(capsys, "predict", tmp_path / "run", "--images", typefaces / "test", "--out", submission,
                           "--labels", typefaces / "test_labels.csv")  # fmt: skip
    assert code == 0 and "wrote 380 predictions" in out
    sample = list(csv.DictReader((typefaces / "sample_submission.csv").open()))
    written = list(csv.DictReader(submission.open()))
    assert [r["id"] for r in written] == [r["id"] for r in sample]


def test_instrument_run_is_evaluated_on_polyphonic_excerpts(tmp_path, capsys):
    """Real audio: train briefly on the shared IRMAS-layout clips, score the multi-label excerpts."""
    recipe = write_recipe(tmp_path, f"""
data: {{source: irmas, path: {SHARED_DATA / 'instruments' / 'train'}, cache_dir: {tmp_path / 'cache'},
        frontend: {{n_mels: 32, hop_length: 1024}}}}
model: {{name: instrunet, width: 0.25, input_norm: per_band}}
loss: {{name: bce, class_weights: inverse_frequency}}
optim: {{name: adam, lr: 0.003}}
augment: {{mixtures: {{p: 0.5}}, specaugment: {{freq_width: 4, time_width: 5}}}}
train: {{epochs: 2, batch_size: 64}}
evaluate: {{threshold: tuned, tuning_mixtures: 50, aggregate: topk}}
""")
    run = tmp_path / "run"
    assert run_cli(capsys, "train", recipe, "--out", run, "--quiet")[0] == 0
    assert (run / "thresholds.json").exists()
    code, out, _ = run_cli(capsys, "evaluate", run, "--data", SHARED_DATA / "instruments" / "test")
    assert code == 0 and "80 samples" in out and "micro_roc_auc" in out
    saved = json.loads((run / "eval_test.json").read_text())
    assert saved["aggregate"] == "topk" and len(saved["threshold"]) == 11 and len(saved["per_class"]) == 11
    rows = list(csv.DictReader((run / "eval_test_predictions.csv").open()))  # one row per excerpt, labels ;-joined
    assert len(rows) == 80 and all(row["label"] for row in rows)
    first = (SHARED_DATA / "instruments" / "test" / f"{rows[0]['id']}.txt").read_text().split()
    assert sorted(rows[0]["label"].split(";")) == sorted(first)
    decided = {c for c, t in zip(saved["per_class"], saved["threshold"]) if float(rows[0][f"p_{c}"]) >= t}
    assert set(filter(None, rows[0]["predicted"].split(";"))) == decided
    windows = list(csv.DictReader((run / "eval_test_windows.csv").open()))  # when, as well as which
    first = [w for w in windows if w["id"] == rows[0]["id"]]
    seconds = soundfile.info(str(SHARED_DATA / "instruments" / "test" / f"{rows[0]['id']}.flac")).duration
    assert len(first) == max(1, int(np.ceil((seconds - 3.0) / 1.5)) + 1) and [float(w["start"]) for w in first][:2] == [0.0, 1.5]
    assert {w["id"] for w in windows} == {r["id"] for r in rows}
    matrix = np.array(saved["cooccurrence"])  # which instruments are mistaken for which
    assert matrix.shape == (11, 11)
    missed = [sum(c in set(r["label"].split(";")) - set(r["predicted"].split(";")) for r in rows) for c in saved["per_class"]]
    assert list(np.diag(matrix)) == missed
    assert run_cli(capsys, "report", run)[0] == 0
    assert "Confusion of co-occurrence (test)" in (run / "report.html").read_text()
    assert "Scores over time (test, longest excerpt)" in (run / "report.html").read_text()


def test_the_task_level_monitor_picks_the_epoch_that_scores_best_on_validation_mixtures(tmp_path, capsys, folded_copies):
    """``val_mix_macro_f1`` is recorded every epoch; early stopping keeps its best epoch, and the
    restored weights score on the tuning mixtures exactly what that epoch recorded. The model is
    folded for inference once an epoch and once at the end, each time for both the clips and the
    mixtures."""
    recipe = write_recipe(tmp_path, f"""
data: {{source: irmas, path: {SHARED_DATA / 'instruments' / 'train'}, cache_dir: {tmp_path / 'cache'},
        frontend: {{n_mels: 32, hop_length: 1024}}}}
model: {{name: instrunet, width: 0.25, input_norm: per_band}}
loss: {{name: bce}}
optim: {{name: adam, lr: 0.003}}
augment: {{mixtures: {{p: 0.5}}, pitch_shift: {{p: 0.5}}, reverb: {{p: 0.3}}, compression: {{p: 0.3}}}}
train: {{epochs: 4, batch_size: 64, early_stopping: {{monitor: val_mix_macro_f1, restore_best: true}}}}
evaluate: {{threshold: tuned, tuning_mixtures: 60}}
""")
    run = tmp_path / "run"
    assert run_cli(capsys, "train", recipe, "--out", run, "--quiet")[0] == 0
    history = list(csv.DictReader((run / "history.csv").open()))
    scores = [float(row["val_mix_macro_f1"]) for row in history]
    assert len(scores) == 4 and all(0 <= s <= 1 for s in scores) and all(row["val_mix_micro_f1"] for row in history)
    final = json.loads((run / "metrics.json").read_text())
    assert final["best_epoch"] == 1 + int(np.argmax(scores))
    assert final["val_mixtures"]["macro_f1"] == pytest.approx(max(scores), abs=1e-9)
    assert len(folded_copies) == len(history) + 1


def test_data_inspect_on_audio_reports_clips_durations_and_rates(capsys):
    train = SHARED_DATA / "instruments" / "train"
    counts = {folder.name: len(list(folder.glob("*.flac"))) for folder in train.iterdir() if folder.is_dir()}
    code, out, _ = run_cli(capsys, "data", "inspect", train)
    assert code == 0, out
    assert f"irmas (audio clips), {sum(counts.values())} clips" in out
    assert f"imbalance ratio (largest/smallest) {max(counts.values()) / min(counts.values()):.2f}" in out
    assert "clip seconds (shortest / median / longest) 3.00 / 3.00 / 3.00" in out
    assert f"16000 Hz: {sum(counts.values())}" in out


def test_predict_images_with_probabilities_top_k_and_json(tmp_path, capsys, image_tree, test_folder):
    from PIL import Image

    recipe = image_folder_recipe(tmp_path, image_tree)
    run = tmp_path / "run"
    assert run_cli(capsys, "train", recipe, "--out", run, "--quiet")[0] == 0
    folder, labels = test_folder
    jpegs = tmp_path / "jpegs"
    jpegs.mkdir()
    for png in sorted(folder.glob("*.png")):
        Image.open(png).convert("RGB").save(jpegs / f"{png.stem}.jpg", quality=95)
    out = tmp_path / "s.csv"
    code, printed, _ = run_cli(capsys, "predict", run, "--images", jpegs, "--out", out, "--probabilities", "--top-k", "2",
                               "--labels", labels, "--json", tmp_path / "p.json")  # fmt: skip
    assert code == 0, printed
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 9 and list(rows[0]) == ["id", "label", "p_blue", "p_green", "p_red", "top_k"]
    for row in rows:
        probs = {c: float(row[f"p_{c}"]) for c in ("blue", "green", "red")}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        ranked = sorted(probs, key=probs.get, reverse=True)
        assert row["label"] == ranked[0] and row["top_k"].split(";") == ranked[:2]
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["predictions"] == 9 and f"accuracy {saved['scores']['accuracy']:.4f}" in printed


def test_json_output_of_evaluate_study_show_and_inspect(tmp_path, capsys, image_tree):
    recipe = image_folder_recipe(tmp_path, image_tree)
    assert run_cli(capsys, "train", recipe, "--out", tmp_path / "run", "--quiet")[0] == 0
    code, printed, _ = run_cli(capsys, "evaluate", tmp_path / "run", "--data", image_tree, "--json", tmp_path / "e.json")
    saved = json.loads((tmp_path / "e.json").read_text())
    assert code == 0 and f"macro_f1 {saved['macro_f1']:.4f}" in printed and set(saved["per_class"]) == {"red", "green", "blue"}
    code, printed, _ = run_cli(capsys, "data", "inspect", image_tree, "--json", tmp_path / "i.json")
    saved = json.loads((tmp_path / "i.json").read_text())
    assert code == 0 and saved["counts"] == {"red": 12, "green": 8, "blue": 6} and saved["imbalance"] == 2.0
    assert f"imbalance ratio (largest/smallest) {saved['imbalance']:.2f}" in printed and saved["image_sizes"] == {"12x12": 26}
    study = tmp_path / "study.yaml"
    study.write_text(recipe.read_text() + "study: {arms: {plain: {}, flip: {augment.hflip: 0.5}}, baseline: plain, seeds: [0, 1]}\n")
    assert run_cli(capsys, "study", study, "--workers", "1", "--quiet", "--out", tmp_path / "s")[0] == 0
    assert capsys.readouterr().out == ""  # --quiet: nothing on the terminal
    code, printed, _ = run_cli(capsys, "study", "show", tmp_path / "s", "--json", tmp_path / "s.json")
    saved = json.loads((tmp_path / "s.json").read_text())
    assert code == 0 and saved["finished"] == saved["total"] == 4 and [a["arm"] for a in saved["arms"]] == ["plain", "flip"]
    plain = saved["arms"][0]["value"]
    assert f"{plain['mean']:.4f}" in printed and f"({plain['low']:.4f}–{plain['high']:.4f})" in printed  # the cell wraps
    assert {(r["arm"], r["seed"]) for r in saved["runs"]} == {(a, s) for a in ("plain", "flip") for s in (0, 1)}


def test_study_and_sweep_actions_are_sub_commands_with_their_own_options(capsys):
    from reglab.cli import parse

    assert parse(["study", "r.yaml", "train.epochs=2"]).recipe == "r.yaml"  # `study RECIPE` is `study run RECIPE`
    assert parse(["study", "run", "r.yaml", "--workers", "0"]).workers == 0
    assert parse(["sweep", "show", "s"]).top == 10 and parse(["sweep", "confirm", "s"]).top == 3  # --top: one meaning each
    for argv in (["sweep", "run", "r.yaml", "--top", "3"], ["sweep", "show", "s", "--seeds", "3"], ["study", "show", "s", "--workers", "2"]):
        with pytest.raises(SystemExit) as exit_:
            parse(argv)
        assert exit_.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
