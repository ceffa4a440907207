"""Scoring a finished run on other data, and writing competition-style predictions."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from . import data as data_sources
from . import metrics
from .data.folders import read_label_csv
from .data.layout import detect_source
from .device import autocast, pick_device
from .errors import UserError
from .losses import probabilities
from .models import create_model
from .rundir import RunDir
from .train import predict_logits


class TrainedRun:
    """A run directory with its model rebuilt from the recipe and the final checkpoint."""

    def __init__(self, path: str | Path, device: str = "auto"):
        self.run = RunDir.open(path)
        self.recipe = self.run.recipe()
        self.meta = self.run.read_json("meta.json")
        self.classes: list[str] = self.meta["classes"]
        self.device = pick_device(device)
        input_shape = tuple(self.meta["input_shape"])
        self.model = create_model(self.recipe.model, input_shape, len(self.classes))
        self.model.load_state_dict(self.run.load_state(self.meta.get("final_checkpoint", "last.pt")))
        self.model.to(self.device).eval()

    def load(self, path, source: Optional[str] = None, labels: Optional[str] = None) -> data_sources.ImageData:
        """``path`` read with the run's image size and channels, labelled in the run's classes."""
        source = source or detect_source(path)
        config = self.recipe.data.model_copy(update={"source": source, "path": str(path), "labels": labels, "classes": self.classes})
        data = data_sources.load(config, "test", classes=self.classes)
        if tuple(data.x.shape[1:]) != tuple(self.meta["input_shape"]):
            raise UserError(f"{path}: images are {tuple(data.x.shape[1:])}, the model expects {tuple(self.meta['input_shape'])}")
        return data

    def probabilities(self, data: data_sources.ImageData) -> np.ndarray:
        amp = autocast(self.device, self.recipe.train.amp)
        logits = predict_logits(self.model, data.x.to(self.device), self.recipe.train.eval_batch_size, amp)
        return probabilities(logits, self.recipe.loss.name).cpu().numpy()


def evaluate_run(run_path, data_path, source=None, labels=None, device="auto") -> dict:
    """Metrics of the run's final model on a labelled data set; also saved as ``eval_<name>.json``."""
    trained = TrainedRun(run_path, device)
    data = trained.load(data_path, source, labels)
    if data.y is None:
        raise UserError(f"{data_path}: unlabelled images; pass --labels with an id,label CSV")
    probs = trained.probabilities(data)
    result = {"data": str(data_path), "samples": len(data), **metrics.detailed(data.y.numpy(), probs, trained.classes)}
    trained.run.write_json(f"eval_{Path(data_path).name or 'data'}.json", result)
    trained.run.write_predictions(f"eval_{Path(data_path).name or 'data'}_predictions.csv", data.ids, trained.classes, probs, data.y.numpy())
    return result


def write_submission(path: Path, ids: list[str], labels: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label"])
        writer.writerows(zip(ids, labels))


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


def predict_folder(run_path, images, out, labels=None, device="auto") -> tuple[int, Optional[dict]]:
    """Write ``id,label`` for every image in a test folder; scored when an answer key is given."""
    trained = TrainedRun(run_path, device)
    data = trained.load(images, "test_folder")
    probs = trained.probabilities(data)
    out = Path(out)
    write_submission(out, data.ids, [trained.classes[i] for i in probs.argmax(axis=1)])
    return len(data), (score_submission(out, labels, trained.classes) if labels else None)
