"""Mixing log-mel clips into polyphonic examples: sums in the power domain, log(e^a + e^b), which
is what mixing the waveforms gives for sources that do not overlap in time-frequency. Training
mixes batches (``augment/mixtures.py``); validation builds fixed mixtures to tune thresholds on
(``inference/decisions.py``)."""

from __future__ import annotations

import torch

from .frontend import DB_TO_LOG_POWER


def mix_in(x, targets, partner, active, gain_db):
    """Adds ``x[partner]`` (at ``gain_db``) into the rows where ``active``; labels are unioned."""
    gain = (gain_db * DB_TO_LOG_POWER).view(-1, 1, 1, 1)
    mixed = torch.logaddexp(x, x[partner] + gain)
    x = torch.where(active.view(-1, 1, 1, 1), mixed, x)
    targets = torch.where(active.view(-1, 1), torch.maximum(targets, targets[partner]), targets)
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
        gains = (torch.rand(len(picked), generator=generator) * 2 - 1) * gain_db * DB_TO_LOG_POWER
        rows.append(torch.logsumexp(torch.stack([x[i] + g for i, g in zip(picked, gains)]), dim=0))
        label_rows.append(targets[picked].amax(0))
    return torch.stack(rows), torch.stack(label_rows)
