"""What a batch operation is built from besides its recipe value: what it may need to know of the
training data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch


@dataclass
class BatchContext:
    """What an operation may need to know of the training data."""

    class_counts: torch.Tensor
    input_shape: tuple[int, int, int]
    data: Optional[Any] = None  # the recipe's data section (audio operations read the front end)
