"""Studies: every arm of a recipe over several seeds, one trial each on the engine's queue
(``engine.py``: storage, workers, heartbeats, resume), and the table that says which arm wins.

Study directory: ``study.yaml`` (resolved study recipe), ``study.json`` (name, storage URL),
``study.db`` (default storage, with ``study.db.lock`` beside it) and ``runs/<arm>-seed<seed>/``
(one run directory per pair; an attempt in progress trains in ``runs/.<arm>-seed<seed>.trial<N>/``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import optuna

from .engine import Engine
from .recipe import Recipe, load_study_recipe
from .stats import sequential_stop
from .train import RunResult

class Study(Engine):
    kind, home = "study", "studies"

    @classmethod
    def load(cls, path, overrides=(), saved: bool = False):
        return load_study_recipe(path, overrides, saved)[0]

    def read_plan(self, path: Path) -> None:
        self.recipe, self.arms = load_study_recipe(path, saved=True)
        self.config = self.recipe.study

    # --- the plan: arms x seeds --------------------------------------------------------------
    def points(self) -> list[tuple[str, int]]:
        return self.planned(None if isinstance(self.config.seeds, list) else self.records())

    def planned(self, records: Optional[dict]) -> list[tuple[str, int]]:
        """The (arm, seed) pairs to run: every seed of a fixed list, or, with adaptive seeds, as
        many as each arm needs given the ``records`` so far (the baseline as many as the arm
        furthest along, so that every seed is paired)."""
        if isinstance(self.config.seeds, list):
            return [(arm, seed) for arm in self.config.arms for seed in self.config.seeds]
        values = {point: row["value"] for point, row in records.items()}
        counts = {}
        for arm in self.config.arms:
            if arm != self.config.baseline:
                differences = []
                for seed in self.config.seed_values:
                    if (arm, seed) not in values or (self.config.baseline, seed) not in values:
                        break
                    differences.append(values[(arm, seed)] - values[(self.config.baseline, seed)])
                counts[arm] = sequential_stop(differences, self.config.looks, self.config.alpha)[0]
        counts[self.config.baseline] = max(counts.values(), default=self.config.looks[0])
        return [(arm, seed) for arm in self.config.arms for seed in range(counts[arm])]

    def point_params(self, point: tuple[str, int]) -> dict:
        return {"arm": point[0], "seed": point[1]}

    def suggest(self, trial: optuna.Trial) -> tuple[str, int]:
        return trial.suggest_categorical("arm", list(self.config.arms)), trial.suggest_categorical("seed", self.config.seed_values)

    def stack_key(self, point: tuple[str, int]) -> str:
        return point[0]  # the seeds of one arm

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
    def results(self, records: Optional[dict] = None) -> list[dict]:
        """One row per planned (arm, seed) that is recorded: the compared value, the run's summary
        and status (``records``: ``self.records()`` when the caller has read them already)."""
        records = self.records() if records is None else records
        return [{"arm": arm, "seed": seed, **records[(arm, seed)]} for arm, seed in self.planned(records) if (arm, seed) in records]


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
