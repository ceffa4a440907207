"""What a run report shows, rebuilt from the run directory alone (no retraining): the curves of
every epoch, the generalization gap, the training class distribution, per-class scores, the
confusion matrix, calibration (reliability diagram and ECE, Guo et al. 2017, and the probability
given to the true class for right and wrong predictions), and the learnt weights of a linear model
or the first convolution's filters. Multi-label runs show their per-class thresholds. Every data set
``reglab evaluate`` scored the run on gets its own sections (metrics, per-class scores, confusion)."""

from __future__ import annotations

import csv

import numpy as np

from .. import metrics
from ..errors import UserError
from ..rundir import RunDir
from . import figures
from .page import Figure, Section, fmt

SHOWN = ("accuracy", "macro_f1", "micro_f1", "macro_roc_auc", "micro_roc_auc", "ece")


def validation_probabilities(run: RunDir, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities ``[N, C]``, true class ``[N]``) from ``val_predictions.csv`` of a single-label run."""
    file = run.path / "val_predictions.csv"
    index = {name: i for i, name in enumerate(classes)}
    try:
        with file.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        probs = np.array([[float(row[f"p_{name}"]) for name in classes] for row in rows])
        truth = np.array([index[row["label"]] for row in rows])
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{file}: damaged or missing ({type(exc).__name__}: {exc})") from None
    return probs, truth


def learnt_weights(run: RunDir, meta: dict) -> tuple[np.ndarray, list[str], str] | None:
    """The first convolution's filters, or a linear model's weights as one image per class."""
    state = run.load_state(meta.get("final_checkpoint", "last.pt"))
    shape, classes = meta["input_shape"], meta["classes"]
    for name, tensor in state.items():
        if tensor.dim() == 4 and name.endswith("weight") and tensor.shape[-1] > 1:
            return tensor.float().numpy()[:64], [], f"first convolution's {min(64, len(tensor))} filters ({name}, {tuple(tensor.shape[1:])})"
    for name, tensor in state.items():
        if tensor.dim() == 2 and tensor.shape == (len(classes), int(np.prod(shape))):
            return tensor.float().reshape(len(classes), *shape).numpy(), classes, "the linear model's weights, one image per class"
    return None


def excerpt_timeline(run: RunDir, windows_file, classes: list[str]):
    """Scores over time of the longest excerpt ``reglab evaluate`` scored, against its labels:
    evaluation scores then decisions per excerpt, this shows where in time they came from."""
    name = windows_file.name.removesuffix("_windows.csv")
    try:
        with windows_file.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        with (run.path / f"{name}_predictions.csv").open(newline="") as handle:
            labels = {row["id"]: set(filter(None, row["label"].split(";"))) for row in csv.DictReader(handle)}
        summary = run.read_json(f"{name}.json")
        by_excerpt: dict[str, list[dict]] = {}
        for row in rows:
            by_excerpt.setdefault(row["id"], []).append(row)
        excerpt, windows = max(by_excerpt.items(), key=lambda item: len(item[1]))
        middles = np.array([(float(w["start"]) + float(w["end"])) / 2 for w in windows])
        probs = np.array([[float(w[f"p_{c}"]) for c in classes] for w in windows])
        thresholds = np.asarray(summary.get("threshold", [0.5] * len(classes)), dtype=float)
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{windows_file}: damaged ({type(exc).__name__}: {exc})") from None
    caption = f"{excerpt}: per-window probabilities; labelled: {', '.join(sorted(labels.get(excerpt, ()))) or 'none'}"
    return Section(f"Scores over time ({name.removeprefix('eval_')}, longest excerpt)",
                   figures=[Figure(f"{name}_timeline", figures.window_timeline(middles, probs, classes, labels.get(excerpt, set()), thresholds), caption)])  # fmt: skip


def evaluation_sections(run: RunDir, classes: list[str]) -> list[Section]:
    """One section per data set ``reglab evaluate`` scored the run on (``eval_<name>.json``): its
    metrics, per-class scores and, for single-label data, the confusion matrix."""
    sections = []
    for file in sorted(run.path.glob("eval_*.json")):
        name = file.stem.removeprefix("eval_")
        result = run.read_json(file.name)
        title = f"Evaluated on {name}"
        text = f"{result.get('data', name)}: {result.get('samples', '?')} samples" + (
            f", windows aggregated by {result['aggregate']}" if result.get("aggregate") else "")  # fmt: skip
        sections.append(Section(title, text=text, headers=["metric", "value"], rows=[[key, fmt(result[key])] for key in SHOWN if key in result]))
        if result.get("per_class"):
            sections.append(Section(f"Per-class scores ({name})", headers=["class", "precision", "recall", "F1", "support"],
                                    rows=[[cls, fmt(row["precision"], 3), fmt(row["recall"], 3), fmt(row["f1"], 3), row["support"]]
                                          for cls, row in result["per_class"].items()]))  # fmt: skip
        if result.get("confusion_matrix"):
            sections.append(Section(f"Confusion matrix ({name})", figures=[Figure(f"confusion_{name}", figures.confusion(result["confusion_matrix"], classes),
                                                                                  "Rows: true class, normalized to 1")]))  # fmt: skip
        if result.get("cooccurrence"):
            sections.append(cooccurrence_section(result, classes, name))
    return sections


def cooccurrence_section(result: dict, classes: list[str], name: str) -> Section:
    """Which classes a multi-label model mistakes for which: of the samples where a class is
    present, the share in which each other class was predicted without being there."""
    support = [result["per_class"][cls]["support"] for cls in classes]
    figure = figures.confusion(result["cooccurrence"], classes, per_row=support, xlabel="predicted, not present (diagonal: missed)")
    return Section(f"Confusion of co-occurrence ({name})", figures=[Figure(f"cooccurrence_{name}", figure,
                   "Row i: the samples where i is present; column j: the share in which j was predicted without being present; the diagonal: i missed")])  # fmt: skip


def run_sections(path) -> tuple[str, str, list[Section]]:
    run = RunDir.open(path)
    meta, history = run.meta(), run.history()
    final = run.read_json("metrics.json")
    recipe = run.recipe()
    classes = meta["classes"]
    title = f"Run report: {run.path.name}"
    subtitle = (f"{recipe.model.name} on {recipe.data.source} ({meta.get('n_train', '?')} training / {meta.get('n_val', '?')} validation samples), "
                f"status {final.get('status', meta.get('status'))}, {final.get('epochs_run', len(history))} epochs, best epoch {final.get('best_epoch', 0)}")  # fmt: skip
    sections = [Section("Final validation metrics", headers=["metric", "value"],
                        rows=[[key, fmt(final[key])] for key in SHOWN if key in final])]  # fmt: skip
    best = final.get("best_epoch", 0)
    if history:
        sections.append(Section("Training curves", figures=[
            Figure("loss", figures.curves(history, ["train_loss", "val_loss"] + (["train_cost"] if any(row.get("train_penalty") for row in history) else []),
                                          "loss", best), "Loss per epoch (learning rate in grey, right axis); train_cost adds the weight penalties"),
            Figure("scores", figures.curves(history, ["train_accuracy", "val_accuracy", "val_macro_f1", "val_mix_macro_f1", "val_ece"], "score", best),
                   "Accuracy, validation macro F1 (val_mix: on validation mixtures, audio) and expected calibration error per epoch"),
        ]))  # fmt: skip
        sections.append(Section("Generalization gap", text="Train minus validation: a loss gap falling below zero and an accuracy gap rising above it mean overfitting.",
                                figures=[Figure("gap", figures.curves(history, ["gap_loss", "gap_accuracy"], "train − validation", best), "Gap per epoch")]))  # fmt: skip
    if meta.get("train_counts"):
        sections.append(Section("Training class distribution", figures=[Figure("classes", figures.class_distribution(meta["train_counts"]), "Training samples per class")]))
    if final.get("per_class"):
        sections.append(Section("Per-class scores (validation)", headers=["class", "precision", "recall", "F1", "support"],
                                rows=[[name, fmt(row["precision"], 3), fmt(row["recall"], 3), fmt(row["f1"], 3), row["support"]]
                                      for name, row in final["per_class"].items()]))  # fmt: skip
    if final.get("confusion_matrix"):
        sections.append(Section("Confusion matrix (validation)", figures=[Figure("confusion", figures.confusion(final["confusion_matrix"], classes),
                                                                                 "Rows: true class, normalized to 1")]))  # fmt: skip
        probs, truth = validation_probabilities(run, classes)
        ece = metrics.expected_calibration_error(probs, truth)
        sections.append(Section("Calibration (validation)", text=f"Expected calibration error {ece:.4f} over 15 equal-width confidence bins (Guo et al. 2017).",
                                figures=[Figure("reliability", figures.reliability(probs, truth, ece), "Reliability diagram"),
                                         Figure("true_class", figures.true_class_probability(probs, truth),
                                                "Probability given to the true class, correct and wrong predictions")]))  # fmt: skip
    if final.get("cooccurrence"):
        sections.append(cooccurrence_section(final, classes, "validation"))
    if (run.path / "thresholds.json").is_file():
        thresholds = run.read_json("thresholds.json")
        sections.append(Section("Per-class thresholds (tuned on validation mixtures)", headers=["class", "threshold"],
                                rows=[[name, fmt(float(value), 2)] for name, value in thresholds.items()]))  # fmt: skip
    sections += evaluation_sections(run, classes)
    sections += [timeline for file in sorted(run.path.glob("eval_*_windows.csv")) if (timeline := excerpt_timeline(run, file, classes))]
    weights = learnt_weights(run, meta)
    if weights is not None:
        tiles, titles, caption = weights
        sections.append(Section("Learnt weights", figures=[Figure("weights", figures.weight_images(tiles, titles), caption)]))
    return title, subtitle, sections
