"""One epoch of steps, the same loop for one run and for k seeds trained as one stack
(``stack.py``): data sits on the device as uint8 tensors, every batch is an index into them and is
augmented as a whole (airbench-style, no DataLoader, no per-sample Python); loss and accuracy are
summed on the device and read once per epoch, the live loss in the progress bar once every
``REFRESH_EVERY`` steps. And the random streams a run draws from, saved and restored for resume."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..augment import BatchOps, EpochPlan
from ..data.dataset import Samples
from ..inference.predictor import targets_for
from .learner import Learner

REFRESH_EVERY = 10

# (inputs, targets) of every member -> (logits, loss) of every member, after the optimizer steps
Step = Callable[[list[torch.Tensor], list[torch.Tensor]], tuple[list[torch.Tensor], list[torch.Tensor]]]


def batches_in(n: int, batch_size: int) -> int:
    """Batches an epoch of ``n`` visits takes; a last batch of one sample is dropped (batch norm)."""
    return n // batch_size if n % batch_size == 1 else math.ceil(n / batch_size)


@dataclass
class Member:
    """What an epoch's steps need of a run: its training split on the device, its batch
    operations, its learner and where its progress goes."""

    data: Samples
    augment: BatchOps
    learner: Learner
    reporter: Any

    def batch(self, index: torch.Tensor, n_classes: int, is_extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The visits ``index`` as the step sees them, augmented as a whole; when the learner has a
        consistency penalty (``data.rooms.consistency``), followed by the same visits each in one of
        its rooms, through the same draws of every batch operation (the same mixtures, gains and
        masks), so that the two halves differ by the room."""
        targets = targets_for(self.data.y[index], n_classes)
        if self.learner.consistency is None:
            return self.augment(self.data.visited(index), targets, is_extra)
        visited, in_rooms = self.data.visited(index), self.data.a_variant(index)
        cuda = [index.device] if index.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # the stream is back where it was after the first half
            first, first_targets = self.augment(visited, targets, is_extra)
        second, _ = self.augment(in_rooms, targets, is_extra)
        return torch.cat([first, second]), first_targets.repeat(2, 1)


def one_run(learner: Learner) -> Step:
    """``run_epoch``'s step for a single run: the learner's own step."""

    def step(inputs: list[torch.Tensor], targets: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, loss = learner.step(inputs[0], targets[0])
        return [logits], [loss]

    return step


def run_epoch(members: list[Member], plans: list[EpochPlan], batch_size: int, step: Step,
              drawing=lambda j: contextlib.nullcontext()) -> list[tuple[float, float]]:  # fmt: skip
    """One pass of every member over its own training split in its plan's order, each batch
    augmented as a whole inside ``drawing(j)`` (the member's random stream; one run: the global
    one), then ``step`` on all members' batches at once; returns each member's (loss, accuracy)
    against the (possibly mixed) targets' top class."""
    device, n_classes = members[0].data.x.device, len(members[0].data.classes)
    orders, extras = [p.order.to(device) for p in plans], [p.is_extra.to(device) for p in plans]
    for member in members:
        member.learner.model.train()
    loss_sums, correct = torch.zeros(len(members), device=device), torch.zeros(len(members), device=device)
    n_batches, seen = batches_in(len(orders[0]), batch_size), 0
    for number in range(n_batches):
        batch = slice(number * batch_size, (number + 1) * batch_size)
        inputs, targets = [], []
        for j, member in enumerate(members):
            index = orders[j][batch]
            with drawing(j):
                xb, tb = member.batch(index, n_classes, extras[j][batch])
            inputs.append(xb)
            targets.append(tb)
        logits, losses = step(inputs, targets)
        count = len(targets[0])
        loss_sums += torch.stack(losses) * count
        correct += torch.stack([(out.argmax(1) == target.argmax(1)).sum() for out, target in zip(logits, targets)])
        seen += count
        if (number + 1) % REFRESH_EVERY == 0 or number + 1 == n_batches:
            for j, member in enumerate(members):
                member.reporter.batch_end(number + 1, loss_sums[j].item() / seen)
    return [(loss / seen, hits / seen) for loss, hits in zip(loss_sums.tolist(), correct.tolist())]


def random_state(generator: torch.Generator) -> dict:
    """Every random stream the loop draws from: the epoch order's generator and torch's global
    one (augmentation, mixing, dropout); nothing in the loop draws from numpy or ``random``."""
    state = {"order": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(generator: torch.Generator, state: dict) -> None:
    generator.set_state(state["order"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
