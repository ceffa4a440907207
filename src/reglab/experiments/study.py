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

import numpy as np
import optuna

from .engine import Engine
from ..errors import UserError
from ..metrics import EPOCH_METRICS, MIXTURE_METRICS
from ..recipe import Recipe, load_study_recipe
from .stats import sequential_seeds
from .table import arm_rows
from .tracking import tag_verdicts
from ..training.run import RunResult

class Study(Engine):
    kind, home = "study", "studies"

    SETTINGS = ("alpha", "margin", "also", "parallel_seeds")  # how the table reads the runs, how workers take them: a rerun may change them

    @classmethod
    def load(cls, path, overrides=(), saved: bool = False):
        recipe, arms = load_study_recipe(path, overrides, saved)
        for key in recipe.study.also:
            if key in MIXTURE_METRICS and not all(arm.polyphonic for arm in arms.values()):
                raise UserError(f"{path}: study.also: {key} is measured only where validation mixtures are scored "
                                "(augment.mixtures or evaluate.threshold: tuned)")  # fmt: skip
        return recipe

    @classmethod
    def comparable(cls, tree: dict) -> dict:
        """A study may be rerun with another level, margin, exploratory columns or stack size: the runs are the same."""
        return {**tree, "study": {k: v for k, v in tree["study"].items() if k not in cls.SETTINGS}}

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
        config = self.config
        if isinstance(config.seeds, list):
            return [(arm, seed) for arm in config.arms for seed in config.seeds]
        values = {point: row["value"] for point, row in records.items()}
        differences = {}
        for arm in config.arms:
            if arm != config.baseline:
                differences[arm] = []
                for seed in config.seed_values:
                    if (arm, seed) not in values or (config.baseline, seed) not in values:
                        break
                    differences[arm].append(values[(arm, seed)] - values[(config.baseline, seed)])
        counts = {arm: seeds for arm, (seeds, _) in sequential_seeds(differences, config.looks, config.alpha, config.margin).items()}
        counts[config.baseline] = max(counts.values(), default=config.looks[0])
        return [(arm, seed) for arm in config.arms for seed in range(counts[arm])]

    def point_params(self, point: tuple[str, int]) -> dict:
        return {"arm": point[0], "seed": point[1]}

    def suggest(self, trial: optuna.Trial) -> tuple[str, int]:
        return trial.suggest_categorical("arm", list(self.config.arms)), trial.suggest_categorical("seed", self.config.seed_values)

    def stack_key(self, point: tuple[str, int]) -> str:
        return point[0]  # the seeds of one arm

    def run_name(self, point: tuple[str, int]) -> str:
        return f"{point[0]}-seed{point[1]}"

    def describe(self, point: tuple[str, int]) -> dict[str, str]:
        return {"arm": point[0], "seed": str(point[1])}

    def recipe_for(self, point: tuple[str, int]) -> Recipe:
        """The arm's recipe at the seed; the seed draws the train/validation split too unless the
        recipe pins it, so that a seed's spread holds every source of variation (Bouthillier et al.
        2021), while the arms of one seed share their split (the pairing)."""
        arm, seed = point
        recipe = self.arms[arm]
        update = {"train": recipe.train.model_copy(update={"seed": seed})}
        if self.config.split_follows_seed:
            update["data"] = recipe.data.model_copy(update={"split_seed": seed})
        return recipe.model_copy(update=update)

    def measure(self, result: RunResult) -> tuple[float, Optional[str]]:
        value = run_value(result.history, self.config)
        return value, nan_reason(result.history, self.config, result.status) if math.isnan(value) else None

    def summary(self, result: RunResult) -> dict:
        return run_summary(result.history, result.metrics, self.config)

    def run_rounds(self, workers: int, quiet: bool, device, say=print) -> None:
        """Run the study with ``workers`` local workers to the end: with adaptive seeds, round after
        round, each adding seeds to the arms not decided yet."""
        self.run_workers(workers, quiet, device)
        while self.enqueue_missing():
            say(f"study {self.name}: more seeds for the undecided arms, {len(self.points())} runs in all")
            self.run_workers(workers, quiet, device)
        tag_verdicts(self, self.table_data()["arms"])

    # --- results -----------------------------------------------------------------------------
    def results(self, records: Optional[dict] = None) -> list[dict]:
        """One row per planned (arm, seed) that is recorded: the compared value, the run's summary
        and status (``records``: ``self.records()`` when the caller has read them already)."""
        records = self.records() if records is None else records
        return [{"arm": arm, "seed": seed, **records[(arm, seed)]} for arm, seed in self.planned(records) if (arm, seed) in records]

    def table_data(self) -> dict:
        """The study as data (``reglab study --json``, ``reglab.study()``): the arm table's rows
        (verdicts, intervals, p-values, seeds needed) and every run."""
        records = self.records()  # one read of the storage
        results = self.results(records)
        return {"study": self.name, "metric": self.config.metric, "at_epoch": self.config.at_epoch, "alpha": self.config.alpha,
                "margin": self.config.margin, "finished": len(results), "total": len(self.planned(records)),
                "arms": arm_rows(results, self.config), "runs": results, "directory": str(self.directory)}  # fmt: skip


def compared_epoch(history: list[dict], config) -> Optional[int]:
    """The epoch (1-based) whose value a run contributes: ``at_epoch``, the best or the last;
    None when the run has no such epoch."""
    values = [row[config.metric] for row in history]
    if not values or (config.at_epoch is not None and config.at_epoch > len(values)):
        return None
    if config.at_epoch is not None:
        return config.at_epoch
    if config.reduce == "last" or all(math.isnan(v) for v in values):
        return len(values)
    pick = np.nanargmax if config.maximize else np.nanargmin
    return int(pick(values)) + 1


def run_value(history: list[dict], config) -> float:
    """The study's metric for one run: at ``at_epoch``, its best epoch, or its last."""
    epoch = compared_epoch(history, config)
    return float("nan") if epoch is None else history[epoch - 1][config.metric]


def nan_reason(history: list[dict], config, status: str) -> str:
    """Why a recorded run has no value for the study's metric."""
    if status == "diverged":
        return "diverged (loss not finite)"
    if config.at_epoch is not None and config.at_epoch > len(history):
        return f"study.at_epoch {config.at_epoch} is beyond the {len(history)} epochs it ran"
    return f"{config.metric} is NaN"


def run_summary(history: list[dict], final: dict, config) -> dict:
    """What the table needs of a run besides its value: the losses at ``at_epoch`` when it is set
    (else at the last epoch), and every per-epoch value at the compared epoch (``study.also``
    picks among them, so changing it needs no retraining)."""
    epoch = compared_epoch(history, config)
    losses_at = history[config.at_epoch - 1] if config.at_epoch is not None and epoch else history[-1] if history else {}
    compared = history[epoch - 1] if epoch else {}
    return {
        **{key: losses_at.get(key, float("nan")) for key in ("train_loss", "val_loss", "gap_loss")},
        "best_epoch": final.get("best_epoch", 0),
        "epochs_run": len(history),
        "compared_epoch": epoch,
        "at_compared_epoch": {key: value for key, value in compared.items() if key in EPOCH_METRICS},
    }
