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
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .errors import UserError, first_line
from .recipe import Recipe, load_recipe, save_recipe

OWNED = ("recipe.yaml", "meta.json", "history.jsonl", "history.csv", "metrics.json", "val_predictions.csv",
         "best.pt", "last.pt", "swa.pt", "thresholds.json", "logit_adjustment.json", "training_state.pt")  # fmt: skip
STATE = "training_state.pt"


def write_atomic(path: Path, write) -> None:
    """``write(tmp)`` then rename over ``path``: readers see the old file or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_csv(path: Path, header: list[str], rows) -> None:
    """A CSV file written atomically (``write_atomic``): the header, then ``rows``."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    write_atomic(path, write)


PLAN_OWNED = {"runs", "best.yaml", "confirm.yaml", "confirm", "report.html", "report.md", "report_files"}  # a study's or sweep's own


def check_output(path: str | Path, option: str) -> Path:
    """A file a command was asked to write (``option`` names the flag): refused in one line when
    it is a folder, its folder cannot be made, or it is one of a run's, a study's or a sweep's own files."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name")
    kind = directory_kind(path.parent)
    if (kind == "run" and path.name in OWNED) or (kind in ("study", "sweep") and (path.name.startswith(f"{kind}.") or path.name in PLAN_OWNED)):
        raise UserError(f"{option} {path}: belongs to the {kind} in {path.parent}; write somewhere else")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot create its folder ({exc.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"{option} {path}: its folder is not writable")
    return path


def directory_kind(path: str | Path) -> Optional[str]:
    """What a directory holds: ``"run"`` (recipe.yaml and meta.json), ``"study"`` (study.json),
    ``"sweep"`` (sweep.json), or None."""
    path = Path(path)
    if (path / "recipe.yaml").is_file() and (path / "meta.json").is_file():
        return "run"
    return next((kind for kind in ("study", "sweep") if (path / f"{kind}.json").is_file()), None)


def _first_difference(saved: dict, given: dict, prefix: str = "") -> str:
    """The dotted key where two resolved recipes first differ."""
    for key in list(given) + [k for k in saved if k not in given]:
        mine, theirs = saved.get(key), given.get(key)
        if mine != theirs:
            if isinstance(mine, dict) and isinstance(theirs, dict):
                return _first_difference(mine, theirs, f"{prefix}{key}.")
            return f"{prefix}{key}"
    return prefix.rstrip(".") or "recipe"


def default_run_dir(name: str) -> Path:
    """``runs/<name>-<time>``, numbered when that exists already."""
    base = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def load_tensors(file: Path, what: str = "a reglab checkpoint") -> dict:
    """A ``state_dict`` (or training state) saved with ``torch.save``, read with ``weights_only=True``
    so nothing in it can run; a missing, damaged or foreign file is refused in one line."""
    if not file.is_file():
        raise UserError(f"{file}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch's multi-line notes on foreign pickles; the error below says it
            warnings.simplefilter("ignore")
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, empty, garbage, or a pickle that names code
        raise UserError(f"{file}: damaged or not {what} ({first_line(exc)})") from None
    if not isinstance(state, dict):
        raise UserError(f"{file}: damaged or not {what} (holds a {type(state).__name__})")
    return state


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def vacant(cls, path: str | Path) -> "RunDir":
        """Where a new run may go; a folder that holds a run already is refused (with how to
        resume it when it is unfinished). Nothing is written until ``start``."""
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise UserError(f"{run.path}: exists and is not a folder; choose another --out")
        if (run.path / "history.jsonl").exists() or (run.path / "recipe.yaml").exists():
            status = run.status()
            if status in ("running", "unknown"):
                raise UserError(f"{run.path}: holds an unfinished run; add --resume to continue it, or choose another --out")
            raise UserError(f"{run.path}: a run already exists there ({status}); choose another --out")
        return run

    def start(self, recipe: Recipe) -> None:
        """Create the folder and save the resolved recipe."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            save_recipe(recipe, self.path / "recipe.yaml")
        except OSError as exc:
            raise UserError(f"{self.path}: cannot create the run directory ({exc.strerror})") from None

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        run = cls(path)
        for name in ("recipe.yaml", "meta.json"):
            if not (run.path / name).is_file():
                raise UserError(f"{run.path}: not a reglab run directory (no {name})")
        return run

    @classmethod
    def reopen(cls, path: str | Path, recipe: Recipe) -> "RunDir":
        """An unfinished run to continue with ``recipe``, which must be the one it was started with."""
        run = cls(path)
        if not (run.path / "recipe.yaml").is_file():
            raise UserError(f"{run.path}: no run to resume there (no recipe.yaml)")
        if run.status() not in ("running", "unknown"):
            raise UserError(f"{run.path}: the run has finished ({run.status()}); nothing to resume")
        saved, given = run.recipe().to_dict(), recipe.to_dict()
        if saved != given:
            key = _first_difference(saved, given)
            raise UserError(f"{run.path}: was started with a different recipe ({key} differs); resume with the same recipe and overrides")
        return run

    def status(self) -> str:
        """``running`` until the run ends, then its final status; ``unknown`` before meta.json exists."""
        if not (self.path / "meta.json").is_file():
            return "unknown"
        return str(self.read_json("meta.json").get("status", "unknown"))

    # --- writing -----------------------------------------------------------------------------
    def write_json(self, name: str, payload: dict) -> None:
        write_atomic(self.path / name, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n"))

    def append_history(self, row: dict) -> None:
        with (self.path / "history.jsonl").open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        self._append_csv(row)

    def _append_csv(self, row: dict) -> None:
        csv_path = self.path / "history.csv"
        new = not csv_path.exists()
        with csv_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def save_checkpoint(self, model: torch.nn.Module, name: str) -> None:
        write_atomic(self.path / name, lambda tmp: torch.save(model.state_dict(), tmp))

    def write_predictions(self, name: str, ids: list[str], classes: list[str], probs: np.ndarray, y_true=None, threshold=None) -> None:
        """One row per sample: id, true label, predicted label, one probability per class. With
        ``threshold`` (multi-label: one value or one per class) the labels are every class at or
        above it, ``;``-separated, and ``y_true`` is multi-hot."""
        if threshold is None:
            predicted = [classes[i] for i in probs.argmax(axis=1)]
            truth = None if y_true is None else [classes[i] for i in y_true]
        else:
            names = np.array(classes, dtype=object)
            predicted = [";".join(names[row]) for row in probs >= np.asarray(threshold)]
            truth = None if y_true is None else [";".join(names[row.astype(bool)]) for row in y_true]

        header = ["id"] + (["label"] if truth is not None else []) + ["predicted", *(f"p_{c}" for c in classes)]
        rows = ([sample, *([truth[i]] if truth else []), predicted[i], *(f"{p:.6g}" for p in probs[i])] for i, sample in enumerate(ids))
        write_csv(self.path / name, header, rows)

    def keep_history(self, epochs: int) -> list[dict]:
        """Cut the history back to its first ``epochs`` rows (what a resumed run continues from)."""
        rows = self.history()[:epochs]
        if len(rows) < epochs:
            raise UserError(f"{self.path / 'history.jsonl'}: has {len(rows)} epochs but the training state is at epoch {epochs}")
        write_atomic(self.path / "history.jsonl", lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in rows)))
        (self.path / "history.csv").unlink(missing_ok=True)
        for row in rows:
            self._append_csv(row)
        return rows

    def save_training_state(self, state: dict) -> None:
        write_atomic(self.path / STATE, lambda tmp: torch.save(state, tmp))

    def training_state(self) -> dict | None:
        """What the last completed epoch left for ``--resume``; None when no epoch completed."""
        return self.load_state(STATE) if (self.path / STATE).is_file() else None

    def finish_training(self) -> None:
        (self.path / STATE).unlink(missing_ok=True)

    # --- reading -----------------------------------------------------------------------------
    def recipe(self) -> Recipe:
        return load_recipe(self.path / "recipe.yaml", saved=True)

    def read_json(self, name: str) -> dict:
        file = self.path / name
        if not file.is_file():
            raise UserError(f"{file}: missing (the run did not finish, or was trained without it)")
        try:
            payload = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{file}: not valid JSON ({exc})") from None
        if not isinstance(payload, dict):
            raise UserError(f"{file}: damaged (holds a JSON {type(payload).__name__}, not an object)")
        return payload

    def meta(self) -> dict:
        """meta.json, checked for what loading the model needs."""
        meta = self.read_json("meta.json")
        classes, shape = meta.get("classes"), meta.get("input_shape")
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
            raise UserError(f"{self.path / 'meta.json'}: damaged ('classes' must be a list of class names)")
        if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) and d > 0 for d in shape)):
            raise UserError(f"{self.path / 'meta.json'}: damaged ('input_shape' must be three positive sizes)")
        if meta.get("final_checkpoint", "last.pt") not in ("best.pt", "last.pt", "swa.pt"):
            raise UserError(f"{self.path / 'meta.json'}: damaged ('final_checkpoint' must be best.pt, last.pt or swa.pt)")
        return meta

    def history(self) -> list[dict]:
        file = self.path / "history.jsonl"
        if not file.exists():
            return []
        try:
            return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{file}: damaged ({exc})") from None

    def load_state(self, name: str) -> dict:
        """A checkpoint or training state; a damaged or foreign file is refused in one line (it is
        loaded with ``weights_only=True``, so nothing in it can run)."""
        return load_tensors(self.path / name)
