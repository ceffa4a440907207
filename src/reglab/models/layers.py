"""Small building blocks shared by the architectures."""

from __future__ import annotations

import torch
from torch import nn


def channels(base: int, width: float) -> int:
    """``base`` channels scaled by the recipe's width multiplier, at least 8."""
    return max(8, int(round(base * width)))


def norm2d(enabled: bool, n: int) -> nn.Module:
    return nn.BatchNorm2d(n) if enabled else nn.Identity()


def block_dropout(config) -> nn.Module:
    """Spatial dropout between blocks when ``model.dropout.where == 'blocks'`` (Tompson et al. 2015)."""
    rate = config.dropout.rate if config.dropout.where == "blocks" else 0.0
    return nn.Dropout2d(rate) if rate > 0 else nn.Identity()


def head_dropout(config) -> nn.Module:
    """Dropout before dense layers when ``model.dropout.where == 'head'`` (Srivastava et al. 2014)."""
    rate = config.dropout.rate if config.dropout.where == "head" else 0.0
    return nn.Dropout(rate) if rate > 0 else nn.Identity()


class Normalized(nn.Module):
    """Turns uint8 images into standardized floats, then runs ``net``.

    ``dataset``: the per-channel mean and std measured on the training split, stored as buffers so
    a checkpoint carries them. ``per_image``: each image minus its own mean over its own std (as
    TensorFlow's ``per_image_standardization``), which discards global colour and contrast."""

    def __init__(self, net: nn.Module, in_channels: int, mode: str = "dataset"):
        super().__init__()
        self.net, self.mode = net, mode
        self.register_buffer("mean", torch.zeros(1, in_channels, 1, 1))
        self.register_buffer("std", torch.ones(1, in_channels, 1, 1))

    @torch.no_grad()
    def fit(self, x_uint8: torch.Tensor) -> None:
        x = x_uint8.float() / 255.0
        self.mean.copy_(x.mean(dim=(0, 2, 3), keepdim=True))
        self.std.copy_(x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        if self.mode == "per_image":
            return self.net((x - x.mean(dim=(1, 2, 3), keepdim=True)) / x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3))
        return self.net((x - self.mean) / self.std)
