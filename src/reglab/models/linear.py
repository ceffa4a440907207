"""A linear (softmax or one-vs-all) classifier on raw pixels, as in the CS231n linear-classifier
study; ``weight_images`` gives the learnt weights as one image per class."""

from __future__ import annotations

import torch
from torch import nn

from .layers import head_dropout


class LinearClassifier(nn.Module):
    def __init__(self, config, input_shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        self.input_shape = input_shape
        self.dropout = head_dropout(config)
        self.fc = nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x.flatten(1)))

    def weight_images(self) -> torch.Tensor:
        """``[n_classes, C, H, W]``: each class's weights laid out as an image."""
        return self.fc.weight.detach().reshape(-1, *self.input_shape)
