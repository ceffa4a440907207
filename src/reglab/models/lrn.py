"""Local response normalization (Krizhevsky et al. 2012) as one autograd node: each activation
divided by (k + α/n · Σ of the squares of its n neighbouring channels)^β, with the window sums
taken by shifted in-place adds and the gradient written out, instead of ``nn.LocalResponseNorm``'s
chain of padding, 3-D average pooling and power ops that autograd records and replays one by one.
Same definition and padding as ``torch.nn.functional.local_response_norm``."""

from __future__ import annotations

import torch
from torch import nn


def channel_window_sum(x: torch.Tensor, below: int, above: int) -> torch.Tensor:
    """Per channel c, the sum of ``x`` over channels c − below … c + above (zero beyond the edges)."""
    total = x.clone()
    for shift in range(1, below + 1):
        total[:, shift:] += x[:, :-shift]
    for shift in range(1, above + 1):
        total[:, :-shift] += x[:, shift:]
    return total


class _LocalResponseNorm(torch.autograd.Function):
    generate_vmap_rule = True  # a stack of seeds (``stack.py``) runs it under vmap

    @staticmethod
    def forward(x, size: int, alpha: float, beta: float, k: float):
        """The output, and the denominator and its power that the backward pass reuses."""
        denominator = channel_window_sum(x * x, size // 2, (size - 1) // 2).mul_(alpha / size).add_(k)
        scale = denominator.pow(-beta)
        return x * scale, denominator, scale

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, size, alpha, beta, _ = inputs
        _, denominator, scale = output
        ctx.mark_non_differentiable(denominator, scale)
        ctx.save_for_backward(x, denominator, scale)
        ctx.constants = (size // 2, (size - 1) // 2, size, alpha, beta)

    @staticmethod
    def backward(ctx, grad, _denominator, _scale):
        x, denominator, scale = ctx.saved_tensors
        below, above, size, alpha, beta = ctx.constants
        # d out_c / d x_j = δ_cj · scale_c − 2αβ/n · x_c · x_j · scale_c / denominator_c over the windows holding j
        through_window = grad * x * scale / denominator
        spread = channel_window_sum(through_window, above, below)  # the transposed window
        return grad * scale - spread.mul_(x).mul_(2 * alpha * beta / size), None, None, None, None


class LocalResponseNorm(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` (same arguments, same outputs) computed by ``_LocalResponseNorm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LocalResponseNorm.apply(x, self.size, self.alpha, self.beta, self.k)[0]
