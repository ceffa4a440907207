"""Local response normalization (Krizhevsky et al. 2012) as one autograd node: each activation
divided by (k + α/n · Σ of the squares of its n neighbouring channels)^β, with the window sums
taken by one matmul against a band of ones over the channel axis and the gradient written out,
instead of ``nn.LocalResponseNorm``'s chain of padding, 3-D average pooling and power ops that
autograd records and replays one by one (or shifted adds on channel slices, which on channels-last
tensors run short strided loops, and for bfloat16 a scalar path). Same definition and padding as
``torch.nn.functional.local_response_norm``. Under bfloat16 autocast the arithmetic runs in
float32; the output and the gradient return in the input's dtype.
"""

from __future__ import annotations

import functools

import torch
from torch import nn


@functools.lru_cache(maxsize=64)
def channel_band(channels: int, below: int, above: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[from, to]`` ones where channel ``from`` lies in ``to − below … to + above``: built once
    per layer shape, not twice a step (1.01-1.05x faster LRN forward + backward here)."""
    index = torch.arange(channels, device=device)
    offset = index[None, :] - index[:, None]  # to − from
    return ((offset >= -above) & (offset <= below)).to(dtype)


def channel_window_sum(x: torch.Tensor, below: int, above: int) -> torch.Tensor:
    """Per channel c, the sum of ``x`` over channels c − below … c + above (zero beyond the edges),
    in ``x``'s precision whatever autocast is on."""
    band = channel_band.__wrapped__ if torch.compiler.is_compiling() else channel_band  # a compiled graph holds its own
    with torch.autocast(x.device.type, enabled=False):
        return torch.einsum("nfhw,ft->nthw", x, band(x.shape[1], below, above, x.dtype, x.device))


def widened(x: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors in float32; float32 and float64 as they are."""
    return x.float() if x.element_size() < 4 else x


class _LocalResponseNorm(torch.autograd.Function):
    generate_vmap_rule = True  # a stack of seeds (``stack.py``) runs it under vmap

    @staticmethod
    def forward(x, size: int, alpha: float, beta: float, k: float):
        """The output, and the denominator and its power that the backward pass reuses."""
        wide = widened(x)
        denominator = channel_window_sum(wide * wide, size // 2, (size - 1) // 2).mul_(alpha / size).add_(k)
        scale = denominator.pow(-beta)
        return (wide * scale).to(x.dtype), denominator, scale

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, size, alpha, beta, _ = inputs
        _, denominator, scale = output
        ctx.mark_non_differentiable(denominator, scale)
        ctx.save_for_backward(x, denominator, scale)
        ctx.constants = (size // 2, (size - 1) // 2, size, alpha, beta)
        ctx.dtype = x.dtype

    @staticmethod
    def backward(ctx, grad, _denominator, _scale):
        x, denominator, scale = ctx.saved_tensors
        below, above, size, alpha, beta = ctx.constants
        x, grad = widened(x), widened(grad)
        # d out_c / d x_j = δ_cj · scale_c − 2αβ/n · x_c · x_j · scale_c / denominator_c over the windows holding j
        through_window = grad * x * scale / denominator
        spread = channel_window_sum(through_window, above, below)  # the transposed window
        return (grad * scale - spread.mul_(x).mul_(2 * alpha * beta / size)).to(ctx.dtype), None, None, None, None


class LocalResponseNorm(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` (same arguments, same outputs) computed by ``_LocalResponseNorm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LocalResponseNorm.apply(x, self.size, self.alpha, self.beta, self.k)[0]
