"""Recognising a data set's layout from its folder."""

from __future__ import annotations

from pathlib import Path

from .audio import is_audio
from .cifar import is_cifar
from .folders import existing_dir
from .images import image_files
from .tiny_imagenet import is_tiny_imagenet


def detect_source(path) -> str:
    """``cifar``, ``tiny_imagenet``, ``irmas_test`` (loose audio files), ``irmas`` (folders of
    audio), ``test_folder`` (loose images) or ``image_folder``."""
    root = existing_dir(path, "data folder")
    if any(is_audio(p) for p in root.iterdir()):
        return "irmas_test"
    folders = [p for p in root.iterdir() if p.is_dir()]
    if folders and any(is_audio(p) for p in folders[0].iterdir()):
        return "irmas"
    if is_cifar(root):
        return "cifar"
    if is_tiny_imagenet(root):
        return "tiny_imagenet"
    return "test_folder" if image_files(Path(root)) else "image_folder"
