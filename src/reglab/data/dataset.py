"""The in-memory form every source produces: inputs and their targets as tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


class Named:
    """A data set whose items each have an id: as long as its ids."""

    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Samples(Named):
    """``x``: uint8 images or float features ``[N, C, H, W]``; ``y``: class indices ``[N]``, a
    multi-hot ``[N, C]`` matrix, or ``None`` when unlabelled; ``ids``: one name per sample (file
    stem or index) for predictions and submissions; ``variants``: other renderings of each sample
    ``[N, K, C, H, W]`` (the clip in simulated rooms), of which a visit takes one with probability
    ``variant_p``."""

    x: torch.Tensor
    y: Optional[torch.Tensor]
    classes: list[str]
    ids: list[str]
    variants: Optional[torch.Tensor] = None
    variant_p: float = 0.0

    @property
    def multilabel(self) -> bool:
        return self.y is not None and self.y.dim() == 2

    def subset(self, index: torch.Tensor) -> "Samples":
        picked = index.tolist()
        return Samples(
            self.x[index], None if self.y is None else self.y[index], self.classes, [self.ids[i] for i in picked],
            None if self.variants is None else self.variants[index], self.variant_p,
        )

    def visited(self, index: torch.Tensor) -> torch.Tensor:
        """The inputs a batch of visits sees: each sample as it is or, with probability
        ``variant_p``, one of its variants drawn uniformly (from torch's current random stream)."""
        if self.variants is None:
            return self.x[index]
        heard = self.a_variant(index)  # the variant drawn before the coin: the order a seed's numbers depend on
        varied = (torch.rand(len(index), device=index.device) < self.variant_p).view(-1, *[1] * (self.x.dim() - 1))
        return torch.where(varied, heard, self.x[index])

    def a_variant(self, index: torch.Tensor) -> torch.Tensor:
        """Each sample of ``index`` in one of its variants, drawn uniformly."""
        return self.variants[index, torch.randint(self.variants.shape[1], (len(index),), device=index.device)]

    def class_counts(self) -> torch.Tensor:
        """Samples per class (positives per class for multi-label targets)."""
        if self.multilabel:
            return self.y.sum(0).long()
        return torch.bincount(self.y, minlength=len(self.classes))


@dataclass
class Excerpts(Named):
    """Long recordings cut into windows: ``windows`` ``[W, C, H, T]`` with ``owner[w]`` the
    excerpt each window comes from and ``moment[w]`` the stretch of time it covers (windows of
    the same moment are views of it: the downmix and each channel); ``y`` multi-hot ``[E, C]``."""

    windows: torch.Tensor
    owner: torch.Tensor
    moment: torch.Tensor
    y: Optional[torch.Tensor]
    classes: list[str]
    ids: list[str]


def select_classes(y: torch.Tensor, all_classes: list[str], classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask of samples whose class is kept, and their labels renumbered in ``classes`` order."""
    keep_ids = torch.tensor([all_classes.index(name) for name in classes])
    keep = torch.isin(y, keep_ids)
    renumber = torch.full((len(all_classes),), -1, dtype=torch.long)
    renumber[keep_ids] = torch.arange(len(classes))
    return keep, renumber[y[keep]]
