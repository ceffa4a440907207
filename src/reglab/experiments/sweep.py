"""Sweeps: configurations of a base recipe from a search space (``search_space.py``), one seed
each, on the engine's queue (``engine.py``: storage, workers, heartbeats, resume), ranked by the
validation metric; the winner comes back as ``best.yaml`` and is confirmed over seeds by a study.

A grid enqueues every point up front, as a study enqueues its (arm, seed) pairs, so each runs
exactly once with any number of workers. ``random`` and ``tpe`` (Bergstra et al. 2011) propose a
point when a worker finds the queue empty, until ``search.trials`` have been proposed. Pruners
(median, successive halving / ASHA, Li et al. 2018; Hyperband, Li et al. 2017) stop a run
between epochs from the validation values every run reports; a pruned run keeps its directory,
its history and its row.

Sweep directory: ``sweep.yaml`` (resolved recipe), ``sweep.json`` (name, storage URL),
``sweep.db``, ``runs/<configuration>/``, ``best.yaml`` and, after ``sweep confirm``,
``confirm.yaml`` and the study ``confirm/``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional

import optuna
import yaml

from ..errors import UserError
from ..recipe import Recipe, with_overrides
from ..rundir import directory_kind, write_atomic
from ..training.run import RunResult
from .engine import Engine
from .search_space import load_sweep_recipe, run_name
from .storage import PATIENCE, PLAN, make_storage, stored_plan
from .study import Study, compared_epoch, nan_reason, run_summary, run_value
from .table import metric_label, searched_text

MIN_FOR_IMPORTANCE = 5  # completed runs below which importances are noise
FINISHED, PRUNED, OTHER = 0, 1, 2  # ranking groups: runs that trained to the end, pruned ones, diverged or valueless ones


class SeededPerTrial(optuna.samplers.BaseSampler):
    """A sampler made afresh for each trial, seeded by the sweep's seed and the trial's number: the
    same recipe proposes the same configurations whichever worker asks (workers sharing one seeded
    sampler would propose the same point twice)."""

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int):
        self.make, self.seed, self.current = make, seed, (None, None)

    def for_trial(self, trial) -> optuna.samplers.BaseSampler:
        if self.current[0] != trial.number:
            self.current = (trial.number, self.make((self.seed * 100_003 + trial.number) % 2**32))
        return self.current[1]

    def infer_relative_search_space(self, study, trial):
        return self.for_trial(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.for_trial(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.for_trial(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self.for_trial(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.for_trial(trial).after_trial(study, trial, state, values)


class Sweep(Engine):
    kind, home = "sweep", "sweeps"

    @classmethod
    def load(cls, path, overrides=(), saved: bool = False):
        return load_sweep_recipe(path, overrides, saved)[0]

    @classmethod
    def comparable(cls, tree: dict) -> dict:
        """A sweep may be rerun with another ``--trials``: the budget is not part of what it is."""
        return {**tree, "search": {k: v for k, v in tree["search"].items() if k != "trials"}}

    def read_plan(self, path: Path) -> None:
        self.recipe, self.base, self.space = load_sweep_recipe(path, saved=True)
        self.config = self.recipe.search

    def sampler(self) -> optuna.samplers.BaseSampler:
        if self.config.sampler == "tpe":
            return SeededPerTrial(lambda seed: optuna.samplers.TPESampler(seed=seed, constant_liar=True), self.config.seed)
        return SeededPerTrial(lambda seed: optuna.samplers.RandomSampler(seed=seed), self.config.seed)

    def pruner(self) -> Optional[optuna.pruners.BasePruner]:
        c = self.config
        if c.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=c.min_epochs - 1)
        if c.pruner == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=c.min_epochs, reduction_factor=c.reduction_factor)
        if c.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=c.min_epochs, max_resource=self.recipe.train.epochs,
                                                  reduction_factor=c.reduction_factor)  # fmt: skip
        return None

    # --- the plan: points of the search space ------------------------------------------------
    @property
    def grid(self) -> bool:
        return self.config.sampler == "grid"

    def points(self) -> list[tuple]:
        return self.space.grid() if self.grid else []

    def total(self) -> int:
        """Configurations the sweep will have run (proposals that repeat a point are not run again)."""
        return len(self.points()) if self.grid else self.config.trials - self.repeats()

    def wants_more(self) -> bool:
        return not self.grid and self.proposed() < self.config.trials

    def admits(self, trial: optuna.Trial) -> bool:
        return not self.grid and self.proposed(before=trial.number) < self.config.trials

    def point_params(self, point: tuple) -> dict:
        return self.space.values(point)

    def suggest(self, trial: optuna.Trial) -> tuple:
        return self.space.suggest(trial)

    def run_name(self, point: tuple) -> str:
        return run_name(self.space, point)

    def describe(self, point: tuple) -> dict[str, str]:
        return {key: str(value) for key, value in self.space.overrides(point).items()}

    def recipe_for(self, point: tuple) -> Recipe:
        origin = f"{self.directory / 'sweep.yaml'}: configuration {self.run_name(point)}"
        return with_overrides(self.base, self.space.overrides(point), origin, saved=True)

    def measure(self, result: RunResult) -> tuple[float | list[float], Optional[str]]:
        """The run's value, or a multi-objective sweep's values (every metric at the first one's
        compared epoch)."""
        epoch = compared_epoch(result.history, self.config)
        values = [float("nan") if epoch is None else float(result.history[epoch - 1][m]) for m, _ in self.config.objectives]
        if result.status == "diverged":  # failed for the sampler, so it never steers towards an unstable region
            values = [float("nan")] * len(values)
        reason = None
        if any(math.isnan(v) for v in values):
            reason = "diverged (loss not finite)" if result.status == "diverged" else nan_reason(result.history, self.config, result.status)
        return (values if self.config.multi else values[0]), reason

    def summary(self, result: RunResult) -> dict:
        return {**run_summary(result.history, result.metrics, self.config), "best_value": run_value(result.history, self.config)}

    # --- results -----------------------------------------------------------------------------
    def results(self) -> list[dict]:
        """Recorded configurations, best first: runs that trained to the end by value, then pruned
        runs, then diverged or valueless ones. ``value`` is the metric over the epochs run."""
        rows = []
        for point, record in self.records().items():
            value = record["best_value"]
            group = OTHER if record["status"] == "diverged" or math.isnan(value) else PRUNED if record["status"] == "pruned" else FINISHED
            values = {m: record.get("at_compared_epoch", {}).get(m, float("nan")) for m, _ in self.config.objectives}
            rows.append({**record, "value": value, "values": values, "group": group, "name": self.run_name(point), "point": list(point),
                         "params": self.space.values(point), "overrides": self.space.overrides(point)})  # fmt: skip
        if self.config.multi:
            pareto_fronts([row for row in rows if row["group"] == FINISHED], self.config.objectives)
        sign = -1 if self.config.maximize else 1
        rows.sort(key=lambda row: (row["group"], row.get("front", 0), sign * row["value"] if row["group"] != OTHER else 0.0))
        for rank, row in enumerate(rows, 1):
            row["rank"] = rank
        return rows

    def importances(self) -> dict[str, float]:
        """Parameter importances (Optuna's fANOVA evaluator, Hutter et al. 2014) over the completed
        runs; empty with fewer than ``MIN_FOR_IMPORTANCE`` of them."""
        complete = self.optuna.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) < MIN_FOR_IMPORTANCE:
            return {}
        target = (lambda trial: trial.values[0]) if self.config.multi else None  # several objectives: the first's
        try:
            return optuna.importance.get_param_importances(self.optuna, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                                                           target=target)  # fmt: skip
        except (RuntimeError, ValueError):  # every completed run shares a value, or no parameter varies
            return {}

    def write_best(self, rows: list[dict]) -> Optional[Path]:
        """``best.yaml``: the best configuration that trained to the end, as a plain recipe."""
        best = next((row for row in rows if row["group"] == FINISHED), None)
        if best is None:
            return None
        recipe = self.recipe_for(tuple(best["point"]))
        front = [row for row in rows if row.get("front") == 1]
        header = "".join(f"# Pareto-optimal ({', '.join(self.config.metrics)}): {row['name']}: "
                         f"{', '.join(f'{v:.4f}' for v in row['values'].values())}\n" for row in front)  # fmt: skip
        header += (f"# Best configuration of sweep {self.name}, ranked by {metric_label(self.config, 'at epoch')}: {best['value']:.4f} "
                  f"(seed {recipe.train.seed}, run {best['name']}; one seed: confirm it on fresh seeds with `reglab sweep confirm`).\n"
                  f"# Searched values: {searched_text(best['params'], self.space.names)}\n"
                  f"# The same numbers on CPU need the same thread count: OMP_NUM_THREADS={best['threads']} reglab train best.yaml\n")  # fmt: skip
        path = self.directory / "best.yaml"
        write_atomic(path, lambda tmp: tmp.write_text(header + yaml.safe_dump(recipe.to_dict(), sort_keys=False), encoding="utf-8"))
        return path

    def selecting_seeds(self) -> set[int]:
        """The seed and split seed every configuration of the sweep was ranked on."""
        return {self.recipe.train.seed, self.recipe.data.split_seed}

    def confirmation_seeds(self, seeds: str | int) -> list[int]:
        """A count (the next seeds after the sweep's) or an explicit comma-separated list; never a
        seed the sweep selected on, where the winner's luck lives (the winner's curse)."""
        selecting = self.selecting_seeds()
        text = str(seeds).strip()
        if "," in text:
            try:
                chosen = [int(part) for part in text.split(",") if part.strip()]
            except ValueError:
                raise UserError(f"--seeds {text}: a count, or seeds separated by commas (e.g. 1,2,3)") from None
            if len(set(chosen)) < 2 or len(set(chosen)) != len(chosen) or min(chosen) < 0:
                raise UserError(f"--seeds {text}: a confirmation needs 2 or more different seeds, none negative")
            if selecting & set(chosen):
                raise UserError(f"--seeds {text}: seed {min(selecting & set(chosen))} is one the sweep selected on "
                                f"(train.seed / data.split_seed {sorted(selecting)}); confirm on fresh seeds")  # fmt: skip
            return chosen
        try:
            count = int(text)
        except ValueError:
            raise UserError(f"--seeds {text}: a count, or seeds separated by commas (e.g. 1,2,3)") from None
        if count < 2:
            raise UserError(f"--seeds {count}: a confirmation needs 2 or more seeds")
        fresh, seed = [], max(selecting) + 1
        while len(fresh) < count:
            fresh.append(seed)
            seed += 1
        return fresh

    def confirmation(self, top: int, seeds: str | int, baseline: Optional[str], out: Path) -> tuple[Path, dict[str, dict]]:
        """``confirm.yaml``: a study whose arms are the ``top`` configurations that trained to the end
        (``top1`` the baseline) over fresh ``seeds`` (``confirmation_seeds``), each seed with its own
        split, or with ``baseline="base"`` the base recipe as an arm and the baseline. Returns its
        path and each arm's searched values; the sweep's storage keeps which run each arm is, and
        the confirmation study's name and directory (``out``), for the report."""
        if top < 1:
            raise UserError(f"--top {top}: sweep confirm compares 1 or more configurations")
        if baseline not in (None, "base"):
            raise UserError(f"--baseline {baseline}: the only other baseline is 'base' (the recipe without the searched values)")
        seed_list = self.confirmation_seeds(seeds)
        finished = [row for row in self.results() if row["group"] == FINISHED][:top]
        if not finished:
            raise UserError(f"{self.directory}: no configuration has trained to the end yet; nothing to confirm")
        arms = {f"top{i}": row for i, row in enumerate(finished, 1)}
        study = {"arms": {arm: self.arm_overrides(row) for arm, row in arms.items()}, "baseline": baseline or "top1",
                 "seeds": seed_list, "split_follows_seed": True,
                 **self.config.model_dump(include={"metric", "reduce", "at_epoch", "direction", "heartbeat_seconds"})}  # fmt: skip
        if baseline:
            study["arms"] = {"base": {}, **study["arms"]}
        tree = {**self.base, "name": f"{self.name}-confirm", "study": study}
        header = (f"# Confirmation of sweep {self.name}: its top {len(arms)} configurations over seeds {', '.join(map(str, seed_list))}, "
                  f"each with its own train/validation split.\n# Fresh seeds: the sweep ranked every configuration on "
                  f"train.seed / data.split_seed {', '.join(map(str, sorted(self.selecting_seeds())))}, which no arm here uses.\n")  # fmt: skip
        path = self.directory / "confirm.yaml"
        write_atomic(path, lambda tmp: tmp.write_text(header + yaml.safe_dump(tree, sort_keys=False), encoding="utf-8"))
        self.optuna.set_user_attr("confirmation", {"directory": str(Path(out).resolve()), "study": tree["name"],
                                                    "arms": {arm: row["name"] for arm, row in arms.items()}})  # fmt: skip
        return path, {arm: row["params"] for arm, row in arms.items()}

    def arm_overrides(self, row: dict) -> dict:
        """A configuration as study-arm overrides: every section it touches, whole and resolved (a
        dotted key alone would leave keys of the base's section that a changed ``name`` refuses)."""
        resolved = self.recipe_for(tuple(row["point"])).to_dict()
        return {section: resolved[section] for section in dict.fromkeys(key.split(".")[0] for key in row["overrides"])}


def pareto_fronts(rows: list[dict], objectives: list[tuple[str, bool]]) -> None:
    """Non-dominated sorting (Deb et al. 2002): ``row["front"]`` is 1 for the Pareto-optimal
    configurations, 2 for those only they dominate, and so on."""
    signed = [[row["values"][m] if up else -row["values"][m] for m, up in objectives] for row in rows]  # every objective maximized

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    left, front = set(range(len(rows))), 1
    while left:
        current = {i for i in left if not any(dominates(signed[j], signed[i]) for j in left if j != i)}
        for i in current:
            rows[i]["front"] = front
        left -= current
        front += 1


def open_directory(directory, storage_url: Optional[str] = None, patience: float = PATIENCE) -> Engine:
    """The study or sweep kept in ``directory``."""
    engine = Sweep if directory_kind(directory) == "sweep" else Study
    return engine(directory, storage_url, patience=patience)


def plans_in(storage_url: str) -> list[dict]:
    """The studies and sweeps a storage holds: name, kind, and trials by state."""
    storage = make_storage(storage_url, 10)
    found = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        plan = summary.user_attrs.get(PLAN) or {}
        trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
        found.append({"name": summary.study_name, "kind": plan.get("kind", "?"),
                      "finished": sum(t.state.is_finished() for t in trials), "trials": len(trials)})  # fmt: skip
    return found


def local_directory(storage_url: str, name: str, out: Optional[Path] = None) -> Path:
    """A directory on this machine for the study or sweep ``name`` of a storage, made from the plan
    the storage keeps (its resolved recipe): a worker elsewhere needs no shared folder. Runs train
    into its ``runs/``; a directory made before is reused."""
    plan = stored_plan(storage_url, name)
    if plan is None:
        raise UserError(f"--study {name}: {storage_url} holds no study or sweep of that name (reglab study list --storage URL)")
    if not plan:
        raise UserError(f"--study {name}: its plan is not in the storage (created before reglab kept it there); join it with its directory")
    engine = Sweep if plan["kind"] == "sweep" else Study
    directory = Path(out or Path(engine.home) / name)
    if directory_kind(directory) is None:
        directory.mkdir(parents=True, exist_ok=True)
        engine.write_recipe(directory, plan["recipe"])
        engine.write_info(directory, name, storage_url)
    elif directory_kind(directory) != plan["kind"] or engine(directory).name != name:
        raise UserError(f"{directory}: holds another study or sweep; choose another --out")
    return directory
