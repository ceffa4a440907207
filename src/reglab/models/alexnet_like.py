"""An AlexNet-like CNN (Krizhevsky et al. 2012) sized for small images: 11x11, 5x5 and three 3x3
convolutions with 64-192-384-384-256 filters (times ``model.width``), optional local response
normalization after the first two, 3x3/2 max-pooling, and two dense layers of 1024.

The first convolution's stride shrinks with the input (4 at 128 px and above, 2 from 48 px, else
1), and pooling is padded, so 8x8 digits and 64x64 images both fit."""

from __future__ import annotations

import torch
from torch import nn

from .layers import block_dropout, channels, head_dropout, norm2d
from .lrn import LocalResponseNorm


class AlexNetLike(nn.Module):
    def __init__(self, config, input_shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        in_channels, height, _ = input_shape
        bn = bool(config.batch_norm)  # off unless asked: the original has no batch norm
        c1, c2, c3, c4, c5 = (channels(n, config.width) for n in (64, 192, 384, 384, 256))
        stride = 4 if height >= 128 else 2 if height >= 48 else 1

        def conv(cin, cout, kernel, stride=1):
            return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=not bn), norm2d(bn, cout), nn.ReLU(inplace=True)]

        def lrn():
            return LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0) if config.lrn else nn.Identity()

        def pool():
            return [nn.MaxPool2d(3, 2, padding=1), block_dropout(config)]

        self.features = nn.Sequential(
            *conv(in_channels, c1, 11, stride), lrn(), *pool(),
            *conv(c1, c2, 5), lrn(), *pool(),
            *conv(c2, c3, 3), *conv(c3, c4, 3), *conv(c4, c5, 3), *pool(),
            nn.AdaptiveAvgPool2d(3),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            head_dropout(config), nn.Linear(c5 * 9, 1024), nn.ReLU(inplace=True),
            head_dropout(config), nn.Linear(1024, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, n_classes),
        )  # fmt: skip

        for module in self.modules():  # He et al. 2015 init: without batch norm, torch's default stalls at chance
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))
