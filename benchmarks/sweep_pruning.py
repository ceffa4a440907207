"""A grid sweep against a pruned, sampled sweep on the same space and data: the best validation
value each finds, and the epochs each spends until it has run a configuration within one point of
the grid's best.

    python benchmarks/sweep_pruning.py [--recipe examples/grid_search.yaml] [--grid sweeps/grid_search]
                                       [--sampler tpe] [--pruner hyperband] [--seeds 0 1 2]

The grid runs to completion (or an existing finished grid sweep of the same recipe is read with
``--grid``); then, for each seed, a sweep with the same space, sampler ``--sampler`` and pruner
``--pruner`` proposes configurations until it has trained as many epochs as the grid did. Its
epochs are counted in the order its runs finished (one worker, so that order is the one it ran
them in); the grid's in its own order (the product order of the recipe's choices), and also as
the mean over random orders, which is what a grid gives when its order carries no information.

On a small discrete space a sampler soon proposes points already run; those are not trained again
(a point pruned early is never given its full budget later). ``--continuous`` samples instead the
ranges the grid spans (log-uniform where a range covers a factor of 10 or more).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import yaml
from optuna.trial import TrialState

from reglab.experiments.storage import POINT
from reglab.experiments.sweep import Sweep

ONE_POINT = 0.01


class EpochBudget(Sweep):
    """A sampled sweep that proposes configurations until ``budget`` epochs are trained (or the
    space is spent: ``patience`` proposals in a row repeat points already run)."""

    budget, patience = 0, 30

    def epochs_spent(self) -> int:
        return sum(row["epochs_run"] for row in self.records().values())

    def space_spent(self) -> bool:
        trials = sorted(self.optuna.get_trials(deepcopy=False), key=lambda t: t.number)[-self.patience:]
        return len(trials) == self.patience and all("repeat_of" in t.user_attrs for t in trials)

    def wants_more(self) -> bool:
        return self.epochs_spent() < self.budget and not self.space_spent()

    def admits(self, trial) -> bool:
        return self.wants_more()


def finished_in_order(sweep: Sweep) -> list[dict]:
    """Recorded runs in the order they finished."""
    trials = [t for t in sweep.optuna.get_trials(deepcopy=False) if "summary" in t.user_attrs and t.datetime_complete]
    rows = {row["name"]: row for row in sweep.results()}
    return [rows[sweep.run_name(tuple(t.user_attrs[POINT]))] for t in sorted(trials, key=lambda t: t.datetime_complete)]


def continuous(recipe: str, out: Path) -> Path:
    """The recipe with each numeric choice of ``search.space`` turned into the range it spans."""
    tree = yaml.safe_load(Path(recipe).read_text())
    for key, spec in tree["search"]["space"].items():
        values = spec.get("choice", [])
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            low, high = min(values), max(values)
            tree["search"]["space"][key] = {"loguniform" if low > 0 and high >= 10 * low else "uniform": [low, high]}
    out.write_text(yaml.safe_dump(tree, sort_keys=False))
    return out


def epochs_to_reach(rows: list[dict], target: float) -> int | None:
    spent = 0
    for row in rows:
        spent += row["epochs_run"]
        if row["value"] >= target:
            return spent
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="examples/grid_search.yaml")
    parser.add_argument("--grid", type=Path, help="a finished grid sweep of --recipe to read instead of running it")
    parser.add_argument("--sampler", default="tpe", choices=["tpe", "random"])
    parser.add_argument("--pruner", default="hyperband", choices=["hyperband", "successive_halving", "median"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampler seeds of the pruned sweep")
    parser.add_argument("--workers", type=int, default=2, help="workers of the grid, when it is run here")
    parser.add_argument("--continuous", action="store_true", help="sample the ranges the grid spans instead of its points")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        grid = Sweep(args.grid) if args.grid else Sweep.prepare(args.recipe, [], Path(tmp) / "grid", None)
        if not args.grid:
            started = time.perf_counter()
            grid.run_workers(args.workers, quiet=True)
            print(f"grid: {len(grid.points())} points in {time.perf_counter() - started:.0f} s with {args.workers} workers")
        if grid.count(TrialState.WAITING, TrialState.RUNNING) or len(grid.records()) < len(grid.points()):
            raise SystemExit(f"{grid.directory}: the grid is not finished")
        rows = finished_in_order(grid)
        budget = sum(row["epochs_run"] for row in rows)
        best = max(row["value"] for row in rows)
        target = best - ONE_POINT
        shuffled = []
        for seed in range(200):
            order = rows[:]
            random.Random(seed).shuffle(order)
            shuffled.append(epochs_to_reach(order, target))
        print(f"grid: best {grid.config.metric} {best:.4f} over {len(rows)} configurations, {budget} epochs; "
              f"epochs to a configuration within one point ({target:.4f}): {epochs_to_reach(rows, target)} in its order, "
              f"{sum(shuffled) / len(shuffled):.0f} on average over random orders")  # fmt: skip
        recipe = continuous(args.recipe, Path(tmp) / "continuous.yaml") if args.continuous else args.recipe
        for seed in args.seeds:
            overrides = [f"search.sampler={args.sampler}", f"search.pruner={args.pruner}", f"search.seed={seed}", "name=pruned"]
            sweep = EpochBudget.prepare(recipe, overrides, Path(tmp) / f"pruned{seed}", None)
            sweep.budget, sweep.quiet = budget, True
            started = time.perf_counter()
            sweep.work()
            pruned_rows = finished_in_order(sweep)
            spent = sum(row["epochs_run"] for row in pruned_rows)
            reached = epochs_to_reach(pruned_rows, target)
            found = max(row["value"] for row in pruned_rows)
            finished = max((row["value"] for row in pruned_rows if row["status"] != "pruned"), default=float("nan"))
            share = f"{reached / budget:.0%} of the grid's epochs" if reached else "never"
            print(f"{args.sampler}+{args.pruner}{' (continuous)' if args.continuous else ''} seed {seed}: best {found:.4f} (best run to the end {finished:.4f}) over "
                  f"{len(pruned_rows)} configurations ({sum(r['status'] == 'pruned' for r in pruned_rows)} pruned, "
                  f"{sweep.repeats()} repeated proposals), {spent} epochs in {time.perf_counter() - started:.0f} s; "
                  f"epochs to within one point of the grid's best: {reached} ({share})")  # fmt: skip


if __name__ == "__main__":
    main()
