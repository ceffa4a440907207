"""Optimizers and the two weight penalties users confuse.

- ``optim.l2`` is a penalty λ·Σw² added to the loss (Keras' ``kernel_regularizer=l2(λ)``): its
  gradient 2λw flows through momentum and Adam's moment estimates.
- ``optim.weight_decay`` is decoupled decay, w ← w·(1 − lr·wd) at every step, separate from the
  gradient (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"); with Adam this is
  AdamW. ``adamw`` is Adam with that decay.

Both touch only the parameter kinds in ``optim.penalize`` (default: conv and dense weights, never
biases or normalization layers, as timm's ``param_groups_weight_decay`` does), as does ``optim.l1``,
a penalty λ·Σ|w| that drives weights to exactly-small values (Tibshirani 1996's lasso on a network).

Two constraints act on the step instead of the loss: ``optim.clip_grad_norm`` rescales the whole
gradient when its L2 norm exceeds a bound (Pascanu et al. 2013), and ``optim.max_norm`` projects
each unit's incoming weight vector back into a ball after every step (Srivastava et al. 2014, with
dropout); neither reads a value back to the host. ``optim.sam`` wraps any of the optimizers in
sharpness-aware minimization (Foret et al. 2021; ASAM, Kwon et al. 2021, with ``adaptive``): the
gradient that steps is taken at the worst nearby weights, w + ρ·g/‖g‖, for a second forward and
backward pass every step.
"""

from __future__ import annotations

import torch
from torch import nn

NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def penalized_parameters(model: nn.Module, kinds: list[str]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split the trained parameters (frozen ones left out) into (penalized, free) by layer kind:
    conv, linear, norm, bias."""
    penalized, free = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if name == "bias":
                kind = "bias"
            elif isinstance(module, nn.modules.conv._ConvNd):
                kind = "conv"
            elif isinstance(module, nn.Linear):
                kind = "linear"
            elif isinstance(module, NORM_LAYERS):
                kind = "norm"
            else:
                kind = "other"
            (penalized if kind in kinds else free).append(param)
    return penalized, free


class SharpnessAware:
    """SAM's ascent: ``perturb`` moves the weights to w + e(w), e = ρ·T²g/‖Tg‖ (T = 1, or |w| for
    ASAM), from the gradient just computed; ``restore`` moves them back before the optimizer steps
    with the gradient taken there."""

    def __init__(self, config, parameters: list[nn.Parameter]):
        self.rho, self.adaptive, self.parameters, self.shifts = config.rho, config.adaptive, parameters, []

    @torch.no_grad()
    def perturb(self) -> None:
        live = [p for p in self.parameters if p.grad is not None]
        scales = [p.abs() if self.adaptive else torch.ones_like(p) for p in live]
        norm = torch.sqrt(sum((s * p.grad).pow(2).sum() for s, p in zip(scales, live)))
        self.shifts = [(p, self.rho * s.pow(2) * p.grad / (norm + 1e-12)) for s, p in zip(scales, live)]
        for p, shift in self.shifts:
            p.add_(shift)

    @torch.no_grad()
    def restore(self) -> None:
        for p, shift in self.shifts:
            p.sub_(shift)
        self.shifts = []


def rate_factor(name: str, multipliers: dict[str, float]) -> float:
    """The learning-rate factor of a parameter: that of the longest prefix of its name (names as
    the user's network has them, without reglab's ``net.`` wrapper) in ``multipliers``, else 1."""
    name = name.removeprefix("net.")
    matching = [prefix for prefix in multipliers if name.startswith(prefix)]
    return multipliers[max(matching, key=len)] if matching else 1.0


def parameter_groups(model: nn.Module, penalized: list[nn.Parameter], config) -> list[dict]:
    """One group per (penalized or not, learning-rate factor), the base rate's groups first;
    ``factor`` stays in each group for the schedules that set rates (SWA)."""
    marked = {id(p) for p in penalized}
    groups: dict[tuple, list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            factor = rate_factor(name, config.lr_multipliers)
            groups.setdefault((factor != 1.0, factor, id(param) not in marked), []).append(param)
    return [{"params": params, "lr": config.lr * factor, "factor": factor, "penalized": not free}
            for (_, factor, free), params in sorted(groups.items(), key=lambda item: item[0])]  # fmt: skip


class Optimizer:
    """A torch optimizer plus reglab's penalties; ``penalty()`` is added to the loss and
    ``step()`` applies decoupled decay before the optimizer's own update. Frozen parameters
    (``requires_grad`` off: ``model.freeze``) are not in it."""

    def __init__(self, config, model: nn.Module):
        self.config = config
        self.penalized, free = penalized_parameters(model, config.penalize)
        self.parameters = self.penalized + free
        self.unit_weights = [m.weight for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) and m.weight.requires_grad]
        self.sam = SharpnessAware(config.sam, self.parameters) if config.sam else None
        groups = parameter_groups(model, self.penalized, config)
        # one vectorized kernel a parameter (CPU and CUDA) instead of about ten element-wise ops
        # dispatched from Python: AlexNet-like steps 1.06-1.10x faster on the CPU, ResNet-18 1.04x
        fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
        if config.name == "sgd":
            self.torch = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, fused=fused)
        else:
            self.torch = torch.optim.Adam(groups, lr=config.lr, betas=config.betas, fused=fused)

    def penalty(self) -> torch.Tensor | float:
        """What the penalties add to the loss: λ₂·Σw² + λ₁·Σ|w| over the penalized parameters."""
        total = 0.0
        if self.config.l2 and self.penalized:
            total = total + self.config.l2 * sum(p.pow(2).sum() for p in self.penalized)
        if self.config.l1 and self.penalized:
            total = total + self.config.l1 * sum(p.abs().sum() for p in self.penalized)
        return total

    @torch.no_grad()
    def step(self) -> None:
        if self.config.clip_grad_norm:
            nn.utils.clip_grad_norm_(self.parameters, self.config.clip_grad_norm, foreach=True)
        if self.config.weight_decay and self.penalized:
            for group in self.torch.param_groups:
                if group["penalized"]:
                    torch._foreach_mul_(group["params"], 1.0 - group["lr"] * self.config.weight_decay)
        self.torch.step()
        if self.config.max_norm:
            for weight in self.unit_weights:  # dim 0: one row (a unit's incoming weights) per output
                weight.copy_(torch.renorm(weight, 2, 0, self.config.max_norm))

    def zero_grad(self) -> None:
        self.torch.zero_grad(set_to_none=True)

    @property
    def lr(self) -> float:
        """The base rate (``optim.lr`` as scheduled), whatever the groups' factors."""
        group = self.torch.param_groups[0]
        return group["lr"] / group["factor"] if group["factor"] else group["lr"]
