"""CIFAR-10/100 in the "python version" layout: pickled ``data_batch_*`` and ``test_batch``
(``train`` and ``test`` for CIFAR-100) plus ``batches.meta`` / ``meta`` with the class names."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .dataset import Samples, select_classes
from .folders import existing_dir, pick_classes
from .images import match_channels, resize_uint8


def is_cifar(root: Path) -> bool:
    return any((root / name).is_file() for name in ("data_batch_1", "test_batch", "meta"))


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return pickle.load(handle, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise UserError(f"{path}: not a CIFAR python batch ({exc})") from None


def _batch_files(root: Path, split: str) -> list[Path]:
    if split == "train":
        files = sorted(root.glob("data_batch_*")) or [root / "train"]
    else:
        files = [root / "test_batch"] if (root / "test_batch").exists() else [root / "test"]
    for file in files:
        if not file.is_file():
            raise UserError(f"{file}: CIFAR {split} batch not found")
    return files


def load_cifar(path, split: str, size, channels, wanted=None) -> Samples:
    root = existing_dir(path, "CIFAR folder")
    meta_file = root / "batches.meta" if (root / "batches.meta").exists() else root / "meta"
    if not meta_file.is_file():
        raise UserError(f"{root}: no batches.meta (CIFAR-10) or meta (CIFAR-100) file")
    meta = _unpickle(meta_file)
    names_key = b"label_names" if b"label_names" in meta else b"fine_label_names"
    all_classes = [name.decode() for name in meta[names_key]]
    arrays, labels = [], []
    for file in _batch_files(root, split):
        batch = _unpickle(file)
        label_key = b"labels" if b"labels" in batch else b"fine_labels"
        if b"data" not in batch or label_key not in batch:
            raise UserError(f"{file}: CIFAR batch lacks 'data' or '{label_key.decode()}'")
        arrays.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels += list(batch[label_key])
    x = torch.from_numpy(np.concatenate(arrays))
    y = torch.tensor(labels)
    classes = sorted(pick_classes(sorted(all_classes), wanted, root))
    keep, labels = select_classes(y, all_classes, classes)
    x = match_channels(resize_uint8(x[keep], size), channels)
    ids = [f"{split}_{i}" for i in torch.nonzero(keep).flatten().tolist()]
    return Samples(x, labels, classes, ids)
