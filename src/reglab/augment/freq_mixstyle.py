"""Freq-MixStyle (Schmid et al. 2022, after MixStyle, Zhou et al. 2021): a chosen spectrogram is
standardized per frequency band (mean and spread over its channels and frames) and given a blend
of its own band statistics and those of another spectrogram of the batch, with weight λ ~ Beta(α,
α). On log-mel features a recording chain's colouring and level are mostly such per-band
statistics, so a model trained this way leans less on one chain's. The reference draws once per
batch; here, as reglab's other operations, each spectrogram is chosen with probability ``p``."""

from __future__ import annotations

import torch

from .context import BatchContext


class FreqMixStyle:
    def __init__(self, config, context: BatchContext):
        self.config = config

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        c, batch = self.config, len(x)
        mean = x.mean(dim=(1, 3), keepdim=True)
        spread = x.var(dim=(1, 3), keepdim=True).add(1e-6).sqrt()
        weight = torch.distributions.Beta(c.alpha, c.alpha).sample((batch, 1, 1, 1)).to(x.device)
        weight = torch.where(torch.rand(batch, 1, 1, 1, device=x.device) < c.p, weight, torch.ones_like(weight))
        other = torch.randperm(batch, device=x.device)
        blended_mean = torch.lerp(mean[other], mean, weight)
        blended_spread = torch.lerp(spread[other], spread, weight)
        return (x - mean) / spread * blended_spread + blended_mean, targets
