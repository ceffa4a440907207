"""Model registry. ``create_model`` builds any registered architecture behind the input
normalization layer; checkpoints are its ``state_dict``."""

from __future__ import annotations

from .alexnet_like import AlexNetLike
from .instrunet import InstruNet
from .layers import Normalized
from .linear import LinearClassifier
from .resnet18 import ResNet18

MODELS = {
    "linear": LinearClassifier,
    "alexnet_like": AlexNetLike,
    "resnet18": ResNet18,
    "instrunet": InstruNet,
}


def create_model(config, input_shape: tuple[int, int, int], n_classes: int) -> Normalized:
    """``config`` is the recipe's ``model`` section; ``input_shape`` is ``(C, H, W)``."""
    return Normalized(MODELS[config.name](config, input_shape, n_classes), input_shape, config.input_norm, config.channels_last)


__all__ = ["MODELS", "Normalized", "create_model"]
