"""Training and evaluation steps with glibc's default allocation and with freed memory kept
(``reglab.allocator``), alternated in one process: samples/s and the share of CPU time spent in
the kernel, at batch 32 and 128.

    python benchmarks/allocator.py [--model resnet18] [--width 0.25] [--size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from reglab.allocator import keep_freed_memory
from reglab.models import create_model
from reglab.recipe import section


def measure(model, optimizer, batch: int, size: int, steps: int, train: bool) -> tuple[float, float]:
    """Samples/s and the kernel's share of this process's CPU time over ``steps`` steps."""
    x, y = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8), torch.randint(0, 19, (batch,))
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        if train:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        else:
            with torch.inference_mode():
                model(x)
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    system, user = after.ru_stime - before.ru_stime, after.ru_utime - before.ru_utime
    return batch * steps / seconds, system / (system + user)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1024, help="samples per measurement")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = create_model(section("model", name=args.model, width=args.width), (3, args.size, args.size), 19)
    model.fit(torch.randint(0, 256, (64, 3, args.size, args.size), dtype=torch.uint8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    print(f"{args.model} width {args.width}, {args.size}x{args.size}, {torch.get_num_threads()} threads; median of {args.repeats}")
    for train in (True, False):
        for batch in (32, 128) if train else (128, 512):
            results = {}
            for kept in (False, True, False, True) * args.repeats:
                keep_freed_memory(kept)
                measure(model, optimizer, batch, args.size, 1, train)  # settle the heap under these settings
                results.setdefault(kept, []).append(measure(model, optimizer, batch, args.size, max(1, args.samples // batch), train))
            (base, base_sys), (kept_rate, kept_sys) = ((statistics.median(r[0] for r in results[k]), statistics.median(r[1] for r in results[k])) for k in (False, True))
            print(f"{'train' if train else 'eval '} batch {batch:>3}: default {base:6.1f} samples/s ({base_sys:.0%} in the kernel), "
                  f"kept {kept_rate:6.1f} samples/s ({kept_sys:.0%}) -> {kept_rate / base:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
