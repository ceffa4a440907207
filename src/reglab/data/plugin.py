"""Data from the user's code (``data.source: package.module:load``, or a registered name): ``load(split,
**kwargs)`` returns ``(x, y, classes)`` — NumPy arrays or tensors, ``x`` uint8 images or float
features, ``y`` class indices or a multi-hot matrix — or any sized torch ``Dataset`` of ``(x, y)``
pairs (its ``classes`` attribute names them, else they are numbered). Held in memory as every
source is, checked before anything trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import UserError
from ..plugins import DATA_SOURCES, call, describe
from .dataset import Samples, select_classes
from .folders import pick_classes
from .memory import require


def load_user_data(config, split: str, classes: Optional[list[str]] = None) -> Samples:
    """``classes``: the trained model's, which the data's must match for evaluation."""
    target = DATA_SOURCES.resolve(config.source, "data.source")
    where = f"data.source: {describe(target)}('{split}')"
    returned = call(target, "data.source", split, **config.kwargs)
    x, y, names = unpack(returned, where)
    x, y = as_tensor(x, "x", where), as_tensor(y, "y", where)
    x = checked_inputs(x, where)
    y = checked_labels(y, len(x), len(names), where)
    data = Samples(x, y, names, [str(i) for i in range(len(x))])
    if classes is not None:
        if list(names) != list(classes):
            raise UserError(f"{where}: classes {names[:5]} differ from the run's {classes[:5]}")
        return data
    return keep_classes(data, config.classes, where)


def unpack(returned: Any, where: str) -> tuple[Any, Any, list[str]]:
    if isinstance(returned, tuple) and len(returned) == 3:
        x, y, names = returned
    elif isinstance(returned, torch.utils.data.Dataset) and hasattr(returned, "__len__"):
        x, y = from_dataset(returned, where)
        names = getattr(returned, "classes", None)
    else:
        raise UserError(f"{where} returned a {type(returned).__name__}; it must return (x, y, classes) or a sized torch Dataset")
    if names is None:
        labels = np.asarray(y)
        names = [str(i) for i in range(int(labels.max()) + 1 if labels.ndim == 1 else labels.shape[1])]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{where}: classes must be a list of names (strings), got {type(names).__name__}")
    return x, y, list(names)


def from_dataset(dataset, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``(x, y)`` pair of a map-style dataset, stacked (read once, when the data loads)."""
    if len(dataset) == 0:
        raise UserError(f"{where}: the Dataset is empty")
    first_x, _ = dataset[0]
    require(len(dataset) * np.asarray(first_x).nbytes, f"{where}: {len(dataset)} samples")
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    try:
        return torch.stack([torch.as_tensor(np.asarray(v)) for v in xs]), torch.as_tensor(np.asarray(ys))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UserError(f"{where}: samples of the Dataset do not stack ({exc})") from None


def as_tensor(value: Any, name: str, where: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{where}: {name} is not an array ({exc})") from None
    return tensor.detach().cpu()


def checked_inputs(x: torch.Tensor, where: str) -> torch.Tensor:
    """``[N, C, H, W]``; ``[N, H, W]`` is one channel, ``[N, D]`` D feature maps of 1x1."""
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise UserError(f"{where}: x has dtype {x.dtype}; give uint8 images or float features")
    if x.dim() == 2:
        x = x[:, :, None, None]
    elif x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4:
        raise UserError(f"{where}: x has shape {tuple(x.shape)}; give [N, C, H, W] (or [N, H, W], [N, D])")
    if x.is_floating_point():
        x = x.float()
        if not torch.isfinite(x).all():
            raise UserError(f"{where}: x holds NaN or infinite values")
    return x.contiguous()


def checked_labels(y: torch.Tensor, n: int, n_classes: int, where: str) -> torch.Tensor:
    if len(y) != n:
        raise UserError(f"{where}: x has {n} samples but y has {len(y)}")
    if y.dim() == 1:
        if y.is_floating_point() and not torch.equal(y, y.round()):
            raise UserError(f"{where}: y holds fractional class indices; give integers (or a multi-hot [N, C] matrix)")
        if y.dtype == torch.bool or (not y.is_floating_point() and y.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
            raise UserError(f"{where}: y has dtype {y.dtype}; give integer class indices or a multi-hot matrix")
        y = y.long()
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise UserError(f"{where}: y holds class {int(y.min() if y.min() < 0 else y.max())}, outside 0..{n_classes - 1} ({n_classes} classes)")
        return y
    if y.dim() == 2 and y.shape[1] == n_classes:
        y = y.float()
        if not bool(((y == 0) | (y == 1)).all()):
            raise UserError(f"{where}: a multi-hot y must hold only 0 and 1")
        return y
    raise UserError(f"{where}: y has shape {tuple(y.shape)}; give [N] class indices or a [N, {n_classes}] multi-hot matrix")


def keep_classes(data: Samples, wanted, where: str) -> Samples:
    """``data.classes``: all, the first N by name, or the named ones."""
    if wanted is None:
        return data
    names = pick_classes(sorted(data.classes), wanted, Path(where))
    if data.multilabel:
        columns = torch.tensor([data.classes.index(n) for n in names])
        y = data.y[:, columns]
        keep = y.sum(1) > 0
        return Samples(data.x[keep], y[keep], names, [i for i, k in zip(data.ids, keep.tolist()) if k])
    keep, y = select_classes(data.y, data.classes, names)
    return Samples(data.x[keep], y, names, [i for i, k in zip(data.ids, keep.tolist()) if k])
