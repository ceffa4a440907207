"""Losses over soft targets ``[B, C]`` (one-hot, smoothed or mixed), each averaged over the batch.

- ``cross_entropy``: softmax cross-entropy.
- ``focal``: softmax focal loss, α·(1 − p)^γ·(−log p) (Lin et al. 2017, "Focal Loss for Dense
  Object Detection"); γ = 0 and α = 1 is cross-entropy.
- ``ovr_bce`` / ``bce``: one sigmoid per class with binary cross-entropy, averaged over classes;
  on single-label data this is the one-vs-all ("multiple BCE") classifier, on multi-label data the
  usual multi-label loss.

Any of them combines with class weights, label smoothing and (softmax losses) logit adjustment;
with two views of every visit in a batch (``data.rooms.consistency``) a Jensen-Shannon consistency
term between them (``ViewConsistency``) is added to it as a penalty.
Class weights multiply each sample's loss by its class's weight and the batch is averaged as in
Keras' ``class_weight`` (not normalized by the weights' sum); for the BCE losses they weight the
positive term (``pos_weight``). Label smoothing (Szegedy et al. 2016) mixes the targets with the
uniform distribution (softmax) or with 0.5 (sigmoid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..inference.logit_adjustment import log_prior
from ..plugins import LOSSES, call

def class_weights(spec, counts: torch.Tensor, beta: float = 0.999) -> Optional[torch.Tensor]:
    """``none``; ``inverse_frequency``, n / (C·n_c) (scikit-learn's "balanced"); ``effective_number``,
    (1 − β)/(1 − β^n_c) scaled to sum to C (Cui et al. 2019, "Class-Balanced Loss Based on
    Effective Number of Samples"); or a list."""
    if spec == "none":
        return None
    counts = counts.float().clamp_min(1.0)
    if spec == "inverse_frequency":
        return counts.sum() / (len(counts) * counts)
    if spec == "effective_number":
        weights = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta), counts))
        return weights * len(counts) / weights.sum()
    if len(spec) != len(counts):
        raise UserError(f"loss.class_weights: {len(spec)} weights given for {len(counts)} classes")
    return torch.tensor(spec, dtype=torch.float32)


class SoftmaxLoss(nn.Module):
    """Cross-entropy, or focal loss when ``gamma`` > 0 or ``alpha`` != 1; with ``logit_shift``
    (τ·log prior) the logit-adjusted loss of Menon et al. 2021 ("Long-tail learning via logit
    adjustment"), whose raw logits then predict balanced-error-optimally."""

    def __init__(self, weight=None, label_smoothing=0.0, alpha=1.0, gamma=0.0, logit_shift=None):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("logit_shift", logit_shift)
        self.label_smoothing, self.alpha, self.gamma = label_smoothing, alpha, gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n_classes = logits.shape[1]
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / n_classes
        logits = logits.float() if self.logit_shift is None else logits.float() + self.logit_shift
        log_p = F.log_softmax(logits, dim=1)
        per_class = -log_p * targets
        if self.gamma or self.alpha != 1.0:
            per_class = self.alpha * (1 - log_p.exp()).pow(self.gamma) * per_class
        if self.weight is not None:
            per_class = per_class * self.weight
        return per_class.sum(dim=1).mean()


class SigmoidLoss(nn.Module):
    """Binary cross-entropy per class, averaged over classes then over the batch."""

    def __init__(self, pos_weight=None, label_smoothing=0.0):
        super().__init__()
        self.register_buffer("pos_weight", pos_weight)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=self.pos_weight)


def softmax_loss(config, weight: Optional[torch.Tensor], counts: torch.Tensor) -> nn.Module:
    shift = None
    if config.logit_adjustment:
        shift = config.logit_adjustment * torch.from_numpy(log_prior(counts.cpu().numpy())).float()
    alpha, gamma = (config.alpha, config.gamma) if config.name == "focal" else (1.0, 0.0)
    return SoftmaxLoss(weight, config.label_smoothing, alpha, gamma, shift)


def sigmoid_loss(config, weight: Optional[torch.Tensor], counts: torch.Tensor) -> nn.Module:
    return SigmoidLoss(weight, config.label_smoothing)


for _name, _build in {"cross_entropy": softmax_loss, "focal": softmax_loss, "ovr_bce": sigmoid_loss, "bce": sigmoid_loss}.items():
    LOSSES.register(_name, _build, builtin=True)


@dataclass
class ViewConsistency:
    """For a batch of two views of the same visits (the first half and the second): ``weight``
    times the Jensen-Shannon divergence between the views' predicted distributions, AugMix's
    consistency term (Hendrycks et al. 2020, "AugMix"), added to the loss as a penalty; for sigmoid
    scores per class between Bernoulli distributions, averaged over classes."""

    weight: float
    sigmoid: bool

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        first, second = logits.float().chunk(2)
        return self.weight * js_divergence(first, second, self.sigmoid)


def js_divergence(first: torch.Tensor, second: torch.Tensor, sigmoid: bool) -> torch.Tensor:
    """Jensen-Shannon divergence between the distributions two batches of logits give, averaged
    over the batch (sigmoid: over classes too, each class a Bernoulli distribution)."""
    if sigmoid:  # each class's [p, 1 − p] as a two-outcome distribution
        first, second = (torch.stack([F.logsigmoid(z), F.logsigmoid(-z)], dim=-1) for z in (first, second))
    else:
        first, second = F.log_softmax(first, dim=-1), F.log_softmax(second, dim=-1)
    middle = torch.logaddexp(first, second) - math.log(2.0)
    return sum((log_p.exp() * (log_p - middle)).sum(-1) for log_p in (first, second)).mean() / 2


class UserLoss(nn.Module):
    """A loss of the user's (``loss.name: package.module:make``), its targets smoothed as reglab's are."""

    def __init__(self, inner: nn.Module, label_smoothing: float, sigmoid: bool):
        super().__init__()
        self.inner, self.label_smoothing, self.sigmoid = inner, label_smoothing, sigmoid

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.label_smoothing:
            uniform = 0.5 if self.sigmoid else 1.0 / logits.shape[1]
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing * uniform
        return self.inner(logits, targets)


def create_loss(config, counts: torch.Tensor) -> nn.Module:
    """``config`` is the recipe's ``loss`` section; ``counts`` the training samples per class."""
    weight = class_weights(config.class_weights, counts, config.beta)
    entry = LOSSES.entries.get(config.name)
    if entry is not None and entry.builtin:
        return entry.target(config, weight, counts)
    make = LOSSES.resolve(config.name, "loss.name")
    inner = call(make, "loss.name", **config.kwargs, **({"weight": weight} if weight is not None else {}))
    if not callable(inner):
        raise UserError(f"loss.name: {config.name} returned a {type(inner).__name__}, not a loss module")
    return UserLoss(inner, config.label_smoothing, config.sigmoid)
