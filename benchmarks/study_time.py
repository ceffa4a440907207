"""A study's wall time as a user feels it: the whole ``reglab study RECIPE --workers 2`` command,
timed from start to table, once as the recipe is and once with each set of overrides given (a
candidate default, e.g. ``train.amp=bf16``), one after the other and alone on the machine; with
each study's peak resident memory (the largest of its processes) and each arm's mean of the
compared metric, its difference from the baseline and its verdict, so a faster variant is seen to
reach the same conclusions.

    python benchmarks/study_time.py examples/ablation.yaml --variant train.amp=bf16 [--before REV] [--set KEY=VALUE ...] [--workers 2] [--out FILE.md]

``--set``: overrides for every study timed, the one run by ``--before``'s code included (e.g.
``study.seeds=[0]``, a shorter study of the same runs).

``--before REV``: first the study as it was at git revision ``REV``: its recipe file (and those it
builds on) from that revision's ``examples/`` when it is one of them, run by reglab's source as it
was then (both exported to a temporary folder, the source put first on ``PYTHONPATH``, the workers
included), so that the table's ratios are against that code's wall time on the same machine, in
the same session. So a study whose file now pins what its base recipe has since changed (as
``instrunet_study.yaml`` pins width 0.25 and the old schedule) runs as written then, by the
code of then, against itself as written now.

Writes a Markdown table (stdout, and ``--out``); each study runs in a fresh temporary directory, or
with ``--keep DIR`` in ``DIR/1``, ``DIR/2``, ... (in the table's order), kept so that its runs can be
scored afterwards (``reglab evaluate``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEASURE = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")  # fmt: skip


ROOT = Path(__file__).resolve().parents[1]


def exported_source(revision: str, folder: Path) -> Path:
    """reglab's ``src`` and ``examples`` as they were at ``revision``, written under ``folder``;
    returns the source folder."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src", "examples"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def recipe_at(recipe: str, exported: Path) -> str:
    """``recipe`` as exported under ``exported`` when it is one of the project's files there (data
    paths in recipes are relative to where the command runs, so they still find the data)."""
    path = Path(recipe).resolve()
    if path.is_relative_to(ROOT) and (exported / path.relative_to(ROOT)).is_file():
        return str(exported / path.relative_to(ROOT))
    return recipe


def timed_study(recipe: str, overrides: list[str], workers: int, source: Path | None = None, keep: Path | None = None) -> dict:
    """Run one study as a user would (with reglab from ``source`` if given; in ``keep``, which must
    not exist yet, if given); its wall time, peak memory (the largest process, MiB), runs and each
    arm's verdict."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))) if source else None
    with tempfile.TemporaryDirectory() if keep is None else contextlib.nullcontext(keep) as folder:
        Path(folder).mkdir(parents=True, exist_ok=True)  # a kept folder is new: main refuses one that exists
        table = Path(folder) / "table.json"
        command = [sys.executable, "-m", "reglab.cli", "study", recipe, *overrides, "--workers", str(workers), "--out",
                   str(Path(folder) / "study"), "--json", str(table), "--quiet"]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env=environment)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
        peak_kib = int(done.stderr.strip().splitlines()[-1])
        summary = json.loads(table.read_text())
    return {"seconds": seconds, "peak_mib": peak_kib / 1024, "runs": summary["finished"],
            "verdicts": {arm["arm"]: f"{arm['value']['mean']:.3f}{difference(arm)}, {arm['verdict']}" for arm in summary["arms"]}}  # fmt: skip


def difference(arm: dict) -> str:
    """`` (Δ +0.012)``: an arm's mean difference from the baseline; nothing for the baseline."""
    return f" (Δ {arm['difference']['mean']:+.3f})" if arm.get("difference") else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+", help="study recipes")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]", help="overrides to time against the recipe as it is")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--before", metavar="REV", help="first time the study as it was at this git revision: its recipe file and reglab's source then")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override for every study timed, the --before one included")
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep each study (its runs, table.json) in DIR/1, DIR/2, ... in the table's order")
    args = parser.parse_args()
    if args.keep and args.keep.exists():
        raise SystemExit(f"--keep: {args.keep} exists; name a new folder (nothing is overwritten)")
    numbers = itertools.count(1)  # the kept studies' folders, in the table's order
    lines = ["| study | variant | wall | runs | peak memory (largest process) | verdicts |", "| --- | --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as exported:
        before = [(f"as written, reglab at {args.before}", "", exported_source(args.before, Path(exported)))] if args.before else []
        for recipe in args.recipes:
            baseline = None
            for label, variant, source in before + [(variant or "as written", variant, None) for variant in [""] + args.variant]:
                file = recipe_at(recipe, Path(exported)) if source else recipe
                result = timed_study(file, args.set + [part for part in variant.split(",") if part], args.workers, source,
                                     args.keep / str(next(numbers)) if args.keep else None)
                baseline = baseline or result["seconds"]
                verdicts = "; ".join(f"{arm}: {verdict}" for arm, verdict in result["verdicts"].items())
                lines.append(f"| {' '.join([Path(recipe).name, *args.set])} | {label} | {result['seconds'] / 60:.1f} min "
                             f"({result['seconds'] / baseline:.2f}x) | {result['runs']} | {result['peak_mib']:.0f} MiB | {verdicts} |")  # fmt: skip
                print(lines[-1], flush=True)
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
