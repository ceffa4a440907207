"""A wide residual network (Zagoruyko & Komodakis 2016, "Wide Residual Networks"), defined here, in
the user's own file, not in reglab: reglab builds it as ``build(input_shape, n_classes, **kwargs)``
and every other key of the recipe's ``model`` section is one of these keyword arguments."""

from torch import nn


class Block(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3, dropout between the convolutions (the paper's)."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.drop = nn.Dropout(dropout)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x):
        out = self.conv1(nn.functional.relu(self.bn1(x)))
        out = self.conv2(self.drop(nn.functional.relu(self.bn2(out))))
        return out + self.shortcut(x)


def build(input_shape, n_classes, depth: int = 10, widen: int = 2, dropout: float = 0.0) -> nn.Module:
    """WRN-depth-widen: three stages of (depth − 4) / 6 blocks at 16·widen, 32·widen, 64·widen channels."""
    if (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4 (10, 16, 22, ...), got {depth}")
    n, widths = (depth - 4) // 6, [16 * widen, 32 * widen, 64 * widen]
    layers, c = [nn.Conv2d(input_shape[0], 16, 3, 1, 1, bias=False)], 16
    for stage, width in enumerate(widths):
        for i in range(n):
            layers.append(Block(c, width, 2 if stage and not i else 1, dropout))
            c = width
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes)]
    return nn.Sequential(*layers)
