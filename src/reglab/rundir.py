"""The run directory: everything a run produced, written as it goes so a crash loses at most the
epoch in flight, and enough to rebuild a report or reload the model without retraining.

    recipe.yaml          the resolved recipe (after overrides)
    meta.json            classes, input shape, status, which checkpoint the final metrics used
    history.jsonl/.csv   one row per epoch (appended and flushed every epoch)
    metrics.json         final validation metrics, per-class scores, confusion matrix
    val_predictions.csv  id, true label, predicted label, one probability column per class
    best.pt, last.pt     state_dicts (load with ``torch.load(..., weights_only=True)``)
    thresholds.json      per-class thresholds, when ``evaluate.threshold: tuned``
    logit_adjustment.json  τ and the training class counts, when ``evaluate.logit_adjustment`` is set
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .recipe import Recipe, load_recipe, save_recipe


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, recipe: Recipe) -> "RunDir":
        run = cls(path)
        if (run.path / "history.jsonl").exists():
            raise UserError(f"{run.path}: a run already exists there; choose another --out")
        run.path.mkdir(parents=True, exist_ok=True)
        save_recipe(recipe, run.path / "recipe.yaml")
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        run = cls(path)
        for name in ("recipe.yaml", "meta.json"):
            if not (run.path / name).is_file():
                raise UserError(f"{run.path}: not a reglab run directory (no {name})")
        return run

    # --- writing -----------------------------------------------------------------------------
    def write_json(self, name: str, payload: dict) -> None:
        _atomic_write(self.path / name, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n"))

    def append_history(self, row: dict) -> None:
        with (self.path / "history.jsonl").open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        csv_path = self.path / "history.csv"
        new = not csv_path.exists()
        with csv_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def save_checkpoint(self, model: torch.nn.Module, name: str) -> None:
        _atomic_write(self.path / name, lambda tmp: torch.save(model.state_dict(), tmp))

    def write_predictions(self, name: str, ids: list[str], classes: list[str], probs: np.ndarray, y_true=None) -> None:
        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as handle:
                writer = csv.writer(handle)
                header = ["id"] + (["label"] if y_true is not None else []) + ["predicted"]
                writer.writerow(header + [f"p_{c}" for c in classes])
                predicted = probs.argmax(axis=1)
                for i, sample in enumerate(ids):
                    truth = [classes[y_true[i]]] if y_true is not None else []
                    writer.writerow([sample, *truth, classes[predicted[i]], *(f"{p:.6g}" for p in probs[i])])

        _atomic_write(self.path / name, write)

    # --- reading -----------------------------------------------------------------------------
    def recipe(self) -> Recipe:
        return load_recipe(self.path / "recipe.yaml")

    def read_json(self, name: str) -> dict:
        file = self.path / name
        if not file.is_file():
            raise UserError(f"{file}: missing (the run did not finish, or was trained without it)")
        try:
            return json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{file}: not valid JSON ({exc})") from None

    def history(self) -> list[dict]:
        file = self.path / "history.jsonl"
        return [json.loads(line) for line in file.read_text().splitlines()] if file.exists() else []

    def load_state(self, name: str) -> dict:
        file = self.path / name
        if not file.is_file():
            raise UserError(f"{file}: checkpoint not found")
        return torch.load(file, map_location="cpu", weights_only=True)
