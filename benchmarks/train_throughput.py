"""Training throughput of two arms that differ in one thing, side by side in one process.

    python benchmarks/train_throughput.py [--compare augment|layout] [--recipe examples/longtail.yaml]
                                          [--rounds 3] [--batches 12] [KEY=VALUE ...]

``augment``: the recipe's full augmentation stack on and off (prints the share of step time it
costs, 1 − on/off throughput). ``layout``: the recipe's model with NCHW and with channels-last
(NHWC) tensors (prints the speed-up). Both arms train from the same initial weights on the same
in-memory batches; rounds alternate between the arms so that drift in machine load hits both.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from reglab import data as sources
from reglab.augment import BatchOps, EpochPlan, EpochPlanner
from reglab.device import autocast, pick_device
from reglab.training.losses import create_loss
from reglab.models import create_model
from reglab.training.optim import Optimizer
from reglab.progress import Silent
from reglab.recipe import AugmentConfig, NoScheduleConfig, load_recipe
from reglab.training.schedules import Schedule
from reglab.data.dataset import Samples
from reglab.training.epoch import Member, one_run, run_epoch
from reglab.training.learner import Learner

ROOT = Path(__file__).resolve().parents[1]


def build_arms(compare: str, recipe, data, device) -> dict[str, tuple[Learner, BatchOps, EpochPlanner]]:
    """name → (learner at a constant rate, augment) for the two arms compared."""
    counts, shape, n_classes = data.class_counts(), tuple(data.x.shape[1:]), len(data.classes)
    loss_fn = create_loss(recipe.loss, counts).to(device)
    amp = autocast(device, recipe.train.amp, recipe.model.name)  # what a run of the recipe trains at

    def arm(augment_config, channels_last: bool) -> tuple[Learner, BatchOps, EpochPlanner]:
        torch.manual_seed(0)
        model = create_model(recipe.model.model_copy(update={"channels_last": channels_last}), shape, n_classes).to(device)
        model.fit(data.x)
        augment = BatchOps(augment_config, counts, shape).to(device)
        planner = EpochPlanner(counts, recipe.train.balanced_sampling, 1, augment_config.multicrop)
        optimizer = Optimizer(recipe.optim, model)
        return Learner(model, loss_fn, optimizer, Schedule(NoScheduleConfig(), optimizer.torch, 1, 1), None, amp), augment, planner

    if compare == "augment":
        return {"augment off": arm(AugmentConfig(), recipe.model.channels_last),
                "augment on": arm(recipe.augment, recipe.model.channels_last)}  # fmt: skip
    return {"NCHW": arm(recipe.augment, False), "channels_last": arm(recipe.augment, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=["augment", "layout"], default="augment")
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "longtail.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. more augmentation")
    args = parser.parse_args()

    recipe = load_recipe(args.recipe, args.overrides)
    device = pick_device(recipe.train.device)
    data = sources.load(recipe.data, "train")
    on_device = Samples(data.x.to(device), data.y.to(device), data.classes, data.ids)
    batch = recipe.train.batch_size
    arms = build_arms(args.compare, recipe, data, device)
    generator = torch.Generator().manual_seed(0)
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for round_ in range(args.rounds + 1):  # round 0 warms up and is not counted
        for name, (learner, augment, planner) in arms.items():
            whole = planner.epoch(data.y, generator)
            plan = EpochPlan(whole.order[: batch * args.batches], whole.is_extra[: batch * args.batches])
            started = time.perf_counter()
            run_epoch([Member(on_device, augment, learner, Silent())], [plan], batch, one_run(learner))
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_:
                rates[name].append(len(plan.order) / (time.perf_counter() - started))
    print(f"recipe {args.recipe}  device {device}  threads {torch.get_num_threads()}  batch {batch}  x{args.batches} batches")
    for name, values in rates.items():
        print(f"{name:14s} {statistics.median(values):8.1f} samples/s  (rounds: {', '.join(f'{v:.0f}' for v in values)})")
    first, second = (statistics.median(rates[name]) for name in arms)
    if args.compare == "augment":
        print(f"augmentation share of step time: {100 * (1 - second / first):.1f}%  (on/off throughput {second / first:.3f})")
    else:
        print(f"channels_last speed-up: {second / first:.2f}x")


if __name__ == "__main__":
    main()
