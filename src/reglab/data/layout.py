"""Recognising a data set's layout from its folder."""

from __future__ import annotations

from pathlib import Path

from .cifar import is_cifar
from .folders import existing_dir
from .images import image_files
from .tiny_imagenet import is_tiny_imagenet


def detect_source(path) -> str:
    """``cifar``, ``tiny_imagenet``, ``test_folder`` (loose images) or ``image_folder``."""
    root = existing_dir(path, "data folder")
    if is_cifar(root):
        return "cifar"
    if is_tiny_imagenet(root):
        return "tiny_imagenet"
    return "test_folder" if image_files(Path(root)) else "image_folder"
