"""Device choice, mixed precision, compilation and seeding."""

from __future__ import annotations

import contextlib
import os
import random
import shutil

import numpy as np
import torch

from .errors import UserError


def pick_device(name: str) -> torch.device:
    """``auto`` takes CUDA when present, else the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively here (AVX512-BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def precision(device: torch.device, mode: str) -> str:
    """What ``train.amp`` trains at on ``device``: ``bfloat16`` on CUDA unless it is off, on the CPU
    only when it is ``bf16`` (about 1.6x faster steps on an AVX-512 BF16 CPU; not the default, so
    a recipe's CPU numbers do not change under it); else ``float32``."""
    if device.type == "cuda":
        return "bfloat16" if mode != "off" and torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if mode == "bf16" else "float32"


def autocast(device: torch.device, mode: str):
    """bfloat16 autocast (no loss scaling needed) where ``precision`` says so."""
    if precision(device, mode) == "float32":
        return contextlib.nullcontext()
    if device.type == "cpu" and not cpu_has_bf16():
        raise UserError("train.amp: bf16 needs a CPU with bfloat16 instructions (AVX512-BF16 or AMX); this one has none, use auto")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def pinned_amp(device_name: str) -> str:
    """``train.amp: auto`` made concrete on this machine (``bf16`` or ``off``), for a study or sweep
    to pin when it is created: workers on other machines then train at the same precision. A
    recipe that names ``cuda`` pins what auto means there, even from a machine without a GPU (a
    cluster's login node)."""
    if device_name == "cuda":
        return "bf16"
    return "bf16" if precision(pick_device(device_name), "auto") == "bfloat16" else "off"


SEEDS_PER_CUDA_STACK = 8  # a guess until benchmarks/cuda_check.py has measured k = 1-16 on a GPU


def seeds_per_stack(setting, device: torch.device, alone: bool) -> int:
    """How many seeds of one arm a worker trains as one stack (``study.parallel_seeds``): a number
    as given; ``auto`` 1 on the CPU, where a stack of the convolutional models is 1.1-1.7x slower
    per seed than separate runs (``benchmarks/parallel_seeds.py``), and for a run that must train
    ``alone`` (compiled, or two passes a step); ``SEEDS_PER_CUDA_STACK`` on CUDA."""
    if setting != "auto":
        return setting
    return SEEDS_PER_CUDA_STACK if device.type == "cuda" and not alone else 1


def compiled(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` under ``torch.compile`` (TorchInductor, Ansel et al. 2024): it shares the model's
    parameters and fuses its element-wise and normalization layers into generated kernels. Shapes
    stay static (a last, smaller batch compiles once more) so every full batch runs the kernels
    specialized to it. Compiled code is kept per Python function, for every model it has seen, and
    past ``recompile_limit`` entries torch falls back to eager without a word, so each compiled run
    starts afresh (a study worker trains run after run); the kernels stay cached on disk. On the
    CPU inductor builds C++, so it needs a compiler."""
    if device.type == "cpu" and not any(shutil.which(name) for name in filter(None, (os.environ.get("CXX"), "g++", "clang++"))):
        raise UserError("train.compile: torch.compile on the CPU builds C++ kernels and no compiler (g++ or clang++) is on PATH; install one or set it off")
    torch._dynamo.reset()
    return torch.compile(model, dynamic=False)


def seed_everything(seed: int) -> torch.Generator:
    """Seeds python, numpy and torch; returns a CPU generator for batch order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
