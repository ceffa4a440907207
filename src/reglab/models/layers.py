"""Small building blocks shared by the architectures."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .batchnorm import BatchNorm2d
from .pcen import PCEN

LOG_MEL_MODES = ("band_mean", "pcen")  # input normalizations that only log-mel features have
BAND_MODES = ("per_band", *LOG_MEL_MODES)  # input normalizations standardized per frequency row


def channels(base: int, width: float) -> int:
    """``base`` channels scaled by the recipe's width multiplier, at least 8."""
    return max(8, int(round(base * width)))


def norm2d(enabled: bool, n: int) -> nn.Module:
    return BatchNorm2d(n) if enabled else nn.Identity()


class MaxDropout(nn.Module):
    """MaxDropout (Santos et al. 2020, "MaxDropout: Deep Neural Network Regularization Based on
    Maximum Output Values"): while training, the most active units are zeroed instead of random
    ones: those whose value, min-max normalized, exceeds 1 − rate. Normalized per sample here (the
    authors' code normalizes over the whole batch), so a sample's result never depends on the
    others in its batch; nothing is rescaled, as in the paper. Identity at evaluation."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        flat = x.flatten(1)
        low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
        normalized = (flat - low) / (high - low).clamp_min(1e-12)
        return flat.masked_fill(normalized > 1.0 - self.rate, 0.0).view_as(x)


def dropout(config, where: str, standard: type[nn.Module]) -> nn.Module:
    rate = config.dropout.rate if config.dropout.where == where else 0.0
    if rate == 0:
        return nn.Identity()
    return MaxDropout(rate) if config.dropout.kind == "maxdropout" else standard(rate)


def block_dropout(config) -> nn.Module:
    """Spatial dropout between blocks when ``model.dropout.where == 'blocks'`` (Tompson et al. 2015)."""
    return dropout(config, "blocks", nn.Dropout2d)


def head_dropout(config) -> nn.Module:
    """Dropout before dense layers when ``model.dropout.where == 'head'`` (Srivastava et al. 2014)."""
    return dropout(config, "head", nn.Dropout)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Each sample's ``x`` zeroed with probability ``p`` while training, the rest scaled by 1/(1 − p)."""
    if not training or p == 0.0:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device) >= p
    return x * keep.to(x.dtype) / (1.0 - p)


class DropBlock(nn.Module):
    """DropBlock (Ghiasi et al. 2018, "DropBlock: A regularization method for convolutional
    networks"): while training, contiguous ``block_size`` × ``block_size`` squares of each feature
    map are zeroed (per sample and channel) and the rest rescaled, so that a share ``p`` of the
    units is dropped: block corners are drawn at rate γ = p / b² · HW / ((H − b + 1)(W − b + 1)),
    only where a whole block fits. Identity at evaluation."""

    def __init__(self, p: float, block_size: int):
        super().__init__()
        self.p, self.block_size = p, block_size

    @staticmethod
    def covered(corners: torch.Tensor, block: int) -> torch.Tensor:
        """``[B, C, H − b + 1, W − b + 1]`` block corners → ``[B, C, H, W]``, 1 where a block covers."""
        return F.max_pool2d(F.pad(corners, (block - 1,) * 4), block, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        height, width = x.shape[-2:]
        block = min(self.block_size, height, width)
        valid = (height - block + 1) * (width - block + 1)
        gamma = self.p / block**2 * height * width / valid
        corners = (torch.rand(*x.shape[:2], height - block + 1, width - block + 1, device=x.device) < gamma).to(x.dtype)
        keep = 1.0 - self.covered(corners, block)
        return x * keep * (keep.numel() / keep.sum().clamp_min(1.0))


class PooledConvNet(nn.Module):
    """Convolutional layers, global average pooling and one dense layer (with head dropout), He
    initialization of the convolutions (He et al. 2015); ResNet-18 and InstruNet share it."""

    def __init__(self, layers: list[nn.Module], feature_channels: int, config, n_classes: int):
        super().__init__()
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.head = nn.Sequential(head_dropout(config), nn.Linear(feature_channels, n_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class Normalized(nn.Module):
    """Standardizes the input, then runs ``net``. uint8 images are first scaled to [0, 1].

    ``dataset``: per-channel mean and std of the training split; ``per_band``: per frequency row
    (spectrogram bands), also from the training split; both are buffers, so a checkpoint carries
    them. ``per_image``: each input minus its own mean over its own std (as TensorFlow's
    ``per_image_standardization``), which discards global colour, contrast or loudness.
    ``band_mean``: each frequency row minus its own mean over time in this input, over the
    training split's per-row std of that (cepstral mean normalization, Furui 1981, "Cepstral
    analysis technique for automatic speaker verification"): a fixed equalization or level change
    adds a constant to each row of a log spectrogram, and this removes it. ``pcen``: per-channel
    energy normalization of log-mel features (``pcen.py``; ``frame_rate`` in frames per second),
    then standardized per row as ``per_band``. With ``channels_last`` the convolution weights and
    the standardized batch are in NHWC layout."""

    def __init__(self, net: nn.Module, input_shape: tuple[int, int, int], mode: str = "dataset", channels_last: bool = False,
                 frame_rate: float | None = None):  # fmt: skip
        super().__init__()
        self.net, self.mode = net, mode
        self.pcen = PCEN(frame_rate) if mode == "pcen" else None
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        net.to(memory_format=self.memory_format)
        shape = (1, 1, input_shape[1], 1) if mode in BAND_MODES else (1, input_shape[0], 1, 1)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    @staticmethod
    def as_float(x: torch.Tensor) -> torch.Tensor:
        """In torch's default floating type (float32 unless a test asks for float64)."""
        return x.to(torch.get_default_dtype()) / 255.0 if x.dtype == torch.uint8 else x.to(torch.get_default_dtype())

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        x = self.transformed(self.as_float(x))
        dims = (0, 1, 3) if self.mode in BAND_MODES else (0, 2, 3)
        self.mean.copy_(x.mean(dim=dims, keepdim=True))
        self.std.copy_(x.std(dim=dims, keepdim=True).clamp_min(1e-3))

    def transformed(self, x: torch.Tensor) -> torch.Tensor:
        """What is standardized: ``band_mean``, every row less its mean over time; ``pcen``, the
        normalized energies; other modes, ``x`` as it is."""
        if self.mode == "band_mean":
            return x - x.mean(dim=3, keepdim=True)
        return self.pcen(x) if self.pcen is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.transformed(self.as_float(x))
        if self.mode == "per_image":
            x = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
        else:
            x = (x - self.mean) / self.std
        return self.net(x.contiguous(memory_format=self.memory_format))
