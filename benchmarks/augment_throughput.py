"""Training throughput with the full augmentation stack on and off, side by side in one process.

    python benchmarks/augment_throughput.py [--recipe examples/longtail.yaml] [--rounds 3] [--batches 12] [KEY=VALUE ...]

Both arms train the same model on the same in-memory batches; rounds alternate between the arms so
that drift in machine load hits both. Prints samples/s for each arm and the share of step time the
augmentation costs (1 − on/off throughput).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from reglab import data as sources
from reglab.augment import BatchAugment
from reglab.device import autocast, pick_device
from reglab.losses import create_loss
from reglab.models import create_model
from reglab.optim import Optimizer
from reglab.progress import Silent
from reglab.recipe import AugmentConfig, ScheduleConfig, load_recipe
from reglab.schedules import Schedule
from reglab.train import train_epoch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "longtail.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. more augmentation")
    args = parser.parse_args()

    recipe = load_recipe(args.recipe, args.overrides)
    device = pick_device(recipe.train.device)
    amp = autocast(device, recipe.train.amp)
    data = sources.load(recipe.data, "train")
    counts, shape, n_classes = data.class_counts(), tuple(data.x.shape[1:]), len(data.classes)
    x, y = data.x.to(device), data.y.to(device)
    batch = recipe.train.batch_size
    arms = {
        "augment off": BatchAugment(AugmentConfig(), counts, shape).to(device),
        "augment on": BatchAugment(recipe.augment, counts, shape, recipe.train.balanced_sampling).to(device),
    }
    torch.manual_seed(0)
    model = create_model(recipe.model, shape, n_classes).to(device)
    model.fit(data.x)
    loss_fn = create_loss(recipe.loss, counts).to(device)
    optimizer = Optimizer(recipe.optim, model)
    constant_lr = Schedule(ScheduleConfig(), optimizer.torch, 1, 1)
    generator = torch.Generator().manual_seed(0)
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for round_ in range(args.rounds + 1):  # round 0 warms up and is not counted
        for name, augment in arms.items():
            order, is_extra = augment.epoch(data.y, generator)
            order, is_extra = order[: batch * args.batches], is_extra[: batch * args.batches]
            started = time.perf_counter()
            train_epoch(model, x, y, n_classes, loss_fn, optimizer, constant_lr, augment, order, is_extra, batch, amp, Silent())
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_:
                rates[name].append(len(order) / (time.perf_counter() - started))
    print(f"recipe {args.recipe}  device {device}  threads {torch.get_num_threads()}  batch {batch}  x{args.batches} batches")
    for name, values in rates.items():
        print(f"{name:12s} {statistics.median(values):8.1f} samples/s  (rounds: {', '.join(f'{v:.0f}' for v in values)})")
    off, on = (statistics.median(rates[k]) for k in arms)
    print(f"augmentation share of step time: {100 * (1 - on / off):.1f}%  (on/off throughput {on / off:.3f})")


if __name__ == "__main__":
    main()
