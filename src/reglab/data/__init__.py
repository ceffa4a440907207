"""Data sources. ``load(config, split)`` turns the recipe's ``data`` section into in-memory
``Samples``; ``split`` is ``"train"`` (what a run trains and validates on) or ``"test"`` (the
source's own held-out part: CIFAR's ``test_batch``, Tiny-ImageNet's ``val/``). IRMAS testing
excerpts load as windowed ``Excerpts`` through ``load_excerpts``. Every source, reglab's and the
user's (``plugin.py``), is found through one registry, ``plugins.DATA_SOURCES``."""

from __future__ import annotations

from typing import Optional

from ..errors import UserError
from ..plugins import DATA_SOURCES
from .audio_sources import load_irmas_clips, load_irmas_excerpts
from .cifar import load_cifar
from .dataset import Excerpts, Samples
from .digits import load_digits
from .folders import load_image_folder, load_test_folder
from .plugin import load_user_data
from .tiny_imagenet import load_tiny_imagenet


def load(config, split: str = "train", classes: Optional[list[str]] = None) -> Samples:
    """``classes`` (the trained model's) is needed for a ``test_folder`` with labels, and checked
    against a user's source."""
    entry = DATA_SOURCES.entries.get(config.source)
    if entry is not None and entry.builtin:
        return entry.target(config, split, classes)
    return load_user_data(config, split, classes)


def _digits(config, split, classes):
    return load_digits(split, config.image_size, config.channels, config.classes)


def _image_folder(config, split, classes):
    return load_image_folder(config.path, config.image_size, config.channels, config.classes, config.cache_dir)


def _cifar(config, split, classes):
    return load_cifar(config.path, split, config.image_size, config.channels, config.classes)


def _tiny_imagenet(config, split, classes):
    return load_tiny_imagenet(config.path, split, config.image_size, config.channels, config.classes, config.cache_dir)


def _irmas(config, split, classes):
    return load_irmas_clips(config)


def _irmas_test(config, split, classes):
    raise UserError("data.source irmas_test holds polyphonic excerpts for evaluation; train on source irmas")


def _test_folder(config, split, classes):
    return load_test_folder(config.path, config.image_size, config.channels, classes or [], config.labels, config.cache_dir)


for _name, _loader in {"digits": _digits, "image_folder": _image_folder, "test_folder": _test_folder, "cifar": _cifar,
                       "tiny_imagenet": _tiny_imagenet, "irmas": _irmas, "irmas_test": _irmas_test}.items():  # fmt: skip
    DATA_SOURCES.register(_name, _loader, builtin=True)


def load_excerpts(config, classes: list[str], channels: str = "downmix") -> Excerpts:
    return load_irmas_excerpts(config, classes, channels)


__all__ = ["Excerpts", "Samples", "load", "load_excerpts"]
