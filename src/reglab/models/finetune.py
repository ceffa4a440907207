"""Fine-tuning: a model started from a weights file (``model.init``) and layers held fixed
(``model.freeze``); layer-wise learning rates are the optimizer's (``optim.lr_multipliers``).
Names are the network's own (``conv1.weight``, ``fc.bias``): reglab's ``net.`` wrapper prefix is
added or dropped so that a run's ``best.pt`` and a bare network's ``state_dict`` both load."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..rundir import load_tensors


def own_name(name: str) -> str:
    return name.removeprefix("net.")


def initialize(model: nn.Module, config) -> list[str]:
    """Copy the file's tensors into ``model`` where name and shape match (all must, with
    ``strict``); returns what was left out, one ``name (why)`` each."""
    path = Path(config.path).expanduser()
    saved = load_tensors(path, "a state_dict")
    if not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in saved.items()):
        raise UserError(f"model.init.path: {path} is not a state_dict (names to tensors)")
    saved = {own_name(key): value for key, value in saved.items() if not any(own_name(key).startswith(p) for p in config.skip)}
    own = model.state_dict()
    loaded, left_out = {}, []
    for name, tensor in own.items():
        wanted = saved.get(own_name(name))
        if wanted is None:
            if not any(own_name(name).startswith(p) for p in config.skip):
                left_out.append(f"{own_name(name)} (not in the file)")
        elif wanted.shape != tensor.shape:
            left_out.append(f"{own_name(name)} (shape {tuple(wanted.shape)} in the file, {tuple(tensor.shape)} here)")
        else:
            loaded[name] = wanted
    known = {own_name(name) for name in own}
    left_out += [f"{name} (no such tensor here)" for name in saved if name not in known]
    if not loaded:
        raise UserError(f"model.init.path: no tensor of {path} fits this model (names like {next(iter(saved), '-')} vs {own_name(next(iter(own)))})")
    if config.strict and left_out:
        raise UserError(f"model.init: {path} does not match the model (strict): {', '.join(left_out[:5])}{' …' if len(left_out) > 5 else ''}")
    with torch.no_grad():
        for name, tensor in loaded.items():
            own[name].copy_(tensor)
    return left_out


def freeze(model: nn.Module, prefixes: list[str]) -> int:
    """Hold the parameters under ``prefixes`` fixed (no gradient, not in the optimizer) and the
    batch-norm statistics of layers under them (momentum 0); returns how many tensors are frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if any(own_name(name).startswith(p) for p in prefixes):
            param.requires_grad_(False)
            frozen += 1
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and any(own_name(name).startswith(p) for p in prefixes):
            module.momentum = 0.0
    if prefixes and not frozen:
        raise UserError(f"model.freeze: no parameter's name starts with {', '.join(prefixes)} (names look like {own_name(next(iter(dict(model.named_parameters()))))})")
    return frozen
