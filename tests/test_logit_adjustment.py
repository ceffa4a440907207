"""Post-hoc logit adjustment: the arithmetic, the fit of τ, and a run that predicts with it."""

import csv
import json

import numpy as np
import pytest
import torch

from reglab.inference.logit_adjustment import adjust, balanced_log_loss, fit_tau, log_prior

from .test_cli import image_folder_recipe, run_cli, write_recipe


def test_adjust_is_a_softmax_of_log_probabilities_minus_tau_log_prior():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    probs = torch.softmax(logits, 1).numpy()
    counts = np.array([40, 20, 10, 5])
    prior = torch.tensor(counts / counts.sum()).log()
    expected = torch.softmax(logits.double() - 0.7 * prior, 1).numpy()
    assert np.allclose(adjust(probs, log_prior(counts), 0.7), expected, atol=1e-6)
    assert np.allclose(adjust(probs, log_prior(counts), 0.0), probs, atol=1e-6)


def test_balanced_log_loss_weights_every_class_equally_by_hand():
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.2, 0.8]])
    y = np.array([0, 0, 0, 1])
    # class 0: mean −log 0.5; class 1: −log 0.8; each half the weight
    assert balanced_log_loss(probs, y) == pytest.approx((np.log(2) - np.log(0.8)) / 2)


def test_fit_tau_recovers_the_bias_a_model_has_toward_frequent_classes():
    # Samples of an imbalanced set; z_c = s·[c = y] + N(0, 1) noise, so the posterior of a
    # balanced set is softmax(s·z). A model biased by τ* toward frequent classes scores
    # softmax(s·z + τ*·log π); the class-balanced log loss is lowest at τ = τ*.
    rng = np.random.default_rng(0)
    counts = np.array([4000, 2000, 800, 300, 100])
    y = np.repeat(np.arange(5), counts)
    z = rng.normal(size=(len(y), 5))
    z[np.arange(len(y)), y] += 1.5
    prior = log_prior(counts)
    for planted in (0.0, 0.6, 1.2):
        scores = 1.5 * z + planted * prior
        probs = np.exp(scores - scores.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        assert fit_tau(probs, y, prior) == pytest.approx(planted, abs=0.1)


def test_a_run_predicts_with_the_adjustment_it_saved(tmp_path, capsys, image_tree, test_folder):
    recipe = image_folder_recipe(tmp_path, image_tree, "evaluate: {logit_adjustment: fit}\n")
    folder, labels = test_folder
    code, out, _ = run_cli(capsys, "train", recipe, "--out", tmp_path / "fit", "--quiet")
    assert code == 0
    saved = json.loads((tmp_path / "fit" / "logit_adjustment.json").read_text())
    assert -1.0 <= saved["tau"] <= 2.0 and saved["train_counts"] == {"blue": 4, "green": 6, "red": 8}
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert metrics["logit_adjustment_tau"] == saved["tau"]
    assert metrics["adjusted_balanced_log_loss"] <= metrics["val_balanced_log_loss"] + 1e-6  # τ = 0 is a candidate
    # a huge fixed τ sends every prediction to the rarest training class
    code, _, _ = run_cli(capsys, "train", recipe, "evaluate.logit_adjustment=100", "--out", tmp_path / "huge", "--quiet")
    assert code == 0
    code, out, _ = run_cli(capsys, "predict", tmp_path / "huge", "--images", folder, "--out", tmp_path / "sub.csv")
    assert code == 0
    assert {row["label"] for row in csv.DictReader((tmp_path / "sub.csv").open())} == {"blue"}
    (tmp_path / "huge" / "logit_adjustment.json").write_text('{"tau": 1')
    code, _, err = run_cli(capsys, "predict", tmp_path / "huge", "--images", folder, "--out", tmp_path / "sub.csv")
    assert code == 2 and "logit_adjustment.json: not valid JSON" in err and err.count("\n") == 1
    (tmp_path / "huge" / "logit_adjustment.json").unlink()
    code, _, err = run_cli(capsys, "predict", tmp_path / "huge", "--images", folder, "--out", tmp_path / "sub.csv")
    assert code == 2 and "logit_adjustment.json: missing" in err and err.count("\n") == 1


def test_logit_adjustment_of_a_sigmoid_loss_is_a_one_line_error(tmp_path, capsys, image_tree):
    recipe = write_recipe(tmp_path, f"data: {{source: image_folder, path: {image_tree}, image_size: 12}}\nmodel: {{name: linear}}\n")
    code, _, err = run_cli(capsys, "train", recipe, "loss.name=bce", "evaluate.logit_adjustment=fit", "--out", tmp_path / "run", "--quiet")
    assert code == 2 and "evaluate.logit_adjustment: needs single-label data and a softmax loss" in err and err.count("\n") == 1
