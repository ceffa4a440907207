"""Spectrogram augmentation on whole batches of log-mel features ``[B, 1, F, T]``: SpecAugment's
frequency and time masks (Park et al. 2019), a random gain, and a random circular time shift."""

from __future__ import annotations

import torch

from ..data.frontend import DB_TO_LOG_POWER
from .context import BatchContext


def band_masks(batch: int, size: int, count: int, max_width: int, device) -> torch.Tensor:
    """``[batch, size]`` booleans: ``count`` bands per row, each of width U{0..max_width}."""
    masked = torch.zeros(batch, size, dtype=torch.bool, device=device)
    positions = torch.arange(size, device=device)
    for _ in range(count):
        width = torch.randint(0, max_width + 1, (batch, 1), device=device)
        start = (torch.rand(batch, 1, device=device) * (size - width + 1)).long()
        masked |= (positions >= start) & (positions < start + width)
    return masked


class SpecAugment:
    """Masks ``freq_masks`` bands of up to ``freq_width`` mel bins and ``time_masks`` spans of up
    to ``time_width`` frames in every spectrogram, filling them with that spectrogram's mean."""

    def __init__(self, config, context: BatchContext):
        self.config = config

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        batch, _, n_freq, n_time = x.shape
        c = self.config
        freq = band_masks(batch, n_freq, c.freq_masks, min(c.freq_width, n_freq), x.device)[:, None, :, None]
        time = band_masks(batch, n_time, c.time_masks, min(c.time_width, n_time), x.device)[:, None, None, :]
        fill = x.mean(dim=(1, 2, 3), keepdim=True)
        return torch.where(freq | time, fill, x), targets


def random_gain(x: torch.Tensor, max_db: float) -> torch.Tensor:
    """Adds a gain of U(−max_db, max_db) dB to log-power features (a constant in the log domain)."""
    gain_db = (torch.rand(len(x), 1, 1, 1, device=x.device) * 2 - 1) * max_db
    return x + gain_db * DB_TO_LOG_POWER


class RandomGain:
    def __init__(self, config: float, context: BatchContext):
        self.max_db = config

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        return random_gain(x, self.max_db), targets


class RandomTimeShift:
    def __init__(self, config: float, context: BatchContext):
        self.max_fraction = config

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        return random_time_shift(x, self.max_fraction), targets


def random_time_shift(x: torch.Tensor, max_fraction: float) -> torch.Tensor:
    """Rolls each spectrogram along time by up to ``max_fraction`` of its length, either way."""
    n_time = x.shape[-1]
    limit = int(n_time * max_fraction)
    shift = torch.randint(-limit, limit + 1, (len(x), 1), device=x.device)
    index = (torch.arange(n_time, device=x.device)[None, :] - shift) % n_time
    return x.gather(-1, index[:, None, None, :].expand_as(x))
