"""Polyphonic training examples from monophonic clips (after Kratimenos et al. 2020, who trained
instrument recognition on mixed single-instrument segments): a clip is summed with up to
``max_sources − 1`` others at random gains, and its target becomes the union of their labels.

Sums are taken in the power domain of log-mel features, log(e^a + e^b), which is what mixing the
waveforms gives for sources that do not overlap in time-frequency."""

from __future__ import annotations

import math

import torch


def mix_in(x, targets, partner, active, gain_db):
    """Adds ``x[partner]`` (at ``gain_db``) into the rows where ``active``; labels are unioned."""
    gain = (gain_db * (math.log(10.0) / 10.0)).view(-1, 1, 1, 1)
    mixed = torch.logaddexp(x, x[partner] + gain)
    x = torch.where(active.view(-1, 1, 1, 1), mixed, x)
    targets = torch.where(active.view(-1, 1), torch.maximum(targets, targets[partner]), targets)
    return x, targets


class Mixtures:
    def __init__(self, config, context=None):
        self.config = config

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra=None) -> tuple[torch.Tensor, torch.Tensor]:
        c, n = self.config, len(x)
        chosen = torch.rand(n, device=x.device) < c.p
        extra = torch.randint(1, c.max_sources, (n,), device=x.device) * chosen
        for k in range(c.max_sources - 1):
            partner = torch.randperm(n, device=x.device)
            gain = (torch.rand(n, device=x.device) * 2 - 1) * c.gain_db
            x, targets = mix_in(x, targets, partner, extra > k, gain)
        return x, targets


def validation_mixtures(x: torch.Tensor, targets: torch.Tensor, count: int, max_sources: int, gain_db: float, seed: int = 0):
    """``count`` fixed mixtures of 1..max_sources validation clips of distinct classes, each at a
    gain drawn from U(−gain_db, gain_db), for tuning decision thresholds on polyphonic-like data."""
    generator = torch.Generator().manual_seed(seed)
    labels = targets.argmax(1)
    rows, label_rows = [], []
    for _ in range(count):
        sources = int(torch.randint(1, max_sources + 1, (), generator=generator))
        picked, classes = [], set()
        for index in torch.randperm(len(x), generator=generator).tolist():
            if int(labels[index]) not in classes:
                picked.append(index)
                classes.add(int(labels[index]))
            if len(picked) == sources:
                break
        gains = (torch.rand(len(picked), generator=generator) * 2 - 1) * gain_db * (math.log(10.0) / 10.0)
        rows.append(torch.logsumexp(torch.stack([x[i] + g for i, g in zip(picked, gains)]), dim=0))
        label_rows.append(targets[picked].amax(0))
    return torch.stack(rows), torch.stack(label_rows)
