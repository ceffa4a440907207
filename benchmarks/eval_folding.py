"""Evaluation with batch norms folded into the convolutions (what validation, ``evaluate`` and
``predict`` run) against the model as trained, both through ``predict_logits`` at the evaluation
batch, alternated in one process: median samples/s over the training split of ``throughput.py``'s
models (the folded copy made anew each round, as each validation makes it), in float32 and
bfloat16, and the largest logit difference between the two.

    python benchmarks/eval_folding.py [--models resnet18 instrunet alexnet_like] [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch
import torch.nn.functional as F
from throughput import MODELS

from reglab import data as sources
from reglab.allocator import keep_freed_memory
from reglab.device import autocast, cpu_has_bf16
from reglab.inference.predictor import predict_logits
from reglab.models import create_model
from reglab.models.folding import folded
from reglab.recipe import load_recipe


def trained_briefly(name: str):
    """The model after a few AdamW steps (batch norm statistics away from their defaults), its
    training inputs and evaluation batch."""
    path, overrides, _ = MODELS[name]
    recipe = load_recipe(path, overrides)
    data = sources.load(recipe.data, "train")
    torch.manual_seed(0)
    model = create_model(recipe.model, tuple(data.x.shape[1:]), len(data.classes))
    model.fit(data.x)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    labels = data.y if data.y.dim() == 1 else data.y.argmax(1)
    for start in range(0, 320, 64):
        F.cross_entropy(model(data.x[start : start + 64]), labels[start : start + 64]).backward()
        optimizer.step(), optimizer.zero_grad()
    return model, data.x, recipe.train.eval_batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "instrunet", "alexnet_like"], choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    keep_freed_memory()
    precisions = ["off"] + (["bf16"] if cpu_has_bf16() else [])
    print(f"{torch.get_num_threads()} threads")
    print("| model | precision | unfolded samples/s | folded samples/s | ratio | max logit difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    runs = {"unfolded": predict_logits, "folded": lambda model, *rest: predict_logits(folded(model), *rest)}
    for name in args.models:
        model, x, batch = trained_briefly(name)
        for amp in precisions:
            context = functools.partial(autocast, torch.device("cpu"), amp, name)
            rates = {key: [] for key in runs}
            for repeat in range(args.repeats + 1):  # the first round warms up
                for key, run in runs.items():
                    started = time.perf_counter()
                    run(model, x, batch, context())
                    if repeat:
                        rates[key].append(len(x) / (time.perf_counter() - started))
            difference = (runs["unfolded"](model, x, batch, context()) - runs["folded"](model, x, batch, context())).abs().max()
            plain, fast = statistics.median(rates["unfolded"]), statistics.median(rates["folded"])
            print(f"| {name} | {'fp32' if amp == 'off' else amp} | {plain:.0f} | {fast:.0f} | {fast / plain:.2f} | {difference:.1e} |", flush=True)


if __name__ == "__main__":
    main()
