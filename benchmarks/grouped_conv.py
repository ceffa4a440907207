"""One 3x3 convolution layer of k models: k separate convolutions against one convolution grouped
by model (what a stack of seeds, ``stack.py``, runs under vmap), forward + backward, in NCHW and in
channels-last layout. On a CPU where the grouped kernel is slower, stacking seeds cannot pay.

    python benchmarks/grouped_conv.py [--k 8] [--batch 32]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

LAYERS = [(3, 16, 64), (16, 16, 64), (32, 32, 32), (64, 64, 16), (128, 128, 8)]  # in, out channels, side


def milliseconds(fn, repeats: int = 10) -> float:
    for _ in range(3):
        fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    k, batch = args.k, args.batch
    print(f"{torch.get_num_threads()} threads, k = {k}, batch {batch}: forward + backward of one 3x3 layer, ms")
    for cin, cout, side in LAYERS:
        last = torch.channels_last
        xs = [torch.randn(batch, cin, side, side).contiguous(memory_format=last).requires_grad_() for _ in range(k)]
        ws = [torch.randn(cout, cin, 3, 3).contiguous(memory_format=last).requires_grad_() for _ in range(k)]
        x, w = torch.randn(batch, k * cin, side, side, requires_grad=True), torch.randn(k * cout, cin, 3, 3, requires_grad=True)
        x_last = x.detach().contiguous(memory_format=last).requires_grad_()
        w_last = w.detach().contiguous(memory_format=last).requires_grad_()

        def separate():
            for xi, wi in zip(xs, ws):
                F.conv2d(xi, wi, padding=1).sum().backward()

        def grouped(inputs, weights):
            return lambda: F.conv2d(inputs, weights, padding=1, groups=k).sum().backward()

        print(f"{cin:>3} -> {cout:<3} at {side}x{side}: {k} separate (channels-last) {milliseconds(separate):6.1f}, "
              f"grouped NCHW {milliseconds(grouped(x, w)):6.1f}, grouped channels-last {milliseconds(grouped(x_last, w_last)):6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
