"""The order in which an epoch visits the training samples: a plain shuffle, or class-balanced
sampling with weights ∝ n_c^(−power) (power 1: every class equally often; 0.5: square-root
sampling, Mahajan et al. 2018), drawn with replacement, ``n`` samples an epoch."""

from __future__ import annotations

import torch


def epoch_order(labels: torch.Tensor, n_classes: int, power: float, generator: torch.Generator) -> torch.Tensor:
    """``labels``: class index per training sample (on the CPU)."""
    n = len(labels)
    if power == 0:
        return torch.randperm(n, generator=generator)
    counts = torch.bincount(labels, minlength=n_classes).float()
    weights = counts[labels].pow(-power)
    return torch.multinomial(weights, n, replacement=True, generator=generator)
