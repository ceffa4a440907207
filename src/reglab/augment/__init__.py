"""Training-time regularizers that work on whole batches. ``EpochPlanner`` decides what an epoch
visits (shuffle or balanced sampling, repeats, minority multicrop's extra views); ``BatchOps`` runs
the recipe's batch operations over every batch, in the order of ``BATCH_OPS``. Evaluation data
never goes through either.

A batch operation is built as ``Op(config, context)`` — its recipe value and the ``BatchContext``
— and called as ``op(x, targets, is_extra) -> (x, targets)`` on float inputs (images in [0, 1], or log-mel
features). Adding a regularizer takes a module with its class, a line in ``BATCH_OPS`` and a field
(with its schema class) in ``recipe.AugmentConfig``. The user's operations (``augment.ops``:
``make(**kwargs)`` returning such an ``op``) run after reglab's, before or after mixing; both kinds
are in one registry, ``plugins.BATCH_OPS``.
"""

from __future__ import annotations

import inspect

import torch

from ..errors import UserError
from ..plugins import BATCH_OPS as REGISTRY
from ..plugins import call
from .acoustics import Compression, PitchShift, Reverb
from .autoaugment import RandAugment, TrivialAugment
from .context import BatchContext
from .filter_augment import FilterAugment
from .freq_mixstyle import FreqMixStyle
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
    "freq_mixstyle": FreqMixStyle,
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


for _key, _op in BATCH_OPS.items():
    REGISTRY.register(_key, _op, builtin=True)


def user_op(spec, context: BatchContext):
    """A user's operation built from its ``augment.ops`` entry and tried once on a batch of two
    (random streams untouched), so that a broken one is refused before training starts."""
    make = REGISTRY.resolve(spec.name, "augment.ops.name")
    takes_context = "context" in inspect.signature(make).parameters
    op = call(make, "augment.ops.name", **spec.kwargs, **({"context": context} if takes_context else {}))
    if not callable(op):
        raise UserError(f"augment.ops.name: {spec.name} returned a {type(op).__name__}, not an operation op(x, targets, is_extra)")
    x, targets = torch.rand((2, *context.input_shape)), torch.full((2, len(context.class_counts)), 1.0 / len(context.class_counts))
    with torch.random.fork_rng(devices=[]):
        out = call(op, "augment.ops.name", x, targets, torch.zeros(2, dtype=torch.bool))
    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out) and out[0].shape == x.shape and out[1].shape == targets.shape):
        raise UserError(f"augment.ops.name: {spec.name}'s operation must return (x, targets) of the shapes it was given")
    return op


class BatchOps:
    """The recipe's batch operations (those switched on: a value that is not null or 0), the user's
    (``augment.ops``) placed before or after mixing."""

    def __init__(self, config, class_counts: torch.Tensor, input_shape: tuple[int, int, int], data=None):
        context = BatchContext(class_counts, input_shape, data)
        users = {at: [user_op(spec, context) for spec in config.ops if spec.at == at] for at in ("before_mix", "after_mix")}
        self.ops = []
        for key in REGISTRY.builtins():
            if key == "mix":
                self.ops += users["before_mix"]
            if getattr(config, key):
                self.ops.append(REGISTRY.entries[key].target(getattr(config, key), context))
        self.ops += users["after_mix"]

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
