"""Model registry. ``create_model`` builds any registered architecture behind the input
normalization layer; checkpoints are its ``state_dict``."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from .alexnet_like import AlexNetLike
from .efficientnet import EfficientNetB0
from .instrunet import InstruNet
from .layers import Normalized
from .linear import LinearClassifier
from .resnet18 import ResNet18

MODELS = {
    "linear": LinearClassifier,
    "alexnet_like": AlexNetLike,
    "resnet18": ResNet18,
    "instrunet": InstruNet,
    "efficientnet_b0": EfficientNetB0,
}


def create_model(config, input_shape: tuple[int, int, int], n_classes: int) -> Normalized:
    """``config`` is the recipe's ``model`` section; ``input_shape`` is ``(C, H, W)``."""
    return Normalized(MODELS[config.name](config, input_shape, n_classes), input_shape, config.input_norm, config.channels_last)



def check_input_size(model: nn.Module, config, input_shape: tuple[int, int, int]) -> None:
    """Refuse inputs so small that a strided layer of the model sees a 1-pixel map (it would
    train on padding without a word); the message gives the smallest square size that fits."""
    if not _collapses(model, input_shape):
        return
    side = min(input_shape[1:]) + 1
    while _collapses(model, (input_shape[0], side, side)):
        side += 1
    size = "x".join(map(str, input_shape[1:]))
    raise UserError(f"data.image_size: {size} inputs are too small for model {config.name} (it needs at least {side}x{side})")


def _collapses(model: nn.Module, input_shape: tuple[int, int, int]) -> bool:
    """Whether some strided convolution or pooling of ``model`` receives a map under 2 pixels a side."""
    collapsed = []

    def look(module, args):
        stride = module.stride if isinstance(module.stride, tuple) else (module.stride,)
        collapsed.append(max(stride) > 1 and min(args[0].shape[-2:]) < 2)

    hooks = [m.register_forward_pre_hook(look) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros((1, *input_shape)))
    finally:
        for hook in hooks:
            hook.remove()
    return any(collapsed)


__all__ = ["MODELS", "Normalized", "check_input_size", "create_model"]
