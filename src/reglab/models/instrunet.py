"""InstruNet-style CNN (after Kratimenos et al. 2020 and the VGG-like audio taggers of Choi et
al. 2016): blocks of two 3x3 convolutions with batch norm and ReLU followed by 2x2 max-pooling,
global average pooling, and dropout only in the head. Four blocks of 32-64-128-256 filters
(times ``model.width``; a tuned variant used 256 filters in the last block) — an 8-layer plain CNN
that also serves small images."""

from __future__ import annotations

from torch import nn

from .layers import PooledConvNet, block_dropout, channels, norm2d


class InstruNet(PooledConvNet):
    def __init__(self, config, input_shape: tuple[int, int, int], n_classes: int):
        bn = config.batch_norm is not False
        layers, cin = [], input_shape[0]
        for index, base in enumerate((32, 64, 128, 256)):
            cout = channels(base, config.width)
            for _ in range(2):
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=not bn), norm2d(bn, cout), nn.ReLU(inplace=True)]
                cin = cout
            if min(input_shape[1:]) >= 2 ** (index + 1):  # pool while the map is at least 2 pixels
                layers.append(nn.MaxPool2d(2))
            layers.append(block_dropout(config))
        super().__init__(layers, cin, config, n_classes)
