"""What an epoch visits, planned before it starts: the sampling order (a shuffle or class-balanced
draws), repeated ``repeats`` times, plus minority multicrop's extra views. The batch operations
(``BatchOps``) then transform whatever the plan hands them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .multicrop import MinorityViews
from .sampling import epoch_order


@dataclass
class EpochPlan:
    """Indices into the training tensors in visiting order, and which visits are extra views."""

    order: torch.Tensor
    is_extra: torch.Tensor


class EpochPlanner:
    def __init__(self, class_counts: torch.Tensor, balanced_power: float = 0.0, repeats: int = 1, multicrop=None):
        self.n_classes, self.balanced_power, self.repeats = len(class_counts), balanced_power, repeats
        self.views: Optional[MinorityViews] = MinorityViews(multicrop, class_counts) if multicrop else None

    def epoch(self, labels: torch.Tensor, generator: torch.Generator) -> EpochPlan:
        """This epoch's plan; ``labels`` are the training samples' classes (on the CPU)."""
        order = torch.cat([epoch_order(labels, self.n_classes, self.balanced_power, generator) for _ in range(self.repeats)])
        if self.views is None:
            return EpochPlan(order, torch.zeros(len(order), dtype=torch.bool))
        return EpochPlan(*self.views.expand(order, labels, generator, self.repeats))

    def visits_per_epoch(self, labels: torch.Tensor) -> int:
        """len(order) of every ``epoch(labels, …)``."""
        return len(labels) * self.repeats + (self.views.extra_visits(labels, self.repeats) if self.views else 0)
