"""A training step's batch norm (forward + backward) on channels-last maps, three ways side by side
in one process, alternated round by round: PyTorch's native kernel on the channels-last map (what
``nn.BatchNorm2d`` runs), reglab's row path (``models/batchnorm.py``: the map as rows of ``g``
pixels) and, for reference, the native kernel on the same map in NCHW. Median milliseconds; the
shapes are InstruNet's first two blocks at a batch of 128 (``--channels`` picks the widths).

    python benchmarks/batch_norm.py [--channels 8 16 24 32] [--threads 1] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from reglab.models import batchnorm


def step(norm: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
    x.grad = None
    norm(x).backward(grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 24, 32])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), batch {args.batch}, median of {args.rounds} alternated rounds, ms forward + backward")
    print("| channels | map | dtype | native, channels-last | rows (reglab) | native, NCHW | native CL / rows |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for channels in args.channels:
        for h, w in ((64, 94), (32, 47)):
            for dtype in (torch.bfloat16, torch.float32):
                x = torch.randn(args.batch, channels, h, w).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
                grad = torch.randn_like(x)
                nchw, grad_nchw = x.detach().contiguous().requires_grad_(), grad.contiguous()
                native, rows = nn.BatchNorm2d(channels), batchnorm.BatchNorm2d(channels)
                few = batchnorm.FEW
                batchnorm.FEW = 1 << 20  # the row path at any channel count, to see where it pays
                ways = {"native": lambda: step(native, x, grad), "rows": lambda: step(rows, x, grad), "nchw": lambda: step(native, nchw, grad_nchw)}
                times = {name: [] for name in ways}
                for _ in range(2):
                    for way in ways.values():
                        way()
                for _ in range(args.rounds):
                    for name, way in ways.items():
                        start = time.perf_counter()
                        way()
                        times[name].append(1e3 * (time.perf_counter() - start))
                batchnorm.FEW = few
                ms = {name: statistics.median(t) for name, t in times.items()}
                print(f"| {channels} | {h}x{w} | {str(dtype).removeprefix('torch.')} | {ms['native']:.2f} | {ms['rows']:.2f} | {ms['nchw']:.2f} | {ms['native'] / ms['rows']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
