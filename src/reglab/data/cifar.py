"""CIFAR-10/100 in the "python version" layout: pickled ``data_batch_*`` and ``test_batch``
(``train`` and ``test`` for CIFAR-100) plus ``batches.meta`` / ``meta`` with the class names.

A pickle can name any importable callable and have it run while it loads, so these files go
through ``SafeUnpickler``: it rebuilds only what a CIFAR batch holds (dicts, lists, strings,
bytes, numbers and numpy arrays) and refuses every other global.
"""

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


ALLOWED_GLOBALS = {  # what numpy arrays in a pickle are rebuilt from
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how Python 3 pickles a Python 2 str's bytes
}


class SafeUnpickler(pickle.Unpickler):
    """Admits only the globals a CIFAR batch needs; anything else is refused before it is called."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load '{module}.{name}': a CIFAR batch holds only arrays, lists and strings")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            loaded = SafeUnpickler(handle, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise UserError(f"{path}: not a CIFAR python batch ({exc})") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: not a CIFAR python batch (holds a {type(loaded).__name__}, not a dict)")
    return loaded


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
