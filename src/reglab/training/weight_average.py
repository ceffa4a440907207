"""Exponential moving average of the weights (Polyak & Juditsky 1992), as timm's ``ModelEmaV3``.

The averaged copy is what validation sees and what checkpoints hold: it smooths the epoch-to-epoch
swings of a model trained at a high rate, so early stopping and best-weights restore pick from a
steadier curve. The decay warms up as ``min(decay, (1 + t) / (10 + t))`` after ``t`` updates, so
the average is not dominated by the random initialization in short runs. Batch-norm statistics are
averaged with the weights; integer buffers (batch counts) are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self._averaged, self._trained, self._counters = [], [], []  # float tensors averaged; integer ones copied
        for mine, theirs in zip(self.model.state_dict().values(), model.state_dict().values()):
            if mine.is_floating_point():
                self._averaged.append(mine)
                self._trained.append(theirs)
            else:
                self._counters.append((mine, theirs))

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average toward the trained model's current weights (one call per step)."""
        weight = 1.0 - self.current_decay()
        self.updates += 1
        torch._foreach_lerp_(self._averaged, self._trained, weight)
        for mine, theirs in self._counters:
            mine.copy_(theirs)

    def state_dict(self) -> dict:
        return {"weights": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["weights"])  # in place: the lists above stay valid
        self.updates = state["updates"]
