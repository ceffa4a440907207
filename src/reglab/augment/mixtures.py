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
    def __init__(self, config):
        self.config = config

    def __call__(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, n = self.config, len(x)
        chosen = torch.rand(n, device=x.device) < c.p
        extra = torch.randint(1, c.max_sources, (n,), device=x.device) * chosen
        for k in range(c.max_sources - 1):
            partner = torch.randperm(n, device=x.device)
            gain = (torch.rand(n, device=x.device) * 2 - 1) * c.gain_db
            x, targets = mix_in(x, targets, partner, extra > k, gain)
        return x, targets


def pan_gains(count: int, generator: torch.Generator) -> torch.Tensor:
    """``[3, count]`` log-power gains of sources placed at random across the stereo field, as the
    downmix, the left and the right channel hear them: a balance p ~ U(0, 1) keeps a channel at
    full level up to the centre and fades the other linearly (−26 dB at most, never silent)."""
    p = torch.rand(count, generator=generator)
    left, right = (2 * (1 - p)).clamp(0.05, 1.0), (2 * p).clamp(0.05, 1.0)
    return 2 * torch.stack([(left + right) / 2, left, right]).log()


def validation_mixtures(x: torch.Tensor, targets: torch.Tensor, count: int, max_sources: int, gain_db: float,
                        stereo: bool = False, seed: int = 0):  # fmt: skip
    """``count`` fixed mixtures of 1..max_sources validation clips of distinct classes, each at a
    gain drawn from U(−gain_db, gain_db), for tuning decision thresholds on polyphonic-like data.
    Returns ``[V, count, ...]`` views and the targets: one view (the mixture), or with ``stereo``
    the downmix, left and right channel of the sources placed at random pans (``pan_gains``)."""
    generator = torch.Generator().manual_seed(seed)
    panning = torch.Generator().manual_seed(seed + 1)  # its own stream: the same mixtures, panned or not
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
        views = gains[None] + pan_gains(len(picked), panning) if stereo else gains[None]
        clips = torch.stack([x[i] for i in picked])
        rows.append(torch.stack([torch.logsumexp(clips + g.view(-1, 1, 1, 1), dim=0) for g in views]))
        label_rows.append(targets[picked].amax(0))
    return torch.stack(rows, dim=1), torch.stack(label_rows)
