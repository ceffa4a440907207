"""A study's wall time as a user feels it: the whole ``reglab study RECIPE --workers 2`` command,
timed from start to table, once as the recipe is and once with each set of overrides given (a
candidate default, e.g. ``train.amp=bf16``), one after the other and alone on the machine; with
each study's peak resident memory (the largest of its processes) and its verdicts, so a faster
variant is seen to reach the same conclusions.

    python benchmarks/study_time.py examples/ablation.yaml --variant train.amp=bf16 [--workers 2] [--out FILE.md]

Writes a Markdown table (stdout, and ``--out``); each study runs in a fresh temporary directory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEASURE = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")  # fmt: skip


def timed_study(recipe: str, overrides: list[str], workers: int) -> dict:
    """Run one study as a user would; its wall time, peak memory (the largest process, MiB),
    runs and each arm's verdict."""
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "table.json"
        command = [sys.executable, "-m", "reglab.cli", "study", recipe, *overrides, "--workers", str(workers), "--out",
                   str(Path(folder) / "study"), "--json", str(table), "--quiet"]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
        peak_kib = int(done.stderr.strip().splitlines()[-1])
        summary = json.loads(table.read_text())
    return {"seconds": seconds, "peak_mib": peak_kib / 1024, "runs": summary["finished"],
            "verdicts": {arm["arm"]: arm["verdict"] for arm in summary["arms"]}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+", help="study recipes")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]", help="overrides to time against the recipe as it is")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    lines = ["| study | variant | wall | runs | peak memory (largest process) | verdicts |", "| --- | --- | --- | --- | --- | --- |"]
    for recipe in args.recipes:
        baseline = None
        for variant in [""] + args.variant:
            result = timed_study(recipe, [part for part in variant.split(",") if part], args.workers)
            baseline = baseline or result["seconds"]
            verdicts = "; ".join(f"{arm}: {verdict}" for arm, verdict in result["verdicts"].items())
            lines.append(f"| {Path(recipe).name} | {variant or 'as written'} | {result['seconds'] / 60:.1f} min "
                         f"({result['seconds'] / baseline:.2f}x) | {result['runs']} | {result['peak_mib']:.0f} MiB | {verdicts} |")  # fmt: skip
            print(lines[-1], flush=True)
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
