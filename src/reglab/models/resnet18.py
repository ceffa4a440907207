"""ResNet-18 (He et al. 2016) with BasicBlocks [2, 2, 2, 2], trained from scratch.

``model.stem``: ``small`` is a 3x3/1 convolution without max-pooling (for CIFAR-sized inputs);
``standard`` is the ImageNet 7x7/2 convolution + 3x3/2 max-pool. ``model.width`` scales the
64-128-256-512 channels; ``model.batch_norm: false`` replaces batch norm by identity.
``model.drop_path``: stochastic depth (Huang et al. 2016, "Deep Networks with Stochastic Depth"):
while training, each sample's residual branch in block l of L is dropped with probability
rate·l/L (the paper's linear decay, the last block at ``rate``) and the kept ones scaled by
1/(1 − p), as timm's ``drop_path`` does per sample; at evaluation every branch is kept.
``model.dropblock``: DropBlock (``layers.DropBlock``) after the third and fourth stages."""

from __future__ import annotations

import torch
from torch import nn

from .layers import DropBlock, PooledConvNet, block_dropout, channels, drop_path, norm2d


class BasicBlock(nn.Module):
    conv_norm_pairs = (("conv1", "bn1"), ("conv2", "bn2"))  # applied in turn: foldable for inference

    def __init__(self, cin: int, cout: int, stride: int, bn: bool, drop_path: float = 0.0):
        super().__init__()
        self.drop_path = drop_path
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=not bn)
        self.bn1 = norm2d(bn, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=not bn)
        self.bn2 = norm2d(bn, cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=not bn), norm2d(bn, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = drop_path(self.bn2(self.conv2(out)), self.drop_path, self.training)
        return self.relu(out + self.shortcut(x))


class ResNet18(PooledConvNet):
    def __init__(self, config, input_shape: tuple[int, int, int], n_classes: int):
        bn = config.batch_norm is not False
        widths = [channels(n, config.width) for n in (64, 128, 256, 512)]
        if config.stem == "small":
            stem = [nn.Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=not bn), norm2d(bn, widths[0]), nn.ReLU(inplace=True)]
        else:
            stem = [
                nn.Conv2d(input_shape[0], widths[0], 7, 2, 3, bias=not bn), norm2d(bn, widths[0]),
                nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
            ]  # fmt: skip
        stages, cin = [], widths[0]
        rates = [config.drop_path * (block + 1) / 8 for block in range(8)]  # linear in depth, 8 blocks
        for index, cout in enumerate(widths):
            stride = 1 if index == 0 else 2
            stages += [BasicBlock(cin, cout, stride, bn, rates[2 * index]), BasicBlock(cout, cout, 1, bn, rates[2 * index + 1]),
                       block_dropout(config)]  # fmt: skip
            if config.dropblock and index >= 2:  # after the later stages, as the paper's groups 3 and 4
                stages.append(DropBlock(config.dropblock.p, config.dropblock.block_size))
            cin = cout
        super().__init__(stem + stages, cin, config, n_classes)
