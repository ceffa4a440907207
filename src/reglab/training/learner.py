"""What takes a training step: the model, its loss, optimizer, schedule and weight average."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from .losses import ViewConsistency
from .optim import Optimizer
from .schedules import Schedule
from .swa import StochasticWeightAverage
from .weight_average import WeightAverage


@dataclass
class Learner:
    """What takes a training step: the model, its loss, optimizer, schedule and (optional) weight
    average. ``evaluated`` is what validation sees and checkpoints hold; ``forward`` is what the
    steps call: the model itself, or the model compiled (``train.compile``)."""

    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: Optimizer
    schedule: Schedule
    average: Optional[WeightAverage]
    amp: Any
    forward: Optional[torch.nn.Module] = None
    swa: Optional[StochasticWeightAverage] = None
    scheduled: bool = True  # False while stochastic weight averaging holds the rate
    penalties: Any = 0.0  # the penalties added to the loss, summed over the epoch's steps (on the device)
    consistency: Optional[ViewConsistency] = None  # a penalty between the batch's two halves (data.rooms.consistency)

    def __post_init__(self):
        if self.forward is None:
            self.forward = self.model

    @property
    def evaluated(self) -> torch.nn.Module:
        return self.average.model if self.average else self.model

    def step(self, xb: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch; returns its (detached) logits and loss. With SAM the
        step's gradient is taken again at the perturbed weights."""
        logits, loss, penalty = self.backward(xb, targets)
        self.record_penalty(penalty)
        sam = self.optimizer.sam
        if sam is not None:
            sam.perturb()
            self.backward(xb, targets)
            sam.restore()
        self.update()
        return logits.detach(), loss.detach()

    def backward(self, xb: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """The batch's logits, loss and penalties, and the gradient of loss plus penalties in the parameters."""
        with self.amp:
            logits = self.forward(xb)
        loss = self.loss_of(logits, targets)
        penalty = self.penalty_of(logits)
        self.optimizer.zero_grad()
        (loss + penalty).backward()
        return logits, loss, penalty

    def penalty_of(self, logits: torch.Tensor) -> Any:
        """What is added to the loss: the optimizer's weight penalties and, with two views of every
        visit, their consistency term (a regularization loss on the activations, as Keras counts them)."""
        penalty = self.optimizer.penalty()
        return penalty + self.consistency(logits) if self.consistency else penalty

    def record_penalty(self, penalty) -> None:
        """Add a step's penalties to the epoch's sum (``train_penalty``: a Keras-style cost is loss plus penalties)."""
        self.penalties = self.penalties + (penalty.detach() if isinstance(penalty, torch.Tensor) else penalty)

    def loss_of(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(logits.float(), targets)  # the loss in full precision under bfloat16 autocast

    def update(self) -> None:
        """Everything after the backward pass: the optimizer's step, the per-step schedule, the average."""
        self.optimizer.step()
        if self.scheduled:
            self.schedule.batch_step()
        if self.average is not None:
            self.average.update()

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.torch.state_dict(),
                "schedule": self.schedule.state_dict(), "average": self.average.state_dict() if self.average else None,
                "swa": self.swa.state_dict() if self.swa else None}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.torch.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.average is not None:
            self.average.load_state_dict(state["average"])
        if self.swa is not None and state.get("swa"):
            self.swa.load_state_dict(state["swa"])
