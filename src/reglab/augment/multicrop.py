"""Minority multicrop: every sample of a class with fewer than ``below`` training samples is
visited ``1 + views`` times an epoch, each extra visit a fresh random resized crop, so rare classes
are seen more often and more strongly augmented than common ones (after the multi-crop
oversampling of the long-tailed painter-recognition study; crops as in Szegedy et al. 2015).
``MinorityViews`` adds the visits to the epoch's plan; ``MinorityCrop`` crops them in the batch."""

from __future__ import annotations

import kornia.augmentation as K
import torch
from .context import BatchContext


class MinorityViews:
    def __init__(self, config, class_counts: torch.Tensor):
        self.views = config.views
        self.minority = class_counts < config.below

    def expand(self, order: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, repeats: int = 1):
        """``order`` plus ``views`` extra visits of every minority-class sample per repeat, shuffled
        together (a fixed count, also when ``order`` was drawn by the balanced sampler); returns
        (order, is_extra_view)."""
        extra = self.minority[labels].nonzero().flatten().repeat(self.views * repeats)
        merged = torch.cat([order, extra])
        is_extra = torch.cat([torch.zeros(len(order), dtype=torch.bool), torch.ones(len(extra), dtype=torch.bool)])
        shuffle = torch.randperm(len(merged), generator=generator)
        return merged[shuffle], is_extra[shuffle]

    def extra_visits(self, labels: torch.Tensor, repeats: int = 1) -> int:
        return int(self.minority[labels].sum()) * self.views * repeats


class MinorityCrop:
    """Crops the extra views of a float batch; the first visit of every sample is left as is."""

    def __init__(self, config, context: BatchContext):
        self.crop = K.RandomResizedCrop(tuple(context.input_shape[1:]), scale=config.scale, ratio=config.ratio, p=1.0)

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        if not bool(is_extra.any()):
            return x, targets
        x = x.clone()
        x[is_extra] = self.crop(x[is_extra])
        return x, targets
