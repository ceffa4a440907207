"""Studies: every arm of a recipe over several seeds, one trial each on the engine's queue
(``engine.py``: storage, workers, heartbeats, resume), and the table that says which arm wins.

Study directory: ``study.yaml`` (resolved study recipe), ``study.json`` (name, storage URL),
``study.db`` (default storage, with ``study.db.lock`` beside it) and ``runs/<arm>-seed<seed>/``
(one run directory per pair; an attempt in progress trains in ``runs/.<arm>-seed<seed>.trial<N>/``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import optuna
import yaml

from .engine import Engine
from .errors import UserError
from .recipe import Recipe, load_study_recipe
from .rundir import write_atomic
from .train import RunResult

class Study(Engine):
    def __init__(self, directory: str | Path, storage_url: Optional[str] = None, name: Optional[str] = None):
        """Open a study directory; with ``name`` and ``storage_url``, one whose study.json is not written yet."""
        directory = Path(directory)
        if name is None:
            info_file = directory / "study.json"
            if not info_file.is_file():
                raise UserError(f"{directory}: not a reglab study directory (no study.json)")
            try:
                info = json.loads(info_file.read_text(encoding="utf-8"))
                name, storage_url = str(info["name"]), storage_url or str(info["storage"])
            except (ValueError, KeyError, TypeError) as exc:
                raise UserError(f"{info_file}: damaged ({type(exc).__name__}: {exc}); it should hold the study's name and storage URL") from None
        self.recipe, self.arms = load_study_recipe(directory / "study.yaml", saved=True)
        self.config = self.recipe.study
        self.monitored = self.config.metric
        super().__init__(directory, name, storage_url, self.config.heartbeat_seconds, self.config.maximize)

    @classmethod
    def prepare(cls, recipe_path, overrides, out: Optional[Path], storage_url: Optional[str]) -> "Study":
        """Create the study directory (or reopen it when it holds the same resolved recipe).

        study.json is written last, atomically: once it exists, the storage and its queue do too, and
        a creation cut short is simply redone by the next run of the same command.
        """
        recipe, _ = load_study_recipe(recipe_path, overrides)
        name = recipe.name or Path(recipe_path).stem
        directory = Path(out or Path("studies") / name)
        resolved = recipe.to_dict()
        if (directory / "study.json").exists():
            stored, _ = load_study_recipe(directory / "study.yaml", saved=True)
            if stored.to_dict() != resolved:  # compared through today's schema: new keys take their defaults
                raise UserError(f"{directory}: holds a different study (recipe or overrides changed); choose another --out")
            study = cls(directory, storage_url)
            study.enqueue_missing()
            return study
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / "study.yaml", lambda tmp: tmp.write_text(yaml.safe_dump(resolved, sort_keys=False)))
        url = storage_url or f"sqlite:///{(directory / 'study.db').resolve()}"
        study = cls(directory, url, name=name)
        study.enqueue_missing()
        partial = directory / "study.json.partial"
        partial.write_text(json.dumps({"name": name, "storage": url}, indent=2) + "\n")
        partial.replace(directory / "study.json")
        return study

    # --- the plan: arms x seeds --------------------------------------------------------------
    def points(self) -> list[tuple[str, int]]:
        return [(arm, seed) for arm in self.config.arms for seed in self.config.seeds]

    def point_params(self, point: tuple[str, int]) -> dict:
        return {"arm": point[0], "seed": point[1]}

    def suggest(self, trial: optuna.Trial) -> tuple[str, int]:
        return trial.suggest_categorical("arm", list(self.config.arms)), trial.suggest_categorical("seed", self.config.seeds)

    def run_name(self, point: tuple[str, int]) -> str:
        return f"{point[0]}-seed{point[1]}"

    def recipe_for(self, point: tuple[str, int]) -> Recipe:
        arm, seed = point
        return self.arms[arm].model_copy(update={"train": self.arms[arm].train.model_copy(update={"seed": seed})})

    def measure(self, result: RunResult) -> tuple[float, Optional[str]]:
        value = run_value(result.history, self.config)
        return value, nan_reason(result.history, self.config, result.status) if math.isnan(value) else None

    def summary(self, result: RunResult) -> dict:
        return run_summary(result.history, result.metrics)

    # --- results -----------------------------------------------------------------------------
    def results(self) -> list[dict]:
        """One row per (arm, seed): the compared value, the run's summary and status."""
        records = self.records()
        return [{"arm": arm, "seed": seed, **records[(arm, seed)]} for arm, seed in self.points() if (arm, seed) in records]


def run_value(history: list[dict], config) -> float:
    """The study's metric for one run: at ``at_epoch``, its best epoch, or its last."""
    values = [row[config.metric] for row in history]
    if not values:
        return float("nan")
    if config.at_epoch is not None:
        return values[config.at_epoch - 1] if config.at_epoch <= len(values) else float("nan")
    if config.reduce == "last":
        return values[-1]
    return max(values) if config.maximize else min(values)


def nan_reason(history: list[dict], config, status: str) -> str:
    """Why a recorded run has no value for the study's metric."""
    if status == "diverged":
        return "diverged (loss not finite)"
    if config.at_epoch is not None and config.at_epoch > len(history):
        return f"study.at_epoch {config.at_epoch} is beyond the {len(history)} epochs it ran"
    return f"{config.metric} is NaN"


def run_summary(history: list[dict], final: dict) -> dict:
    last = history[-1] if history else {}
    return {
        "train_loss": last.get("train_loss", float("nan")),
        "val_loss": last.get("val_loss", float("nan")),
        "gap_loss": last.get("gap_loss", float("nan")),
        "best_epoch": final.get("best_epoch", 0),
        "epochs_run": len(history),
    }
