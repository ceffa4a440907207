"""k seeds of one recipe trained together as one vectorized network (``study.parallel_seeds``).

Every member is the model its own run would build (its own seed: initialization, data order,
augmentation and mixing draws); each step stacks the members' parameters and batches and runs
them through ``torch.func.vmap`` over ``functional_call``, which turns every convolution into one
grouped by member, every dense layer into a batched matrix product, and keeps batch-norm
statistics, pooling, local response normalization and dropout masks per member (``randomness=
"different"``). The loss is the sum of the members' losses, so each receives exactly the gradient
its own run would; optimizers, schedules (a plateau cut included), weight averages, early stopping
and run directories stay per member, and a member that stops leaves the stack.

Nothing couples the members: vmap gives each one its own copy of every operation's semantics. On
a GPU the stack fills a device a small model leaves idle; on a CPU a grouped convolution is no
faster than its k separate ones, so the gain there is the per-step overhead shared
(``benchmarks/parallel_seeds.py``)."""

from __future__ import annotations

import contextlib
import copy
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch
from torch.func import functional_call, vmap

from .. import data as data_sources
from ..device import pick_device
from ..progress import Silent
from ..recipe import Recipe
from .epoch import Step, random_state, run_epoch, set_random_state
from .run import RunResult, Trainee
from .split import Split


# vmap runs a few ops (an adaptive pooling's in-place view) member by member, correctly; it says so once per process
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented the batching rule")

MASK_ORDER = torch.Generator()  # the stack's stream needs no order of its own; a placeholder for own_stream


class StackedModel:
    """Members of one architecture called as one: ``x`` ``[k, B, ...]`` → logits ``[k, B, C]``.
    Parameters are stacked on every call (the stack is differentiable, so gradients land on each
    member's own parameters); buffers updated in the call (batch-norm running statistics) are
    written back to their members."""

    def __init__(self, members: list[torch.nn.Module]):
        self.members = members
        self.template = copy.deepcopy(members[0]).to("meta")
        self.template.memory_format = torch.contiguous_format  # vmap cannot ask a tensor for channels-last
        self.parameter_names = [name for name, _ in members[0].named_parameters()]
        self.buffer_names = [name for name, _ in members[0].named_buffers()]
        # the tensors themselves: optimizers and averages update them in place, so they stay the members' own
        self.parameters = [[dict(member.named_parameters())[name] for member in members] for name in self.parameter_names]
        self.buffers = [[dict(member.named_buffers())[name] for member in members] for name in self.buffer_names]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        stacked = {name: torch.stack(tensors) for name, tensors in zip(self.parameter_names, self.parameters)}
        buffers = {name: torch.stack(tensors) for name, tensors in zip(self.buffer_names, self.buffers)}
        training = self.members[0].training
        self.template.train(training)

        def one(params, bufs, inputs):
            return functional_call(self.template, (params, bufs), (inputs,))

        logits = vmap(one, randomness="different")(stacked, buffers, x)
        if training:
            with torch.no_grad():
                for name, own in zip(self.buffer_names, self.buffers):
                    for j, tensor in enumerate(own):
                        tensor.copy_(buffers[name][j])
        return logits


@contextmanager
def own_stream(states: list[dict], j: int, generator: torch.Generator):
    """Run a block on member ``j``'s global random stream (saved in ``states[j]``), as its own run
    would draw it, then save where the stream got to."""
    set_random_state(generator, states[j])
    try:
        yield
    finally:
        states[j] = random_state(generator)


def stacked_step(trainees: list[Trainee], model: StackedModel, masks: list[dict]) -> Step:
    """``run_epoch``'s step for a stack: every member's batch through the stacked network at once
    (dropout masks drawn from the stack's own stream, ``masks[0]``), the sum of the members'
    losses backward, so that each receives exactly its own run's gradient, then each member's own
    optimizer, schedule and average."""

    def step(inputs: list[torch.Tensor], targets: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        with own_stream(masks, 0, MASK_ORDER), trainees[0].learner.amp:
            logits = model(torch.stack(inputs))
        losses = [t.learner.loss_of(logits[j], targets[j]) for j, t in enumerate(trainees)]
        for t in trainees:
            t.learner.optimizer.zero_grad()
        penalties = [t.learner.penalty_of(logits[j]) for j, t in enumerate(trainees)]
        sum(loss + penalty for loss, penalty in zip(losses, penalties)).backward()
        for t, penalty in zip(trainees, penalties):
            t.learner.record_penalty(penalty)
        for t in trainees:
            t.learner.update()
        return list(logits.detach()), [loss.detach() for loss in losses]

    return step


def train_stack(recipes: list[Recipe], outs: list[str | Path], reporters=None, tags: Optional[list[dict]] = None) -> list[RunResult]:
    """Train the recipes (one architecture and data, each its own seed) together, each into its
    own run directory, to the results their own ``train`` runs would give (up to float rounding,
    and dropout masks drawn otherwise). ``tags``: each member's, for the trackers."""
    reporters = reporters or [Silent() for _ in recipes]
    tags = tags or [None for _ in recipes]
    device = pick_device(recipes[0].train.device)
    full = data_sources.load(recipes[0].data, "train")  # decoded once; each split seed splits it once
    splits = {seed: Split.load(recipes[0].model_copy(update={"data": recipes[0].data.model_copy(update={"split_seed": seed})}), device, full)
              for seed in dict.fromkeys(recipe.data.split_seed for recipe in recipes)}  # fmt: skip
    trainees, streams = [], []
    for recipe, out, reporter, own_tags in zip(recipes, outs, reporters, tags):
        trainees.append(Trainee.start(recipe, out, reporter, split=splits[recipe.data.split_seed], tags=own_tags, stacked=True))
        streams.append(random_state(trainees[-1].generator))  # where this member's own run would be now
    torch.manual_seed(hash(tuple(recipe.train.seed for recipe in recipes)) % 2**62)
    masks = [random_state(MASK_ORDER)]
    while active := [t for t in trainees if t.wants_epoch()]:
        own = [streams[trainees.index(t)] for t in active]
        plans = []
        for j, t in enumerate(active):
            with own_stream(own, j, t.generator):
                plans.append(t.begin_epoch())
        rates = [t.learner.optimizer.lr for t in active]
        step = stacked_step(active, StackedModel([t.learner.model for t in active]), masks)
        drawing = lambda j: own_stream(own, j, active[j].generator) if active[j].augment.ops else contextlib.nullcontext()  # noqa: E731
        results = run_epoch([t.member for t in active], plans, active[0].recipe.train.batch_size, step, drawing)
        for t, lr, (loss, accuracy), state in zip(active, rates, results, own):
            streams[trainees.index(t)] = state
            t.end_epoch(lr, loss, accuracy)
    return [t.finish() for t in trainees]
