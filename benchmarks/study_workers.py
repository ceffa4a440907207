"""The same small study with 1 and with 2 local workers, side by side in one process; prints the
wall-clock speed-up of the second.

    python benchmarks/study_workers.py [--runs-per-arm 2] [--epochs 6]

Each worker gets cpu_count // workers torch threads, as ``reglab study --workers N`` does. It also
times one of the study's runs with 1 and with 2 torch threads: when one run already gains s× from a
second thread, two single-thread workers can gain at most 2/s× over one two-thread worker.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from reglab.recipe import load_study_recipe
from reglab.experiments.study import Study
from reglab.training.run import train

RECIPE = """
name: bench
data: {{source: digits, image_size: 16}}
model: {{name: resnet18, width: 0.25}}
optim: {{name: adam, lr: 0.003}}
train: {{epochs: {epochs}, batch_size: 64}}
study:
  arms: {{none: {{}}, dropout: {{model.dropout.rate: 0.3}}}}
  baseline: none
  seeds: {seeds}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-per-arm", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    run_seconds, study_seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "bench.yaml"
        recipe.write_text(RECIPE.format(epochs=args.epochs, seeds=list(range(args.runs_per_arm))))
        _, arms = load_study_recipe(recipe)
        base = arms["none"]
        train(base.model_copy(update={"train": base.train.model_copy(update={"epochs": 1})}), Path(tmp) / "warm-up")
        for threads in (1, 2):
            torch.set_num_threads(threads)
            started = time.perf_counter()
            train(base, Path(tmp) / f"threads{threads}")  # in this process, as a worker would
            run_seconds[threads] = time.perf_counter() - started
        scaling = run_seconds[1] / run_seconds[2]
        print(f"one run: 1 thread {run_seconds[1]:.1f} s, 2 threads {run_seconds[2]:.1f} s "
              f"-> {scaling:.2f}x from the second thread; 2-worker ceiling {2 / scaling:.2f}x")
        for workers in (1, 2):
            study = Study.prepare(recipe, [], Path(tmp) / f"workers{workers}", None)
            started = time.perf_counter()
            study.run_workers(workers)
            study_seconds[workers] = time.perf_counter() - started
            print(f"{workers} worker(s): {len(study.results())} runs in {study_seconds[workers]:.1f} s")
    print(f"speed-up with 2 workers: {study_seconds[1] / study_seconds[2]:.2f}x")


if __name__ == "__main__":
    main()
