"""Run reports: one HTML page that opens anywhere, and Markdown, rebuilt from a run directory."""

import base64
import json
import re
import shutil
import time

import numpy as np
import pytest

from reglab.cli import main
from reglab.metrics import expected_calibration_error

from .conftest import write_image_folder


def test_ece_by_hand_on_a_tiny_case():
    # confidences 0.9, 0.9 (bin 14: one right, one wrong) and 0.6, 0.6 (bin 9: both right)
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    truth = np.array([0, 1, 1, 1])
    by_hand = 0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6)
    assert expected_calibration_error(probs, truth) == pytest.approx(by_hand)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == pytest.approx(0.0)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A trained linear run whose class names are markup."""
    root = tmp_path_factory.mktemp("report")
    names = ["<script>alert(1)<", "plain", "a | b"]
    write_image_folder(root / "data", {name: 8 for name in names})
    recipe = root / "r.yaml"
    recipe.write_text(f"data: {{source: image_folder, path: {root / 'data'}, image_size: 12, val_fraction: 0.5}}\n"
                      "model: {name: linear}\noptim: {name: adam, lr: 0.01}\ntrain: {epochs: 3, batch_size: 4}\n")  # fmt: skip
    assert main(["train", str(recipe), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run", names


def test_training_writes_a_self_contained_report(hostile_run):
    run, names = hostile_run
    html = (run / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 8  # loss, scores, gap, classes, confusion, reliability, true-class histogram, weights
    assert all(base64.b64decode(data).startswith(b"\x89PNG") and len(data) > 1000 for data in images)
    assert "http" not in html.replace("http-equiv", "") and "<script" not in html.replace("&lt;script", "")
    assert "&lt;script&gt;alert(1)&lt;" in html  # shown as text, never run
    metrics = __import__("json").loads((run / "metrics.json").read_text())
    assert f"<td>{metrics['macro_f1']:.4f}</td>" in html and f"<td>{metrics['ece']:.4f}</td>" in html
    for name, row in metrics["per_class"].items():
        assert f"{row['precision']:.3f}" in html
    markdown = (run / "report.md").read_text()
    assert "a \\| b" in markdown and f"| macro_f1 | {metrics['macro_f1']:.4f} |" in markdown
    figures = re.findall(r"\]\((report_files/\w+\.png)\)", markdown)
    assert len(figures) == 8 and all((run / f).stat().st_size > 1000 for f in figures)


def test_report_is_rebuilt_from_stored_results_in_seconds(hostile_run, tmp_path, capsys):
    run, _ = hostile_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "report.html").unlink()
    started = time.perf_counter()
    assert main(["report", str(copy)]) == 0
    assert time.perf_counter() - started < 5
    assert (copy / "report.html").read_text().count("data:image/png;base64,") == 8
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run directory (recipe.yaml and meta.json), a study" in capsys.readouterr().err


def test_a_study_report_has_the_arm_table_curves_and_forest_plot(tmp_path, capsys):
    recipe = tmp_path / "study.yaml"
    recipe.write_text("data: {source: digits, channels: 1}\nmodel: {name: linear}\noptim: {name: adam, lr: 0.01}\ntrain: {epochs: 3}\n"
                      "study: {arms: {plain: {}, l2: {optim.l2: 0.01}}, baseline: plain, seeds: [0, 1]}\n")  # fmt: skip
    assert main(["study", str(recipe), "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    assert f"report: {tmp_path / 's' / 'report.html'}" in capsys.readouterr().out
    html = (tmp_path / "s" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 11  # val loss, train loss, metric, gap, forest; reliability, true-class and weights per arm
    assert "Calibration and the probability of the true class, arm beside arm" in html and "Learnt weights, arm beside arm" in html
    assert len(re.findall(r"<figcaption>[^<]*reliability, ECE", html)) == 2  # one per arm
    assert "undecided with 2 seeds" in html and "p (Holm)" in html and "baseline" in html
    from reglab.experiments.study import Study

    values = [row["value"] for row in Study(tmp_path / "s").results() if row["arm"] == "plain"]
    assert f"{np.mean(values):.4f}" in html

    held_out = write_image_folder(tmp_path / "held_out", {str(k): 2 for k in range(10)}, size=(8, 8))  # grey 8x8, as the digits
    for arm in ("plain", "l2"):
        assert main(["evaluate", str(tmp_path / "s" / "runs" / f"{arm}-seed0"), "--data", str(held_out)]) == 0
    assert main(["report", str(tmp_path / "s")]) == 0
    html = (tmp_path / "s" / "report.html").read_text()
    scores = [json.loads((tmp_path / "s" / "runs" / f"{arm}-seed0" / "eval_held_out.json").read_text())["macro_f1"] for arm in ("plain", "l2")]
    assert "held_out: macro F1 (seeds)" in html and all(f"{score:.4f} (1)" in html for score in scores)


SWEEP = """data: {source: digits}
model: {name: linear}
optim: {name: sgd, lr: 0.05}
train: {epochs: 3, batch_size: 64}
search:
  sampler: random
  trials: 8
  pruner: successive_halving
  metric: val_accuracy
  space: {optim.lr: {loguniform: [0.001, 0.3]}}
  cocktail: {augment.mix: {mixup_alpha: {uniform: [0.1, 1.0]}}}
"""


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A finished 8-trial sweep with pruned runs, and its report."""
    from reglab.experiments.sweep import Sweep

    tmp = tmp_path_factory.mktemp("sweep")
    (tmp / "sweep.yaml").write_text(SWEEP)
    assert main(["sweep", str(tmp / "sweep.yaml"), "--workers", "0", "--out", str(tmp / "s"), "--quiet"]) == 0
    Sweep(tmp / "s").work()
    assert main(["report", str(tmp / "s")]) == 0
    return tmp / "s"


def test_a_sweep_report_has_the_ranking_importances_slices_and_curves(sweep_dir):
    from reglab.experiments.sweep import Sweep

    html, sweep = (sweep_dir / "report.html").read_text(), Sweep(sweep_dir)
    importances = bool(sweep.importances())  # needs 5 runs that trained to the end
    assert html.count("data:image/png;base64,") == 3 + importances  # slices, metric curves, loss curves
    for heading in ("Configurations", "The metric against each parameter", "Curves") + (("Parameter importances",) if importances else ()):
        assert f"<h2>{heading}</h2>" in html
    rows = sweep.results()
    assert any(row["status"] == "pruned" for row in rows)
    for row in rows:  # every stored value and status in the table
        assert f"{row['value']:.4f}" in html
    assert "augment.mix?" in html and "pruned" in html
    markdown = (sweep_dir / "report.md").read_text()
    assert "report_files/slices.png" in markdown and (sweep_dir / "report_files" / "slices.png").stat().st_size > 1000


def test_figures_grow_with_the_class_count_and_cut_long_names():
    import io

    from PIL import Image

    from reglab.report import figures

    def size(png: bytes) -> tuple[int, int]:
        return Image.open(io.BytesIO(png)).size

    names = [f"painter_{i:02d}_van_gogh_vincent" for i in range(50)]
    few, many = size(figures.confusion(np.eye(3, dtype=int).tolist(), names[:3])), size(figures.confusion(np.eye(50, dtype=int).tolist(), names))
    assert many[0] > 2 * few[0] and many[1] > 2 * few[1]  # 50 tick labels a side need room
    bars = size(figures.class_distribution({name: 10 + i for i, name in enumerate(names)}))
    assert bars[0] > size(figures.class_distribution({name: 10 for name in names[:3]}))[0]


def test_every_evaluation_of_a_run_gets_its_sections_in_the_report(hostile_run, tmp_path):
    run, names = hostile_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["evaluate", str(copy), "--data", str(run.parent / "data"), "--json", str(tmp_path / "e.json")]) == 0
    shutil.copytree(run.parent / "data", tmp_path / "second")  # a second labelled set
    assert main(["evaluate", str(copy), "--data", str(tmp_path / "second")]) == 0
    assert main(["report", str(copy)]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    html = (copy / "report.html").read_text()
    assert "Evaluated on data" in html and f"{result['samples']} samples" in html
    assert f"<td>{result['macro_f1']:.4f}</td>" in html and "Confusion matrix (data)" in html
    assert "Evaluated on second" in html and "Confusion matrix (second)" in html
    assert html.count("data:image/png;base64,") == 10  # the validation figures and each evaluated set's confusion matrix
    assert "&lt;script&gt;alert(1)&lt;" in html.split("Evaluated on data")[1]  # its class names shown as text too


def test_the_co_occurrence_confusion_counts_what_each_present_class_is_mistaken_for():
    from reglab.metrics import cooccurrence_confusion

    present = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0]])
    predicted = np.array([[1, 1, 0], [0, 1, 1], [0, 1, 0], [1, 1, 0]])
    # class 0 present in 3 samples: missed once, 1 predicted without being there twice, 2 once
    assert cooccurrence_confusion(present, predicted) == [[1, 2, 1], [0, 0, 1], [0, 0, 0]]
