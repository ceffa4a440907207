"""The Tiny-ImageNet layout: ``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` labelled by
``val/val_annotations.txt`` (tab-separated: file, wnid, box)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from .dataset import Samples
from .folders import existing_dir, list_class_folders
from .images import decode_images


def is_tiny_imagenet(root: Path) -> bool:
    return (root / "train").is_dir() and any((d / "images").is_dir() for d in (root / "train").iterdir())


def _val_files(root: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    notes = root / "val" / "val_annotations.txt"
    if not notes.is_file():
        raise UserError(f"{notes}: Tiny-ImageNet validation annotations not found")
    index = {name: i for i, name in enumerate(classes)}
    files, labels = [], []
    for number, line in enumerate(notes.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise UserError(f"{notes}: line {number} is not 'file<TAB>wnid…'")
        if fields[1] in index:
            file = root / "val" / "images" / fields[0]
            if not file.is_file():
                raise UserError(f"{notes}: line {number} names {file}, which does not exist")
            files.append(file)
            labels.append(index[fields[1]])
    return files, labels


def load_tiny_imagenet(path, split: str, size, channels, wanted=None, cache_dir=None) -> Samples:
    root = existing_dir(path, "Tiny-ImageNet folder")
    train_dir = existing_dir(root / "train", "Tiny-ImageNet train folder")
    files, labels, classes = list_class_folders(train_dir, wanted, images_subdir="images")
    if split != "train":
        files, labels = _val_files(root, classes)
    x = decode_images(files, size, channels or 3, cache_dir)
    return Samples(x, torch.tensor(labels), classes, [f.stem for f in files])
