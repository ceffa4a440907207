"""Training-time regularizers that work on whole batches: image augmentation (kornia), mixup and
CutMix, minority multicrop, spectrogram augmentation, clip mixtures, and the epoch's sampling
order. ``BatchAugment`` strings them together for the training loop; evaluation never goes
through it."""

from __future__ import annotations

import torch

from .image import create_image_augment
from .mix import Mix
from .mixtures import Mixtures
from .multicrop import MinorityMulticrop
from .sampling import epoch_order
from .spectrogram import SpecAugment, random_gain, random_time_shift


class BatchAugment:
    def __init__(self, config, class_counts: torch.Tensor, input_shape: tuple[int, int, int], balanced_power: float = 0.0, repeats: int = 1):
        self.image = create_image_augment(config, input_shape)
        self.mix = Mix(config.mix, class_counts) if config.mix else None
        self.multicrop = MinorityMulticrop(config.multicrop, class_counts, input_shape) if config.multicrop else None
        self.mixtures = Mixtures(config.mixtures) if config.mixtures else None
        self.specaugment = SpecAugment(config.specaugment) if config.specaugment else None
        self.gain_db, self.time_shift = config.gain_db, config.time_shift
        self.n_classes, self.balanced_power, self.repeats = len(class_counts), balanced_power, repeats

    def to(self, device: torch.device) -> "BatchAugment":
        if self.image is not None:
            self.image.to(device)
        return self

    def epoch(self, labels: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """This epoch's visiting order and which visits are extra (multicrop) views."""
        order = torch.cat([epoch_order(labels, self.n_classes, self.balanced_power, generator) for _ in range(self.repeats)])
        if self.multicrop is None:
            return order, torch.zeros(len(order), dtype=torch.bool)
        return self.multicrop.expand(order, labels, generator, self.repeats)

    def visits_per_epoch(self, labels: torch.Tensor) -> int:
        """len(order) of every ``epoch(labels, …)``."""
        return len(labels) * self.repeats + (self.multicrop.extra_visits(labels, self.repeats) if self.multicrop else 0)

    @property
    def changes_pixels(self) -> bool:
        parts = (self.image, self.mix, self.multicrop, self.mixtures, self.specaugment)
        return any(part is not None for part in parts) or bool(self.gain_db or self.time_shift)

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        """A batch in (uint8 images or float features), the augmented float batch (images in
        [0, 1]) and the (possibly mixed) targets out."""
        if not self.changes_pixels:
            return x, targets
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x
        if self.mixtures is not None:
            x, targets = self.mixtures(x, targets)
        if self.gain_db:
            x = random_gain(x, self.gain_db)
        if self.time_shift:
            x = random_time_shift(x, self.time_shift)
        if self.specaugment is not None:
            x = self.specaugment(x)
        if self.multicrop is not None:
            x = self.multicrop(x, is_extra)
        if self.image is not None:
            x = self.image(x)
        if self.mix is not None:
            x, targets = self.mix(x, targets)
        return x, targets
