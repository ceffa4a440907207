"""The GPU checks, ready to run when a CUDA device is at hand (CI does not run this; on a machine
without one it says so in one line and exits 0):

    python benchmarks/cuda_check.py [--out benchmarks/cuda_check] [--minutes 8]

1. the tests marked ``cuda`` (``tests/test_cuda.py``: bfloat16 autocast, fused optimizers,
   channels-last, compiled training, the stack's member-by-member equivalence, prediction);
2. the throughput table on CUDA (``benchmarks/throughput.py --bf16 --compile``: reglab
   against the idiomatic float32 loop, batch 32 and 128, augmentation off and on, with each loop's
   peak GPU memory);
3. stacked seeds at k = 1, 2, 4, 8, 16 for AlexNet-like and ResNet-18 (whole runs of 2 epochs,
   ``benchmarks/parallel_seeds.py --whole 2``): per-seed time relative to one run (aim at k = 8:
   ≤ 0.25), with each stack's peak GPU memory.

Each step's output is kept in ``OUT/<step>.txt``; ``OUT/cuda_check.json`` holds every step's exit
code, seconds and output, and ``OUT/cuda_check.md`` the tables, for ``benchmarks/README.md``. A
step that would pass the time budget is stopped and marked so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
STEPS = [
    ("tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-m", "cuda", "tests/test_cuda.py"], 0.25),
    ("throughput", [sys.executable, "benchmarks/throughput.py", "--bf16", "--compile", "--repeats", "2"], 0.40),
    ("parallel_seeds", [sys.executable, "benchmarks/parallel_seeds.py", "--whole", "2", "--ks", "1", "2", "4", "8", "16",
                        "--models", "alexnet_like", "resnet18", "--repeats", "1"], 0.35),
]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "cuda_check")
    parser.add_argument("--minutes", type=float, default=8.0, help="the whole check's budget, shared by the steps")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("cuda_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    report, markdown = {"device": device, "torch": torch.__version__, "steps": {}}, [f"# CUDA check on {device} (torch {torch.__version__})", ""]
    for name, command, share in STEPS:
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=args.minutes * 60 * share)
            code, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            code, output = "timed out", (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        seconds = round(time.perf_counter() - started, 1)
        (args.out / f"{name}.txt").write_text(output)
        report["steps"][name] = {"exit": code, "seconds": seconds, "output": output}
        tables = [line for line in output.splitlines() if line.startswith("|")]
        markdown += [f"## {name}: exit {code}, {seconds} s", "", *(tables or ["```", *output.splitlines()[-15:], "```"]), ""]
        print(f"{name}: exit {code} in {seconds} s", flush=True)
    (args.out / "cuda_check.json").write_text(json.dumps(report, indent=2))
    (args.out / "cuda_check.md").write_text("\n".join(markdown))
    print(f"wrote {args.out / 'cuda_check.json'} and {args.out / 'cuda_check.md'}")
    return 0 if all(step["exit"] == 0 for step in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
