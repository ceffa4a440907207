"""FilterAugment (Nam et al. 2022, "FilterAugment: An Acoustic Environmental Data Augmentation
Method", ICASSP), linear type: a chosen spectrogram's mel axis is cut at random points into
``bands`` bands, every band edge gets a gain of U(−db, db) dB, and the gain is interpolated
linearly between edges. On log-power features an equalizer is an addition per mel bin, so a model
trained this way relies less on the colouring of one recording chain or sound bank."""

from __future__ import annotations

import torch

from ..data.frontend import DB_TO_LOG_POWER
from .context import BatchContext


def equalizer_curves(batch: int, n_freq: int, bands: int, max_db: float, device) -> torch.Tensor:
    """``[batch, n_freq]`` random piecewise-linear gains in dB, one curve per row."""
    inner = torch.rand(batch, bands - 1, device=device).sort(1).values * (n_freq - 1)
    edges = torch.cat([torch.zeros(batch, 1, device=device), inner, torch.full((batch, 1), n_freq - 1.0, device=device)], 1)
    gains = (torch.rand(batch, bands + 1, device=device) * 2 - 1) * max_db
    bins = torch.arange(n_freq, device=device, dtype=edges.dtype).expand(batch, n_freq).contiguous()
    upper = torch.searchsorted(edges, bins, right=True).clamp(1, bands)
    left, right = edges.gather(1, upper - 1), edges.gather(1, upper)
    weight = ((bins - left) / (right - left).clamp_min(1e-6)).clamp(0, 1)
    return gains.gather(1, upper - 1) * (1 - weight) + gains.gather(1, upper) * weight


class FilterAugment:
    def __init__(self, config, context: BatchContext):
        self.config = config

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        c, (batch, _, n_freq, _) = self.config, x.shape
        chosen = (torch.rand(batch, 1, device=x.device) < c.p).float()
        curves = equalizer_curves(batch, n_freq, c.bands, c.db, x.device) * chosen
        return x + (curves * DB_TO_LOG_POWER).view(batch, 1, n_freq, 1), targets
