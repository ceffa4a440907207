"""Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization") and CutMix (Yun et al.
2019, "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable Features") on
whole batches, for single-label (one-hot) and multi-label (multi-hot) targets alike.

With ``per_class``, the probability that a batch is mixed follows its samples' rarity, as in the
long-tailed painter study: p(c) = p_min + (p_max − p_min)·(1 − (n_c − n_min)/(n_max − n_min)),
and a batch is mixed with the mean p over its samples' classes.
"""

from __future__ import annotations

import torch


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
    def __init__(self, config, class_counts: torch.Tensor):
        self.config = config
        self.class_p = None
        if config.per_class:
            self.class_p = per_class_probability(class_counts, config.per_class.p_min, config.per_class.p_max)

    def batch_probability(self, targets: torch.Tensor) -> float:
        """``config.p``, or the mean per-class probability of the batch's samples."""
        if self.class_p is None:
            return self.config.p
        class_p = self.class_p.to(targets.device)
        per_sample = (targets @ class_p) / targets.sum(1).clamp_min(1e-6)
        return float(per_sample.mean())

    def __call__(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixes float images ``x`` and soft targets with a shuffled copy of the batch."""
        config = self.config
        if float(torch.rand(())) >= self.batch_probability(targets):
            return x, targets
        use_cutmix = config.cutmix_alpha > 0 and (config.mixup_alpha == 0 or float(torch.rand(())) < config.switch_p)
        alpha = config.cutmix_alpha if use_cutmix else config.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        partner = torch.randperm(len(x)).to(x.device)
        if use_cutmix:
            top, bottom, left, right = cutmix_box(x.shape[-2], x.shape[-1], lam)
            x = x.clone()
            x[..., top:bottom, left:right] = x[partner][..., top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (x.shape[-2] * x.shape[-1])  # the area really pasted
        else:
            x = lam * x + (1 - lam) * x[partner]
        return x, lam * targets + (1 - lam) * targets[partner]
