"""Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization") and CutMix (Yun et al.
2019, "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable Features") on
whole batches, for single-label (one-hot) and multi-label (multi-hot) targets alike.

With ``per_class``, the probability of mixing follows rarity, as in the long-tailed painter study:
p(c) = p_min + (p_max − p_min)·(1 − (n_c − n_min)/(n_max − n_min)). ``decide: sample`` mixes each
sample with its own class's p (a multi-hot row: the mean over its classes), with a partner drawn
from the batch, so the rarest class is really mixed at p_max and the commonest at p_min.
``decide: batch`` (the painter study's rule) mixes a whole batch with the mean p of its samples,
which with balanced sampling is about the same for every batch.
"""

from __future__ import annotations

import torch
from .context import BatchContext


def per_class_probability(counts: torch.Tensor, p_min: float, p_max: float) -> torch.Tensor:
    """The rarest class gets ``p_max``, the most common ``p_min``, linear in the count between."""
    counts = counts.float()
    spread = (counts.max() - counts.min()).clamp_min(1.0)
    return p_min + (p_max - p_min) * (1 - (counts - counts.min()) / spread)


def cutmix_box(height: int, width: int, lam: float, generator=None) -> tuple[int, int, int, int]:
    """A box covering about (1 − λ) of the image, centred uniformly, clipped to the image."""
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(0, height, (), generator=generator))
    cx = int(torch.randint(0, width, (), generator=generator))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


class Mix:
    def __init__(self, config, context: BatchContext):
        self.config = config
        self.class_p = None
        if config.per_class:
            self.class_p = per_class_probability(context.class_counts, config.per_class.p_min, config.per_class.p_max)

    def sample_probability(self, targets: torch.Tensor) -> torch.Tensor:
        """Each sample's per-class probability of being mixed (the mean over a multi-hot row)."""
        class_p = self.class_p.to(targets.device)
        return (targets @ class_p) / targets.sum(1).clamp_min(1e-6)

    def decide(self, targets: torch.Tensor) -> torch.Tensor:
        """Which samples of the batch are mixed: ``[B]`` bools."""
        if self.class_p is not None and self.config.per_class.decide == "sample":
            return torch.rand(len(targets)).to(targets.device) < self.sample_probability(targets)
        p = self.config.p if self.class_p is None else float(self.sample_probability(targets).mean())
        return torch.full((len(targets),), float(torch.rand(())) < p, device=targets.device)

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixes float images ``x`` and soft targets of the chosen samples with a shuffled copy of the batch."""
        config = self.config
        mixed = self.decide(targets)
        if not bool(mixed.any()):
            return x, targets
        use_cutmix = config.cutmix_alpha > 0 and (config.mixup_alpha == 0 or float(torch.rand(())) < config.switch_p)
        alpha = config.cutmix_alpha if use_cutmix else config.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        partner = torch.randperm(len(x)).to(x.device)
        if use_cutmix:
            top, bottom, left, right = cutmix_box(x.shape[-2], x.shape[-1], lam)
            pasted = x.clone()
            pasted[..., top:bottom, left:right] = x[partner][..., top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (x.shape[-2] * x.shape[-1])  # the area really pasted
        else:
            pasted = lam * x + (1 - lam) * x[partner]
        if bool(mixed.all()):
            return pasted, lam * targets + (1 - lam) * targets[partner]
        lam_each = torch.where(mixed, lam, 1.0).to(targets.dtype).unsqueeze(1)  # 1: the sample is left as it was
        x = torch.where(mixed.view(-1, *([1] * (x.dim() - 1))), pasted, x)
        return x, lam_each * targets + (1 - lam_each) * targets[partner]
