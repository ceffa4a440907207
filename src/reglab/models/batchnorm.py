"""Batch normalization (Ioffe & Szegedy 2015) for channels-last tensors with few channels, on the CPU.

PyTorch's CPU kernel walks a channels-last map one pixel's ``C`` channels at a time; with fewer
channels than a vector register holds (8 in a narrow InstruNet's first block) that row is too short
to vectorize: forward + backward of a bfloat16 ``[128, 8, 64, 94]`` map took 20.4 ms against 6.7 ms
on the same map in NCHW, and 8.0 ms this way (``benchmarks/batch_norm.py``, one thread). The map's
memory, ``[N, H, W, C]``, is also a ``[R, g·C]`` matrix of rows of ``g`` pixels; the native kernel
runs on that matrix as if each of its ``g·C`` columns were a channel (long contiguous rows:
vectorized) and the ``g`` columns of a channel are pooled — statistics and sums in float32 for
bfloat16 inputs, as the native kernel keeps them. The module is ``nn.BatchNorm2d`` (parameters,
buffers, evaluation and folding unchanged); only a training step on such a map takes this path, and
only at 8 channels or fewer and 2^18 values or more (below that torch's one kernel is quicker than
this path's dozen small ops; at 16 channels the gain was not steady).
"""

from __future__ import annotations

import torch
from torch import nn

LANES = 64  # values per row of the matrix: a few vector registers of bfloat16 or float32
FEW = 8  # at most this many channels: where the native channels-last kernel is clearly the slow one (benchmarks/batch_norm.py)
SMALLEST = 1 << 18  # values in a map below which the row path's dozen small ops cost more than they save


def pixels_per_row(pixels: int, channels: int) -> int:
    """The largest power of two ``g`` with ``g·channels <= LANES`` that divides the pixel count."""
    g = 1
    while g * 2 * channels <= LANES and pixels % (g * 2) == 0:
        g *= 2
    return g


def column_statistics(rows: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each channel's mean and biased variance over a ``[R, g·C]`` matrix: the native kernel's
    statistics per column, pooled over the ``g`` columns of each channel."""
    wide = torch.promote_types(rows.dtype, torch.float32)
    unused = torch.zeros(rows.shape[1], dtype=wide), torch.ones(rows.shape[1], dtype=wide)  # float32 buffers: float32 statistics
    mean, var = (s.view(-1, channels) for s in torch.batch_norm_update_stats(rows, *unused, 0.0))
    pooled = mean.mean(0)
    return pooled, var.mean(0) + (mean - pooled).square().mean(0)


def affine_into(out: torch.Tensor, rows: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``out = rows · scale + shift``, per channel, by the native kernel's evaluation path (float32 arithmetic)."""
    g = rows.shape[1] // len(scale)
    zero, one = torch.zeros(rows.shape[1], dtype=scale.dtype), torch.ones(rows.shape[1], dtype=scale.dtype)
    unused = torch.empty(0, dtype=scale.dtype)
    torch.ops.aten.native_batch_norm.out(rows, scale.repeat(g), shift.repeat(g), zero, one, False, 0.0, 0.0, out=out, save_mean=unused, save_invstd=unused.clone())
    return out


def as_rows(x: torch.Tensor, g: int) -> torch.Tensor:
    """A channels-last map's memory, ``[N, H, W, C]``, as rows of ``g`` pixels (a view)."""
    return x.permute(0, 2, 3, 1).reshape(-1, g * x.shape[1])


class _ChannelsLastBatchNorm(torch.autograd.Function):
    """Batch norm of a channels-last map through its ``[R, g·C]`` rows; the output is a map of its
    own (not a view, so that an in-place ReLU after it stays cheap)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float):
        n, c, h, w = x.shape
        g = pixels_per_row(n * h * w, c)
        rows = as_rows(x, g)
        mean, var = column_statistics(rows, c)
        invstd = (var + eps).rsqrt()
        scale = invstd * weight.to(invstd.dtype)
        out = torch.empty_like(x, memory_format=torch.channels_last)
        affine_into(as_rows(out, g), rows, scale, bias.to(invstd.dtype) - mean * scale)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.g = g
        ctx.mark_non_differentiable(mean, var)
        ctx.set_materialize_grads(False)
        return out, mean, var

    @staticmethod
    def backward(ctx, grad, _mean, _var):
        x, weight, mean, invstd = ctx.saved_tensors
        g, c, count = ctx.g, x.shape[1], x.numel() // x.shape[1]
        rows, grad_rows = as_rows(x, g), as_rows(grad.contiguous(memory_format=torch.channels_last), g)
        # Σ dy · x̂ and Σ dy per column: the native backward pass at fixed statistics; then pooled
        _, dot, total = torch.ops.aten.native_batch_norm_backward(
            grad_rows, rows, torch.ones_like(mean).repeat(g), mean.repeat(g), invstd.pow(-2).repeat(g), None, None, False, 0.0, [False, True, True])
        grad_weight, grad_bias = dot.view(g, c).sum(0), total.view(g, c).sum(0)
        # dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), written as a·dy + (b·x + d) per channel
        a = weight.to(invstd.dtype) * invstd
        b = -a * invstd * grad_weight / count
        d = -a * grad_bias / count - b * mean
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
        affine_into(as_rows(grad_x, g), rows, b, d).addcmul_(grad_rows, a.repeat(g).to(x.dtype))
        return grad_x, grad_weight.to(weight.dtype), grad_bias.to(weight.dtype), None


def takes_fast_path(x: torch.Tensor) -> bool:
    """A 4-D channels-last CPU map with few channels, outside a compiled graph and outside torch.func
    transforms (a stack of seeds runs its members under vmap: torch's kernel there)."""
    if x.device.type != "cpu" or x.dim() != 4 or not 1 < x.shape[1] <= FEW or x.numel() < SMALLEST:
        return False
    if torch.compiler.is_compiling() or torch._C._functorch.is_functorch_wrapped_tensor(x):
        return False
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training step on a channels-last CPU map with few channels runs on
    rows of ``g`` pixels (see the module's docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.affine and self.track_running_stats and takes_fast_path(x)):
            return super().forward(x)
        out, mean, var = _ChannelsLastBatchNorm.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            count = x.numel() // x.shape[1]
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
            self.running_var.lerp_((var * count / max(count - 1, 1)).to(self.running_var.dtype), factor)
        return out
