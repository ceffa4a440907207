"""Image-folder sources: one sub-folder per class, and a competition-style unlabelled folder."""

from __future__ import annotations

import csv
import difflib
from pathlib import Path
from typing import Optional

import torch

from ..errors import UserError
from .dataset import Samples
from .images import decode_images, image_files


def existing_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: {what} not found")
    if not path.is_dir():
        raise UserError(f"{path}: {what} must be a folder")
    return path


def pick_classes(available: list[str], wanted, origin: Path) -> list[str]:
    """``wanted``: None (all), an int N (the first N by name) or a list of names."""
    if wanted is None:
        return available
    if isinstance(wanted, int):
        if wanted > len(available):
            raise UserError(f"data.classes: {origin} has only {len(available)} classes, asked for {wanted}")
        return available[:wanted]
    for name in wanted:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UserError(f"data.classes: no class '{name}' in {origin}{hint}")
    return sorted(wanted)


def list_class_folders(root: Path, wanted=None, images_subdir: str = "") -> tuple[list[Path], list[int], list[str]]:
    """Files and labels of a ``root/<class>/[images_subdir/]*.png`` tree."""
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not available:
        raise UserError(f"{root}: no class sub-folders found")
    classes = pick_classes(available, wanted, root)
    files, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name / images_subdir
        found = image_files(folder) if folder.is_dir() else []
        if not found:
            raise UserError(f"{folder}: class folder has no images")
        files += found
        labels += [label] * len(found)
    return files, labels, classes


def load_image_folder(path, size: Optional[int], channels: Optional[int], wanted=None, cache_dir=None) -> Samples:
    root = existing_dir(path, "image folder")
    files, labels, classes = list_class_folders(root, wanted)
    x = decode_images(files, size, channels or 3, cache_dir)
    ids = [str(f.relative_to(root).with_suffix("")) for f in files]
    return Samples(x, torch.tensor(labels), classes, ids)


def read_label_csv(path: str | Path) -> dict[str, str]:
    """An ``id,label`` CSV (a competition's answer key or a submission) as a dict."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: labels file not found")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"id", "label"} <= set(reader.fieldnames):
            raise UserError(f"{path}: expected a CSV with the columns id,label")
        return {row["id"]: row["label"] for row in reader}


def load_test_folder(path, size, channels, classes: list[str], labels_csv=None, cache_dir=None) -> Samples:
    """A flat folder of ``<id>.png``; labelled through ``labels_csv`` when given."""
    root = existing_dir(path, "test folder")
    files = image_files(root)
    if not files:
        raise UserError(f"{root}: no images found")
    ids = [f.stem for f in files]
    y = None
    if labels_csv is not None:
        answers = read_label_csv(labels_csv)
        index = {name: i for i, name in enumerate(classes)}
        missing = [i for i in ids if i not in answers]
        if missing:
            raise UserError(f"{labels_csv}: no label for id '{missing[0]}' ({len(missing)} missing)")
        unknown = sorted({answers[i] for i in ids} - set(index))
        if unknown:
            raise UserError(f"{labels_csv}: label '{unknown[0]}' is not one of the model's classes")
        y = torch.tensor([index[answers[i]] for i in ids])
    return Samples(decode_images(files, size, channels or 3, cache_dir), y, classes, ids)
