"""Scoring a finished run on other data, and writing competition-style predictions."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from . import data as data_sources
from . import logit_adjustment, metrics
from .data.dataset import Excerpts
from .data.folders import read_label_csv
from .data.layout import detect_source
from .decisions import aggregate_windows, best_view
from .device import autocast, pick_device
from .errors import UserError
from .losses import probabilities
from .models import create_model
from .models.folding import folded
from .rundir import RunDir, check_output, write_atomic
from .inference import predict_logits
from .recordings import write_window_csv


class TrainedRun:
    """A run directory with its model rebuilt from the recipe and the final checkpoint, its batch
    norms folded once for every prediction it makes."""

    def __init__(self, path: str | Path, device: str = "auto"):
        self.run = RunDir.open(path)
        self.recipe = self.run.recipe()
        self.meta = self.run.meta()
        self.classes: list[str] = self.meta["classes"]
        self.device = pick_device(device)
        input_shape = tuple(self.meta["input_shape"])
        self.model = create_model(self.recipe.model, input_shape, len(self.classes))
        checkpoint = self.meta.get("final_checkpoint", "last.pt")
        try:
            self.model.load_state_dict(self.run.load_state(checkpoint))
        except RuntimeError:  # missing or extra keys, wrong shapes
            raise UserError(f"{self.run.path / checkpoint}: does not fit the run's model (recipe.yaml or meta.json changed?)") from None
        self.model = folded(self.model.to(self.device).eval())

    def load(self, path, source: Optional[str] = None, labels: Optional[str] = None):
        """``path`` read with the run's input size and front end, labelled in the run's classes:
        ``Samples``, or windowed ``Excerpts`` for long recordings."""
        source = source or detect_source(path)
        config = self.recipe.data.model_copy(update={"source": source, "path": str(path), "labels": labels, "classes": self.classes})
        if source == "irmas_test":
            data = data_sources.load_excerpts(config, self.classes, self.recipe.evaluate.channels)
            shape = tuple(data.windows.shape[1:])
        else:
            data = data_sources.load(config, "test", classes=self.classes)
            shape = tuple(data.x.shape[1:])
        if shape != tuple(self.meta["input_shape"]):
            raise UserError(f"{path}: inputs are {shape}, the model expects {tuple(self.meta['input_shape'])}")
        return data

    def window_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities of every input in ``x`` (images, clips or windows), on the CPU."""
        amp = autocast(self.device, self.recipe.train.amp)
        logits = predict_logits(self.model, x, self.recipe.train.eval_batch_size, amp)
        return probabilities(logits, self.recipe.loss.name).cpu()

    def probabilities(self, data) -> np.ndarray:
        """Class probabilities per sample (logit-adjusted when the recipe says so); per excerpt
        (windows aggregated) for ``Excerpts``."""
        config = self.recipe.evaluate
        if isinstance(data, Excerpts):
            probs, owner = self.moment_probabilities(data)
            return aggregate_windows(probs, owner, config.aggregate, config.top_k).numpy()
        probs = self.window_probabilities(data.x)
        return probs.numpy() if config.logit_adjustment is None else self.logit_adjusted(probs.numpy())

    def moment_probabilities(self, data: Excerpts) -> tuple[torch.Tensor, torch.Tensor]:
        """Per window moment of long excerpts: the best of its views' probabilities ``[M, C]``, and
        the excerpt it belongs to ``[M]`` (moments in time order within an excerpt)."""
        return best_view(self.window_probabilities(data.windows), data.moment, data.owner)

    def logit_adjusted(self, probs: np.ndarray) -> np.ndarray:
        """``probs`` adjusted by the τ and training counts the run saved (``logit_adjustment.json``)."""
        saved = self.run.read_json("logit_adjustment.json")
        prior = logit_adjustment.log_prior([saved["train_counts"][name] for name in self.classes])
        return logit_adjustment.adjust(probs, prior, saved["tau"])

    def thresholds(self):
        """The recipe's global threshold, or the per-class ones tuned after training."""
        if self.recipe.evaluate.threshold != "tuned":
            return self.recipe.evaluate.threshold
        tuned = self.run.read_json("thresholds.json")
        return np.array([tuned[name] for name in self.classes])


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
    multilabel = isinstance(data, Excerpts)
    threshold = trained.thresholds() if multilabel else 0.5
    scores = metrics.detailed(y_true, probs, trained.classes, multilabel, threshold)
    result = {"data": str(data_path), "samples": len(data), **scores}
    if multilabel:
        result["threshold"] = np.broadcast_to(threshold, (len(trained.classes),)).tolist()
        result["aggregate"] = trained.recipe.evaluate.aggregate
    name = f"eval_{Path(data_path).name or 'data'}"
    trained.run.write_json(f"{name}.json", result)
    trained.run.write_predictions(f"{name}_predictions.csv", data.ids, trained.classes, probs, y_true, threshold if multilabel else None)
    if multilabel:  # when, as well as which: every window's scores
        moments, owner = trained.moment_probabilities(data)
        per_excerpt = [(excerpt, moments[owner == index].numpy()) for index, excerpt in enumerate(data.ids)]
        config = trained.recipe.data
        write_window_csv(trained.run.path / f"{name}_windows.csv", per_excerpt, trained.classes, config.clip_seconds, config.window_hop_seconds)
    return result


def write_submission(path: Path, ids: list[str], labels: list[str], extra: Optional[dict[str, list[str]]] = None) -> None:
    """An ``id,label`` CSV (competition format), with ``extra`` columns after them."""
    extra = extra or {}

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "label", *extra])
            writer.writerows(zip(ids, labels, *extra.values()))

    write_atomic(path, write)


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


def predict_folder(run_path, images, out, labels=None, device="auto", with_probabilities=False, top_k=0) -> tuple[int, Optional[dict]]:
    """Write ``id,label`` for every image in a test folder (a multi-label run's label: every class
    at or above its threshold, ``;``-separated); optionally one probability column per class and
    the ``top_k`` most probable classes. Scored when an answer key is given."""
    out = check_output(out, "--out")
    if labels:
        read_label_csv(labels)  # a missing or malformed answer key fails before anything is written
    trained = TrainedRun(run_path, device)
    if trained.recipe.data.source == "irmas":
        raise UserError(f"{run_path}: an audio run; predict recordings with --audio")
    data = trained.load(images, "test_folder")
    probs = trained.probabilities(data)
    names = np.array(trained.classes, dtype=object)
    if trained.recipe.loss.name == "bce":  # multi-label
        decided = [";".join(names[row]) for row in probs >= np.broadcast_to(trained.thresholds(), (len(names),))]
    else:
        decided = list(names[probs.argmax(axis=1)])
    extra = {f"p_{name}": [f"{p:.6g}" for p in probs[:, i]] for i, name in enumerate(names)} if with_probabilities else {}
    if top_k:
        extra["top_k"] = [";".join(names[row]) for row in np.argsort(-probs, axis=1, kind="stable")[:, :top_k]]
    write_submission(out, data.ids, decided, extra)
    return len(data), (score_submission(out, labels, trained.classes) if labels else None)
