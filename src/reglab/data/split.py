"""Stratified train/validation split, fixed by a seed."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ..errors import UserError
from .dataset import Samples


def stratified_split(data: Samples, val_fraction: float, seed: int) -> tuple[Samples, Samples]:
    """Each class keeps (about) ``val_fraction`` of its samples for validation."""
    index = np.arange(len(data))
    try:
        train_idx, val_idx = train_test_split(
            index, test_size=val_fraction, random_state=seed, stratify=data.y.numpy()
        )
    except ValueError as exc:
        raise UserError(f"data.val_fraction={val_fraction}: cannot split stratified ({exc})") from None
    return data.subset(torch.from_numpy(np.sort(train_idx))), data.subset(torch.from_numpy(np.sort(val_idx)))
