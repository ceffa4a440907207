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
    """Whether oneDNN runs bfloat16 here at all (on AVX-512 without BF16 it is emulated)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX), where bf16 steps are
    1.2-1.9x as fast as float32 ones (``benchmarks/throughput.py --bf16``)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


# Model families whose quality under bfloat16 on the CPU was shown equivalent to float32's by a
# study of reglab's own: AlexNet-like by examples/precision.yaml (validation loss within +-0.1 nats,
# 8 seeds, TOST p 0.004), ResNet-18 by examples/precision_resnet18.yaml (the same margin, 6 seeds,
# p 0.031), InstruNet by examples/precision_instrunet.yaml (macro F1 on validation mixtures within
# +-0.02, 6 seeds, p 0.031). The others keep float32 under auto on the CPU until one shows it.
BF16_SHOWN_EQUIVALENT = {"alexnet_like", "instrunet", "resnet18"}


def concrete_amp(mode: str, device: torch.device, model: str) -> str:
    """``train.amp`` made concrete (``bf16`` or ``off``) for a ``model`` family on ``device``:
    ``auto`` is bf16 on CUDA, and on a CPU with bfloat16 instructions for the families in
    ``BF16_SHOWN_EQUIVALENT``."""
    if mode != "auto":
        return mode
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "off"
    return "bf16" if model in BF16_SHOWN_EQUIVALENT and cpu_has_native_bf16() else "off"


def precision(device: torch.device, mode: str, model: str) -> str:
    """What a run trains at: ``bfloat16`` or ``float32`` (``bf16`` on a GPU without it: float32)."""
    bf16 = concrete_amp(mode, device, model) == "bf16"
    return "bfloat16" if bf16 and (device.type == "cpu" or torch.cuda.is_bf16_supported()) else "float32"


def autocast(device: torch.device, mode: str, model: str):
    """bfloat16 autocast (no loss scaling needed) where ``precision`` says so for ``model``'s family."""
    if precision(device, mode, model) == "float32":
        return contextlib.nullcontext()
    if device.type == "cpu" and not cpu_has_bf16():
        raise UserError("train.amp: bf16 needs a CPU with bfloat16 instructions (AVX512-BF16 or AMX); this one has none, use auto")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def pinned_amp(device_name: str, model: str) -> str:
    """``train.amp: auto`` made concrete on this machine (``bf16`` or ``off``), for a study or sweep
    to pin when it is created: workers on other machines then train at the same precision. A
    recipe that names ``cuda`` pins what auto means there, even from a machine without a GPU (a
    cluster's login node)."""
    if device_name == "cuda":
        return "bf16"
    return concrete_amp("auto", pick_device(device_name), model)


# Model families for which torch.compile was measured to pay on a CPU with AMX (benchmarks/throughput.py
# --compile, float32 at width 0.25: InstruNet 1.6-1.85x, ResNet-18 1.10-1.16x as fast; AlexNet-like
# no faster), with the training samples a run must see before the time saved is twice a cold
# compile's (InstruNet ~45 s, ResNet-18 ~60 s): 2 x 45 s / (1/579 - 1/949 s) and 2 x 60 s / (1/250 - 1/271 s).
# On a CPU with AVX512-BF16 but no AMX (AMD EPYC) compiling made InstruNet slower: 0.85-0.90x in
# float32 and 0.96-0.98x in bf16 at width 0.25, 0.72x in bf16 at width 0.5 (the
# instrument recipe's then; it trains at 0.75 now, not timed compiled).
COMPILE_PAYS_AFTER = {"instrunet": 135_000, "resnet18": 390_000}


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles: the CPU kind on which compiling was measured to pay."""
    return bool(torch.cpu._is_amx_tile_supported())


def has_compiler() -> bool:
    return any(shutil.which(name) for name in filter(None, (os.environ.get("CXX"), "g++", "clang++")))


def concrete_compile(setting, device: torch.device, model: str, samples: int) -> bool:
    """``train.compile`` made concrete: ``auto`` compiles on a CPU with AMX (with a C++ compiler) a
    family of ``COMPILE_PAYS_AFTER`` trained on at least its samples (epochs x samples an epoch); not
    on other CPUs, where it was measured slower, nor on CUDA, where it has not been measured yet."""
    if setting != "auto":
        return setting
    long_enough = samples >= COMPILE_PAYS_AFTER.get(model, float("inf"))
    return device.type == "cpu" and long_enough and cpu_has_amx() and has_compiler()


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
    if device.type == "cpu" and not has_compiler():
        raise UserError("train.compile: torch.compile on the CPU builds C++ kernels and no compiler (g++ or clang++) is on PATH; install one or set it off")
    torch._dynamo.reset()
    return torch.compile(model, dynamic=False)


def seed_everything(seed: int) -> torch.Generator:
    """Seeds python, numpy and torch; returns a CPU generator for batch order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
