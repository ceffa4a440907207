"""RandAugment (Cubuk et al. 2020, "RandAugment: Practical automated data augmentation with a
reduced search space") and TrivialAugment (Müller & Hutter 2021, "TrivialAugment: Tuning-free
Yet State-of-the-Art Data Augmentation") on whole batches: every sample draws its own operation
(uniformly among ``OPERATIONS``), sign and magnitude, and each operation is applied once to the
samples that drew it, with per-sample parameters (kornia's functional ops). RandAugment applies
``n`` operations in turn at the fixed magnitude ``m`` of 30; TrivialAugment one operation at a
magnitude drawn uniformly per sample. The operations and their ranges are torchvision's
RandAugment space (magnitude 1 = shear 0.3, translation 45 % of the side, rotation 30°,
enhancement factor 1 ± 0.9, 4 bits of posterization, solarization of everything)."""

from __future__ import annotations

import kornia.enhance as E
import kornia.geometry.transform as T
import torch

from ..errors import UserError
from .context import BatchContext

MAX_M = 30  # RandAugment's magnitude scale


def gray(x: torch.Tensor) -> torch.Tensor:
    return x if x.shape[1] == 1 else (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``other + factor·(x − other)``, clamped to the image range (PIL's ImageEnhance)."""
    return (other + factor.view(-1, 1, 1, 1) * (x - other)).clamp(0.0, 1.0)


def autocontrast(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    low, high = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    return ((x - low) / (high - low).clamp_min(1e-3)).clamp(0.0, 1.0)


def pixels(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return v * 0.45 * x.shape[-1]


OPERATIONS = {  # name -> (x [k, C, H, W] in [0, 1], v [k] in [-1, 1]: signed magnitude) -> x
    "identity": lambda x, v: x,
    "autocontrast": autocontrast,
    "equalize": lambda x, v: E.equalize(x),
    "rotate": lambda x, v: T.rotate(x, v * 30.0),
    "solarize": lambda x, v: E.solarize(x, 1.0 - v.abs()),
    "color": lambda x, v: x if x.shape[1] == 1 else blend(x, gray(x).expand_as(x), 1.0 + 0.9 * v),
    "posterize": lambda x, v: E.posterize(x, (8 - (4 * v.abs()).round()).int()),
    "contrast": lambda x, v: blend(x, gray(x).mean((1, 2, 3), keepdim=True).expand_as(x), 1.0 + 0.9 * v),
    "brightness": lambda x, v: blend(x, torch.zeros_like(x), 1.0 + 0.9 * v),
    "sharpness": lambda x, v: E.sharpness(x, 1.0 + 0.9 * v),
    "shear_x": lambda x, v: T.shear(x, torch.stack([0.3 * v, torch.zeros_like(v)], 1)),
    "shear_y": lambda x, v: T.shear(x, torch.stack([torch.zeros_like(v), 0.3 * v], 1)),
    "translate_x": lambda x, v: T.translate(x, torch.stack([pixels(x, v), torch.zeros_like(v)], 1)),
    "translate_y": lambda x, v: T.translate(x, torch.stack([torch.zeros_like(v), pixels(x, v)], 1)),
}


def draw(count: int, device) -> torch.Tensor:
    """One operation index per sample, uniform over ``OPERATIONS``."""
    return torch.randint(len(OPERATIONS), (count,), device=device)


def apply_drawn(x: torch.Tensor, chosen: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Each sample through the operation it drew, at its magnitude in [0, 1] with a random sign;
    one call per operation on the samples that drew it."""
    signed = magnitude * (torch.randint(0, 2, magnitude.shape, device=x.device) * 2 - 1).to(x.dtype)
    out = x.clone()
    for index, operation in enumerate(OPERATIONS.values()):
        rows = (chosen == index).nonzero().flatten()
        if len(rows):
            out[rows] = operation(x[rows], signed[rows]).to(x.dtype)
    return out


def images_only(key: str, context: BatchContext) -> None:
    if context.data is not None and context.data.is_audio:
        raise UserError(f"augment.{key}: acts on images (colour, geometry); this recipe's data are log-mel features")


class RandAugment:
    def __init__(self, config, context: BatchContext):
        images_only("randaugment", context)
        self.n, self.magnitude = config.n, config.m / MAX_M

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        magnitude = torch.full((len(x),), self.magnitude, device=x.device, dtype=x.dtype)
        for _ in range(self.n):
            x = apply_drawn(x, draw(len(x), x.device), magnitude)
        return x, targets


class TrivialAugment:
    def __init__(self, config: bool, context: BatchContext):
        images_only("trivialaugment", context)

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, is_extra: torch.Tensor):
        magnitude = torch.randint(0, MAX_M + 1, (len(x),), device=x.device).to(x.dtype) / MAX_M
        return apply_drawn(x, draw(len(x), x.device), magnitude), targets
