"""EfficientNet-B0 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks"), trained from scratch: a 3x3 stem, seven stages of MBConv blocks (inverted bottlenecks,
Sandler et al. 2018: a 1x1 expansion, a depthwise 3x3 or 5x5 convolution, squeeze-and-excitation,
Hu et al. 2018, a 1x1 projection; SiLU activations), a 1x1 head convolution to 1280 channels,
global average pooling and head dropout (0.2 in the paper: ``model.dropout``). Residual blocks
carry stochastic depth (``model.drop_path``, 0.2 in the paper, linear in depth as for ResNet-18).

``model.width`` and ``model.depth`` are the compound-scaling multipliers (channels rounded to
multiples of 8, repeats rounded up); ``model.stem: small`` is a stride-1 stem for small images
(16x downsampling instead of 32x). At width and depth 1 with 1000 classes it has torchvision's
5,288,548 parameters."""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import PooledConvNet, block_dropout, drop_path

# (expansion, kernel, stride, output channels, repeats) of B0's seven stages
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


def rounded(channels: float, divisor: int = 8) -> int:
    """Channels rounded to a multiple of 8, never more than 10 % below (EfficientNet's rule)."""
    value = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return value + divisor if value < 0.9 * channels else value


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.SiLU(inplace=True)) if act else nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(channels, squeezed, 1), nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.expand(nn.functional.silu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(scale)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expansion: int, kernel: int, stride: int, drop_path: float):
        super().__init__()
        hidden = cin * expansion
        layers = [conv_bn(cin, hidden, 1)] if expansion != 1 else []
        layers += [conv_bn(hidden, hidden, kernel, stride, groups=hidden), SqueezeExcitation(hidden, max(1, cin // 4)),
                   conv_bn(hidden, cout, 1, act=False)]  # fmt: skip
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + drop_path(out, self.drop_path, self.training) if self.residual else out


class EfficientNetB0(PooledConvNet):
    def __init__(self, config, input_shape: tuple[int, int, int], n_classes: int):
        repeats = [math.ceil(n * config.depth) for *_, n in STAGES]
        stem_out = rounded(32 * config.width)
        layers = [conv_bn(input_shape[0], stem_out, 3, 1 if config.stem == "small" else 2)]
        total, done, cin = sum(repeats), 0, stem_out
        for (expansion, kernel, stride, channels, _), count in zip(STAGES, repeats):
            cout = rounded(channels * config.width)
            for index in range(count):
                layers.append(MBConv(cin, cout, expansion, kernel, stride if index == 0 else 1, config.drop_path * done / total))
                cin, done = cout, done + 1
            layers.append(block_dropout(config))
        head = rounded(1280 * config.width)
        layers.append(conv_bn(cin, head, 1))
        super().__init__(layers, head, config, n_classes)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.uniform_(module.weight, -1.0 / math.sqrt(module.out_features), 1.0 / math.sqrt(module.out_features))
                nn.init.zeros_(module.bias)
