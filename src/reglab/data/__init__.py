"""Data sources. ``load(config, split)`` turns the recipe's ``data`` section into in-memory
``Samples``; ``split`` is ``"train"`` (what a run trains and validates on) or ``"test"`` (the
source's own held-out part: CIFAR's ``test_batch``, Tiny-ImageNet's ``val/``). IRMAS testing
excerpts load as windowed ``Excerpts`` through ``load_excerpts``."""

from __future__ import annotations

from typing import Optional

from ..errors import UserError
from .audio_sources import load_irmas_clips, load_irmas_excerpts
from .cifar import load_cifar
from .dataset import Excerpts, Samples
from .digits import load_digits
from .folders import load_image_folder, load_test_folder
from .tiny_imagenet import load_tiny_imagenet


def load(config, split: str = "train", classes: Optional[list[str]] = None) -> Samples:
    """``classes`` (the trained model's) is needed for a ``test_folder`` with labels."""
    size, channels, wanted = config.image_size, config.channels, config.classes
    if config.source == "digits":
        return load_digits(split, size, channels, wanted)
    if config.source == "image_folder":
        return load_image_folder(config.path, size, channels, wanted)
    if config.source == "cifar":
        return load_cifar(config.path, split, size, channels, wanted)
    if config.source == "tiny_imagenet":
        return load_tiny_imagenet(config.path, split, size, channels, wanted)
    if config.source == "irmas":
        return load_irmas_clips(config)
    if config.source == "irmas_test":
        raise UserError("data.source irmas_test holds polyphonic excerpts for evaluation; train on source irmas")
    return load_test_folder(config.path, size, channels, classes or [], config.labels)


def load_excerpts(config, classes: list[str], channels: str = "downmix") -> Excerpts:
    return load_irmas_excerpts(config, classes, channels)


__all__ = ["Excerpts", "Samples", "load", "load_excerpts"]
