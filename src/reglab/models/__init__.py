"""Models: reglab's architectures and the user's, through one registry (``plugins.MODELS``).
``create_model`` builds any of them behind the input normalization layer; checkpoints are its
``state_dict``. A user's ``build(input_shape, n_classes, **kwargs)`` gets the same wrapping.
``finetune.py`` starts a model from a weights file and freezes layers."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError, first_line
from ..plugins import MODELS, call
from .alexnet_like import AlexNetLike
from .efficientnet import EfficientNetB0
from .instrunet import InstruNet
from .layers import LOG_MEL_MODES, Normalized
from .linear import LinearClassifier
from .resnet18 import ResNet18

for _name, _architecture in {"linear": LinearClassifier, "alexnet_like": AlexNetLike, "resnet18": ResNet18, "instrunet": InstruNet,
                             "efficientnet_b0": EfficientNetB0}.items():  # fmt: skip
    MODELS.register(_name, _architecture, builtin=True)


def create_model(config, input_shape: tuple[int, int, int], n_classes: int, data=None) -> Normalized:
    """``config`` is the recipe's ``model`` section; ``input_shape`` is ``(C, H, W)``; ``data``, the
    recipe's ``data`` section, tells a log-mel input's frame rate (``input_norm: pcen`` needs it)."""
    frame_rate = data.frame_rate(input_shape) if data is not None and data.is_audio else None
    if config.input_norm in LOG_MEL_MODES and frame_rate is None:
        raise UserError(f"model.input_norm: {config.input_norm} acts on log-mel features; it needs an audio data source (data.source: irmas)")
    entry = MODELS.entries.get(config.name)
    if entry is not None and entry.builtin:
        net = entry.target(config, input_shape, n_classes)
    else:
        net = call(MODELS.resolve(config.name, "model.name"), "model.name", tuple(input_shape), n_classes, **config.kwargs)
        check_user_model(net, config.name, input_shape, n_classes)
    return Normalized(net, input_shape, config.input_norm, config.channels_last, frame_rate)


def check_user_model(net, name: str, input_shape: tuple[int, int, int], n_classes: int) -> None:
    """A user's model must be a module mapping a batch of inputs to ``[batch, n_classes]`` logits."""
    if not isinstance(net, nn.Module):
        raise UserError(f"model.name: {name} returned a {type(net).__name__}, not a torch.nn.Module")
    try:
        with torch.no_grad():
            out = net.eval()(torch.zeros((2, *input_shape)))
    except Exception as exc:
        raise UserError(f"model.name: {name} fails on a batch of {tuple(input_shape)} inputs ({type(exc).__name__}: {first_line(exc)})") from None
    finally:
        net.train()
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (2, n_classes):
        raise UserError(f"model.name: {name} returns {shape} for a batch of 2, not [batch, n_classes] = (2, {n_classes})")



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
