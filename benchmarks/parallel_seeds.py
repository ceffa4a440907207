"""Per-seed training time of k seeds trained as one stack (``study.parallel_seeds``), relative to
one independent run, in one process.

    python benchmarks/parallel_seeds.py [--models linear alexnet_like resnet18] [--ks 1 2 4 8]
                                        [--batches 12] [--repeats 3]

``linear``: the linear classifier on the built-in digits; ``alexnet_like``: the ablation's model
and data (``examples/ablation.yaml``, typefaces at 64x64); ``resnet18``: the long-tail recipe's
(``examples/longtail.yaml``). For each k: ``--batches`` training steps of a k-member stack
(``stack.stacked_step`` in ``epoch.run_epoch``) and of one independent run (``epoch.one_run``) on the same batches,
alternated, the median of ``--repeats``; the figure is stack time / k / independent time (1: no
gain; 1/k: the stack costs what one run does). Validation runs per member and is not timed.

``--whole E``: whole runs of E epochs instead (data loading, validation, checkpoints and final
metrics included, as a study's worker runs them): k seeds one after another with ``train`` against
the same k seeds with ``stack.train_stack``, per seed; beside each figure, the peak memory of that
training: on CUDA the device's peak allocated memory over the timed rounds; on the CPU, where freed
memory stays with the process, the peak resident set of the training done once more alone in a
fresh process of this script, as a worker holds it: the imported libraries (about 480 MiB: the
linear model's figure is mostly theirs), the run's data, models, optimizer states and activations.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from reglab.augment import EpochPlan
from reglab.recipe import Recipe, StudyRecipe, load_plan, load_recipe, with_overrides
from reglab.training.epoch import one_run, random_state, run_epoch
from reglab.training.run import Trainee, train
from reglab.training.split import Split
from reglab.training.stack import MASK_ORDER, StackedModel, own_stream, stacked_step, train_stack

ROOT = Path(__file__).resolve().parents[1]


def base_recipe(name: str) -> Recipe:
    if name == "linear":
        return load_recipe(None, ["model={name: linear}", "train.batch_size=128"])
    if name == "alexnet_like":  # the ablation study's base recipe
        _, tree = load_plan(ROOT / "examples" / "ablation.yaml", [], False, StudyRecipe, "study")
        return with_overrides(tree, {}, "examples/ablation.yaml")
    return load_recipe(ROOT / "examples" / "longtail.yaml")


def seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure(name: str, ks: list[int], batches: int, repeats: int, folder: Path) -> dict[int, float]:
    recipe = base_recipe(name)
    split = Split.load(recipe, torch.device("cpu"))
    batch = recipe.train.batch_size

    def members(k: int, tag: str):
        trainees = [Trainee.start(recipe.model_copy(update={"train": recipe.train.model_copy(update={"seed": s})}), folder / f"{name}-{tag}-{s}", split=split)
                    for s in range(k)]  # fmt: skip
        plans = []
        for trainee in trainees:
            whole = trainee.planner.epoch(split.train_set.y, trainee.generator)
            plans.append(EpochPlan(whole.order[: batch * batches], whole.is_extra[: batch * batches]))
        return trainees, plans, [random_state(t.generator) for t in trainees]

    (single,), (single_plan,), _ = members(1, "single")
    stacks = {k: members(k, f"k{k}") for k in ks}
    masks = [random_state(MASK_ORDER)]
    timings: dict[str, list[float]] = {"single": [], **{k: [] for k in ks}}
    for repeat in range(repeats + 1):  # the first round warms up
        time_single = seconds(lambda: run_epoch([single.member], [single_plan], batch, one_run(single.learner)))
        if repeat:
            timings["single"].append(time_single)
        for k, (trainees, plans, streams) in stacks.items():
            step = stacked_step(trainees, StackedModel([t.learner.model for t in trainees]), masks)
            time_stack = seconds(lambda: run_epoch([t.member for t in trainees], plans, batch, step, lambda j: own_stream(streams, j, trainees[j].generator)))
            if repeat:
                timings[k].append(time_stack)
    alone = statistics.median(timings["single"])
    return {k: statistics.median(timings[k]) / k / alone for k in ks} | {"single_seconds": alone}


class Peaks(dict):
    """Peak GPU memory in MiB by configuration: ``with peaks.of(key):`` around a training (CUDA)."""

    @contextmanager
    def of(self, key):
        if not torch.cuda.is_available():
            yield
            return
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        yield
        self[key] = torch.cuda.max_memory_allocated() / 2**20


def seeded_recipes(name: str, epochs: int, k: int) -> list[Recipe]:
    base = base_recipe(name)
    recipe = base.model_copy(update={"train": base.train.model_copy(update={"epochs": epochs})})
    return [recipe.model_copy(update={"train": recipe.train.model_copy(update={"seed": s})}) for s in range(k)]


def peak_resident(name: str, epochs: int, k: int) -> float:
    """The peak resident memory (MiB) of one training of ``k`` seeds as a stack (0: one run) alone in
    a fresh process."""
    command = [sys.executable, __file__, "--models", name, "--whole", str(epochs), "--peak-of", str(k)]
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1])


def train_once_for_peak(name: str, epochs: int, k: int) -> float:
    seeded = seeded_recipes(name, epochs, max(k, 1))
    with tempfile.TemporaryDirectory() as folder:
        if k:
            train_stack(seeded, [Path(folder) / f"k{k}-{s}" for s in range(k)])
        else:
            train(seeded[0], Path(folder) / "single")
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def measure_whole(name: str, ks: list[int], epochs: int, repeats: int, folder: Path) -> tuple[dict, Peaks]:
    seeded = seeded_recipes(name, epochs, max(ks))
    timings: dict[int, list[float]] = {k: [] for k in ks}
    alone: list[float] = []
    peaks = Peaks()
    for repeat in range(repeats + 1):
        tag = f"{name}-{repeat}"
        with peaks.of("single"):
            one = seconds(lambda: train(seeded[0], folder / f"{tag}-single"))
        if repeat:
            alone.append(one)
        for k in ks:
            with peaks.of(k):
                together = seconds(lambda: train_stack(seeded[:k], [folder / f"{tag}-k{k}-{s}" for s in range(k)]))
            if repeat:
                timings[k].append(together)
    single = statistics.median(alone)
    if not torch.cuda.is_available():
        peaks.update({key: peak_resident(name, epochs, 0 if key == "single" else key) for key in ["single", *ks]})
    return {k: statistics.median(timings[k]) / k / single for k in ks} | {"single_seconds": single}, peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["linear", "alexnet_like", "resnet18"], choices=["linear", "alexnet_like", "resnet18"])
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whole", type=int, metavar="EPOCHS", help="time whole runs of this many epochs instead of training steps")
    parser.add_argument("--peak-of", type=int, help=argparse.SUPPRESS)  # the child that measures one training's resident peak
    args = parser.parse_args()
    if args.peak_of is not None:
        print(train_once_for_peak(args.models[0], args.whole, args.peak_of))
        return
    what = f"whole runs of {args.whole} epochs" if args.whole else f"{args.batches} steps each"
    memory = (" (peak GPU memory allocated)" if torch.cuda.is_available() else " (peak resident memory)") if args.whole else ""
    print(f"{torch.get_num_threads()} threads; {what}; per-seed time of a k-stack relative to one independent run{memory}")
    print("| model | batch | one run (s) | " + ("one run MiB | " if args.whole else "") + " | ".join(f"k = {k}" for k in args.ks) + " |")
    print("| --- | --- | --- | " + ("--- | " if args.whole else "") + " | ".join("---" for _ in args.ks) + " |")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            peaks = None
            if args.whole:
                ratios, peaks = measure_whole(name, args.ks, args.whole, args.repeats, Path(folder))
            else:
                ratios = measure(name, args.ks, args.batches, args.repeats, Path(folder))
            batch = base_recipe(name).train.batch_size
            cells = [f"{ratios[k]:.2f}" + (f" ({peaks[k]:.0f} MiB)" if peaks else "") for k in args.ks]
            alone = f"{ratios['single_seconds']:.2f} | " + (f"{peaks['single']:.0f} | " if peaks else "")
            print(f"| {name} | {batch} | {alone}" + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
