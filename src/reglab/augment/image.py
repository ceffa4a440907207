"""Batched image augmentation with kornia (Riba et al. 2020): flips, random resized crop,
translation, rotation, colour jitter and random erasing (Zhong et al. 2020), each with its own
probability, drawn per sample but computed on the whole batch on the training device."""

from __future__ import annotations

import kornia.augmentation as K
import torch

from ..errors import UserError


class KorniaOp:
    """One kornia augmentation on float images in [0, 1]; subclasses build ``self.module``."""

    module: torch.nn.Module

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        return self.module(x), targets

    def to(self, device: torch.device) -> None:
        self.module.to(device)


class HorizontalFlip(KorniaOp):
    def __init__(self, p: float, context):
        self.module = K.RandomHorizontalFlip(p=p)


class VerticalFlip(KorniaOp):
    def __init__(self, p: float, context):
        self.module = K.RandomVerticalFlip(p=p)


class ResizedCrop(KorniaOp):
    def __init__(self, crop, context):
        self.module = K.RandomResizedCrop(tuple(context.input_shape[1:]), scale=crop.scale, ratio=crop.ratio, p=crop.p)


class Translate(KorniaOp):
    def __init__(self, shift, context):
        self.module = K.RandomAffine(0.0, translate=(shift.fraction, shift.fraction), padding_mode="reflection", p=shift.p)


class Rotation(KorniaOp):
    def __init__(self, turn, context):
        self.module = K.RandomRotation(turn.degrees, p=turn.p)


class ColorJitter(KorniaOp):
    def __init__(self, jitter, context):
        if context.input_shape[0] != 3 and (jitter.saturation or jitter.hue):
            raise UserError("augment.color_jitter: saturation and hue need RGB images (data.channels=3)")
        self.module = K.ColorJitter(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue, p=jitter.p)


class Erasing(KorniaOp):
    def __init__(self, erase, context):
        self.module = K.RandomErasing(erase.scale, erase.ratio, p=erase.p)
