"""Batch norm folded into the convolution before it, for inference. In eval mode a batch norm is a
fixed per-channel affine map, so convolution then batch norm is one convolution with scaled
weights and a shifted bias (Jacob et al. 2018, "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference", §3.2): the same outputs up to rounding, without a
pass over the activations per batch norm (evaluation of ResNet-18 and InstruNet 1.16-1.23x faster
in float32 on this CPU, ``benchmarks/eval_folding.py``)."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats


def folded(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every batch norm that directly follows a convolution
    folded into it: adjacent layers of an ``nn.Sequential``, and the pairs a module names in its
    ``conv_norm_pairs`` (attribute names, for blocks whose ``forward`` applies them in turn). The
    model itself is left as it was, and returned as it is when it has no batch norm."""
    if not any(isinstance(module, nn.BatchNorm2d) for module in model.modules()):
        return model
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            for index in range(len(module) - 1):
                if foldable(module[index], module[index + 1]):
                    module[index] = fuse_conv_bn_eval(module[index], module[index + 1])
                    module[index + 1] = nn.Identity()
        for conv_name, norm_name in getattr(module, "conv_norm_pairs", ()):
            conv, norm = getattr(module, conv_name), getattr(module, norm_name)
            if foldable(conv, norm):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(module, norm_name, nn.Identity())
    return model
