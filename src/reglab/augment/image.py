"""Batched image augmentation with kornia (Riba et al. 2020): flips, random resized crop,
translation, rotation, colour jitter and random erasing (Zhong et al. 2020), each with its own
probability, drawn per sample but computed on the whole batch on the training device."""

from __future__ import annotations

from typing import Optional

import kornia.augmentation as K
from torch import nn

from ..errors import UserError


def create_image_augment(config, input_shape: tuple[int, int, int]) -> Optional[nn.Module]:
    """A kornia pipeline for float images in [0, 1], or None when every block is off."""
    channels, height, width = input_shape
    ops: list[nn.Module] = []
    if config.hflip:
        ops.append(K.RandomHorizontalFlip(p=config.hflip))
    if config.vflip:
        ops.append(K.RandomVerticalFlip(p=config.vflip))
    if crop := config.resized_crop:
        ops.append(K.RandomResizedCrop((height, width), scale=crop.scale, ratio=crop.ratio, p=crop.p))
    if shift := config.translate:
        ops.append(K.RandomAffine(0.0, translate=(shift.fraction, shift.fraction), padding_mode="reflection", p=shift.p))
    if turn := config.rotation:
        ops.append(K.RandomRotation(turn.degrees, p=turn.p))
    if jitter := config.color_jitter:
        if channels != 3 and (jitter.saturation or jitter.hue):
            raise UserError("augment.color_jitter: saturation and hue need RGB images (data.channels=3)")
        ops.append(K.ColorJitter(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue, p=jitter.p))
    if erase := config.erasing:
        ops.append(K.RandomErasing(erase.scale, erase.ratio, p=erase.p))
    return nn.Sequential(*ops) if ops else None
