"""Polyphonic training examples from monophonic clips (after Kratimenos et al. 2020, who trained
instrument recognition on mixed single-instrument segments): a clip is summed with up to
``max_sources − 1`` others at random gains, and its target becomes the union of their labels.

Sums are taken in the power domain of log-mel features (``data/mixing.py``), log(e^a + e^b), which is what mixing the
waveforms gives for sources that do not overlap in time-frequency."""

from __future__ import annotations

import torch

from ..data.mixing import mix_in
from .context import BatchContext


class Mixtures:
    def __init__(self, config, context: BatchContext):
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
