"""Batched image augmentation with kornia (Riba et al. 2020): flips, random resized crop,
translation, rotation, colour jitter and random erasing (Zhong et al. 2020), each with its own
probability, drawn per sample but computed on the whole batch on the training device."""

from __future__ import annotations

import kornia.augmentation as K
import torch

from ..errors import UserError
from .context import BatchContext


class KorniaOp:
    """One kornia augmentation on float images in [0, 1]; subclasses build ``self.module``."""

    module: torch.nn.Module

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        return self.module(x), targets

    def to(self, device: torch.device) -> None:
        self.module.to(device)


class HorizontalFlip(KorniaOp):
    def __init__(self, config: float, context: BatchContext):
        self.module = K.RandomHorizontalFlip(p=config)


class VerticalFlip(KorniaOp):
    def __init__(self, config: float, context: BatchContext):
        self.module = K.RandomVerticalFlip(p=config)


class ResizedCrop(KorniaOp):
    def __init__(self, config, context: BatchContext):
        self.module = K.RandomResizedCrop(tuple(context.input_shape[1:]), scale=config.scale, ratio=config.ratio, p=config.p)


class Translate(KorniaOp):
    def __init__(self, config, context: BatchContext):
        self.module = K.RandomAffine(0.0, translate=(config.fraction, config.fraction), padding_mode="reflection", p=config.p)


class Rotation(KorniaOp):
    def __init__(self, config, context: BatchContext):
        self.module = K.RandomRotation(config.degrees, p=config.p)


class ColorJitter(KorniaOp):
    def __init__(self, config, context: BatchContext):
        if context.input_shape[0] != 3 and (config.saturation or config.hue):
            raise UserError("augment.color_jitter: saturation and hue need RGB images (data.channels=3)")
        self.module = K.ColorJitter(config.brightness, config.contrast, config.saturation, config.hue, p=config.p)


class Erasing(KorniaOp):
    def __init__(self, config, context: BatchContext):
        self.module = K.RandomErasing(config.scale, config.ratio, p=config.p)


class MinorityOnly:
    """``augment.minority``: its operations (the same classes as the batch-wide ones) applied only
    to the samples of classes with fewer than ``below`` training samples, on that sub-batch."""

    OPERATIONS = {"hflip": HorizontalFlip, "resized_crop": ResizedCrop, "translate": Translate, "rotation": Rotation,
                  "color_jitter": ColorJitter, "erasing": Erasing}  # fmt: skip

    def __init__(self, config, context: BatchContext):
        if context.data is not None and context.data.is_audio:
            raise UserError("augment.minority: its operations act on images; this recipe's data are log-mel features")
        self.minority = context.class_counts < config.below
        self.ops = [op(getattr(config.ops, key), context) for key, op in self.OPERATIONS.items() if getattr(config.ops, key)]

    def to(self, device: torch.device) -> None:
        self.minority = self.minority.to(device)
        for op in self.ops:
            op.to(device)

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        rows = self.minority[targets.argmax(1)].nonzero().flatten()
        if len(rows) and self.ops:
            part = x[rows]
            for op in self.ops:
                part, _ = op(part, targets[rows], is_extra[rows] if is_extra is not None else None)
            x = x.clone()
            x[rows] = part
        return x, targets
