"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes): the built-in data
set for the demo and for tests, shipped with the install, so nothing is downloaded."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits as _sklearn_digits

from ..errors import UserError
from .dataset import Samples, select_classes
from .folders import pick_classes
from .images import match_channels, resize_uint8


def load_digits(split: str, size, channels, wanted=None) -> Samples:
    if split != "train":
        raise UserError("data.source 'digits' has no separate test split; it is split by data.val_fraction")
    bunch = _sklearn_digits()
    pixels = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    x = torch.from_numpy(pixels)[:, None]
    y = torch.from_numpy(bunch.target.astype(np.int64))
    all_classes = [str(d) for d in range(10)]
    classes = pick_classes(all_classes, wanted, "digits")
    keep, labels = select_classes(y, all_classes, classes)
    x = match_channels(resize_uint8(x[keep], size), channels)
    ids = [str(i) for i in torch.nonzero(keep).flatten().tolist()]
    return Samples(x, labels, classes, ids)
