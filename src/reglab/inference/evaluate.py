"""Scoring a finished run on other data, and writing competition-style predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .. import metrics
from ..data.dataset import Excerpts
from ..data.folders import read_label_csv
from ..errors import UserError
from ..rundir import check_output, write_csv
from .files import write_window_csv
from .trained_run import TrainedRun


def evaluate_run(run_path, data_path, source=None, labels=None, device="auto", aggregate=None, top_k=None) -> dict:
    """Metrics of the run's final model on a labelled data set; also saved as ``eval_<name>.json``.
    ``aggregate``/``top_k`` override the recipe's window aggregation for long excerpts."""
    trained = TrainedRun(run_path, device)
    overrides = {k: v for k, v in (("aggregate", aggregate), ("top_k", top_k)) if v is not None}
    if overrides:
        trained.recipe.evaluate = trained.recipe.evaluate.model_copy(update=overrides)
    data = trained.load(data_path, source, labels)
    if data.y is None:
        raise UserError(f"{data_path}: unlabelled images; pass --labels with an id,label CSV")
    probs = trained.probabilities(data)
    y_true = data.y.numpy().astype(np.int64)
    multilabel = isinstance(data, Excerpts) or data.multilabel
    threshold = trained.thresholds() if multilabel else 0.5
    scores = metrics.detailed(y_true, probs, trained.classes, multilabel, threshold)
    result = {"data": str(data_path), "samples": len(data), **scores}
    if multilabel:
        result["threshold"] = np.broadcast_to(threshold, (len(trained.classes),)).tolist()
        result["aggregate"] = trained.recipe.evaluate.aggregate
    name = f"eval_{Path(data_path).name or 'data'}"
    trained.run.write_json(f"{name}.json", result)
    trained.run.write_predictions(f"{name}_predictions.csv", data.ids, trained.classes, probs, y_true, threshold if multilabel else None)
    if isinstance(data, Excerpts):  # when, as well as which: every window's scores
        moments, owner = trained.moment_probabilities(data)
        per_excerpt = [(excerpt, moments[owner == index].numpy()) for index, excerpt in enumerate(data.ids)]
        config = trained.recipe.data
        write_window_csv(trained.run.path / f"{name}_windows.csv", per_excerpt, trained.classes, config.clip_seconds, config.window_hop_seconds)
    return result


def write_submission(path: Path, ids: list[str], labels: list[str], extra: Optional[dict[str, list[str]]] = None) -> None:
    """An ``id,label`` CSV (competition format), with ``extra`` columns after them."""
    extra = extra or {}
    write_csv(path, ["id", "label", *extra], zip(ids, labels, *extra.values()))


def score_submission(submission: str | Path, answers: str | Path, classes: list[str]) -> dict:
    """Accuracy and macro/micro F1 of an ``id,label`` submission against an answer key."""
    predicted, truth = read_label_csv(submission), read_label_csv(answers)
    missing = sorted(set(truth) - set(predicted))
    if missing:
        raise UserError(f"{submission}: no prediction for id '{missing[0]}' ({len(missing)} missing)")
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({label for label in list(truth.values()) + list(predicted.values()) if label not in index})
    if unknown:
        raise UserError(f"label '{unknown[0]}' is not one of the classes {', '.join(classes)}")
    ids = sorted(truth)
    y_true = np.array([index[truth[i]] for i in ids])
    y_pred = np.eye(len(classes))[[index[predicted[i]] for i in ids]]
    scores = metrics.summary(y_true, y_pred)
    return {k: scores[k] for k in ("accuracy", "macro_f1", "micro_f1")}


def predict_folder(run_path, images, out, labels=None, device="auto", with_probabilities=False, top_k=0, source="test_folder") -> tuple[int, Optional[dict]]:
    """Write ``id,label`` for every image in a test folder (a multi-label run's label: every class
    at or above its threshold, ``;``-separated); optionally one probability column per class and
    the ``top_k`` most probable classes. Scored when an answer key is given. ``source=None``: a
    run on the user's data source, ``images`` the split its loader is asked for."""
    out = check_output(out, "--out")
    if labels:
        read_label_csv(labels)  # a missing or malformed answer key fails before anything is written
    trained = TrainedRun(run_path, device)
    if trained.recipe.data.is_audio:
        raise UserError(f"{run_path}: an audio run; predict recordings with --audio")
    data = trained.load(images, source)
    probs = trained.probabilities(data)
    names = np.array(trained.classes, dtype=object)
    if trained.recipe.multilabel:
        decided = [";".join(names[row]) for row in probs >= np.broadcast_to(trained.thresholds(), (len(names),))]
    else:
        decided = list(names[probs.argmax(axis=1)])
    extra = {f"p_{name}": [f"{p:.6g}" for p in probs[:, i]] for i, name in enumerate(names)} if with_probabilities else {}
    if top_k:
        extra["top_k"] = [";".join(names[row]) for row in np.argsort(-probs, axis=1, kind="stable")[:, :top_k]]
    write_submission(out, data.ids, decided, extra)
    return len(data), (score_submission(out, labels, trained.classes) if labels else None)
