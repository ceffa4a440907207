"""Training-time regularizers that work on whole batches. ``EpochPlanner`` decides what an epoch
visits (shuffle or balanced sampling, repeats, minority multicrop's extra views); ``BatchOps`` runs
the recipe's batch operations over every batch, in the order of ``BATCH_OPS``. Evaluation data
never goes through either.

A batch operation is built as ``Op(config, context)`` — its recipe value and the ``BatchContext``
— and called as ``op(x, targets, is_extra) -> (x, targets)`` on float inputs (images in [0, 1], or log-mel
features). Adding a regularizer takes a module with its class, a line in ``BATCH_OPS`` and a field
(with its schema class) in ``recipe.AugmentConfig``.
"""

from __future__ import annotations

import torch

from .acoustics import Compression, PitchShift, Reverb
from .autoaugment import RandAugment, TrivialAugment
from .context import BatchContext
from .filter_augment import FilterAugment
from .image import ColorJitter, Erasing, HorizontalFlip, MinorityOnly, ResizedCrop, Rotation, Translate, VerticalFlip
from .mix import Mix
from .mixtures import Mixtures
from .multicrop import MinorityCrop
from .plan import EpochPlan, EpochPlanner
from .spectrogram import RandomGain, RandomTimeShift, SpecAugment

BATCH_OPS = {  # recipe key under ``augment`` -> operation, in the order a batch meets them
    "mixtures": Mixtures,
    "random_gain_db": RandomGain,
    "time_shift": RandomTimeShift,
    "pitch_shift": PitchShift,
    "reverb": Reverb,
    "compression": Compression,
    "specaugment": SpecAugment,
    "filter_augment": FilterAugment,
    "multicrop": MinorityCrop,
    "minority": MinorityOnly,
    "hflip": HorizontalFlip,
    "vflip": VerticalFlip,
    "resized_crop": ResizedCrop,
    "translate": Translate,
    "rotation": Rotation,
    "randaugment": RandAugment,
    "trivialaugment": TrivialAugment,
    "color_jitter": ColorJitter,
    "erasing": Erasing,
    "mix": Mix,
}


class BatchOps:
    """The recipe's batch operations (those switched on: a value that is not null or 0)."""

    def __init__(self, config, class_counts: torch.Tensor, input_shape: tuple[int, int, int], data=None):
        context = BatchContext(class_counts, input_shape, data)
        self.ops = [op(getattr(config, key), context) for key, op in BATCH_OPS.items() if getattr(config, key)]

    def to(self, device: torch.device) -> "BatchOps":
        for op in self.ops:
            if hasattr(op, "to"):
                op.to(device)
        return self

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        """A batch in (uint8 images or float features), the augmented float batch and the (possibly
        mixed) targets out; untouched when no operation is on."""
        if not self.ops:
            return x, targets
        x = x.to(torch.get_default_dtype()) / 255.0 if x.dtype == torch.uint8 else x
        for op in self.ops:
            x, targets = op(x, targets, is_extra)
        return x, targets


__all__ = ["BATCH_OPS", "BatchContext", "BatchOps", "EpochPlan", "EpochPlanner"]
