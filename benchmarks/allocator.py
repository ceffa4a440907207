"""Training and evaluation steps with glibc's default allocation and with freed memory kept
(``reglab.allocator``, what every ``reglab`` command does), each in a fresh process (a ``mallopt``
call cannot be undone), alternated: median samples/s and the share of CPU time spent in the kernel.

    python benchmarks/allocator.py [--model resnet18] [--width 0.25] [--size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from reglab.allocator import keep_freed_memory
from reglab.models import create_model
from reglab.recipe import section

CASES = [("train", 32), ("train", 128), ("eval", 128), ("eval", 512)]


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


def child(args) -> None:
    """One process, one allocation setting: every case after a warm-up step, as JSON."""
    if args.kept:
        keep_freed_memory()
    torch.manual_seed(0)
    model = create_model(section("model", name=args.model, width=args.width), (3, args.size, args.size), 19)
    model.fit(torch.randint(0, 256, (64, 3, args.size, args.size), dtype=torch.uint8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    results = {}
    for mode, batch in CASES:
        measure(model, optimizer, batch, args.size, 2, mode == "train")
        results[f"{mode} {batch}"] = measure(model, optimizer, batch, args.size, max(2, args.samples // batch), mode == "train")
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1024, help="samples per measurement")
    parser.add_argument("--kept", type=int, help=argparse.SUPPRESS)  # set in the child processes
    args = parser.parse_args()
    if args.kept is not None:
        child(args)
        return
    runs = {0: [], 1: []}
    for _ in range(args.repeats):
        for kept in (0, 1):
            command = [sys.executable, __file__, "--kept", str(kept)] + [f"--{k}={getattr(args, k)}" for k in ("model", "width", "size", "samples")]
            runs[kept].append(json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout))
    print(f"{args.model} width {args.width}, {args.size}x{args.size}, {torch.get_num_threads()} threads; median of {args.repeats} processes each")
    for case in runs[0][0]:
        (rate0, kernel0), (rate1, kernel1) = [[statistics.median(r[case][i] for r in runs[k]) for i in (0, 1)] for k in (0, 1)]
        print(f"{case:>10}: glibc default {rate0:6.1f} samples/s ({kernel0:.0%} in the kernel), kept {rate1:6.1f} samples/s "
              f"({kernel1:.0%}) -> {rate1 / rate0:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
