"""Commands on single runs and data: train, demo, report, evaluate, predict, data inspect."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from ..errors import UserError
from .output import reporter_for, with_device, write_json_output


def overrides_of(args) -> dict:
    """The command line's ``KEY=VALUE`` overrides (and ``--device``) as the Python API takes them."""
    from ..recipe import parse_override

    return {".".join(keys): value for keys, value in map(parse_override, with_device(args))}


def cmd_train(args) -> None:
    from ..api import train

    result = train(args.recipe, args.out, resume=args.resume, reporter=reporter_for(args.quiet), **overrides_of(args))
    if not args.quiet:
        print(f"report: {result.path / 'report.html'}")


def write_report_of(directory, quiet: bool) -> None:
    """The report of a run or study directory, and its path unless ``quiet``."""
    from ..report import build_report

    html, _ = build_report(directory)
    if not quiet:
        print(f"report: {html}")


def cmd_report(args) -> None:
    from ..report import build_report

    started = time.perf_counter()
    html, markdown = build_report(fetched(args.path))
    print(f"report written to {html} and {markdown} ({time.perf_counter() - started:.1f} s)")


def cmd_demo(args) -> None:
    from ..api import load, train
    from ..rundir import default_run_dir

    with resources.as_file(resources.files("reglab") / "recipes" / "demo.yaml") as path:
        recipe = load(path, **overrides_of(args))
    result = train(recipe, args.out or default_run_dir("demo"), resume=args.resume, reporter=reporter_for(args.quiet))
    if not args.quiet:
        print(f"report: {result.path / 'report.html'}")


def print_metrics(title: str, result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from rich.markup import escape

    table = Table(title="per-class scores")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in result.get("per_class", {}).items():
        table.add_row(escape(name), *(f"{row[k]:.3f}" for k in ("precision", "recall", "f1")), str(row["support"]))
    console = Console()
    console.print(title, soft_wrap=True, markup=False)
    console.print(table)
    shown = ("accuracy", "macro_f1", "micro_f1", "macro_roc_auc", "micro_roc_auc", "ece")
    console.print("  ".join(f"{k} {result[k]:.4f}" for k in shown if k in result), soft_wrap=True, markup=False)


def fetched(run) -> Path:
    """A run of a study or sweep that another machine trained, fetched from the plan's artifact
    store into its place (and kept there) when it is not on this disk."""
    from ..rundir import directory_kind

    path, plan = Path(run), Path(run).parent.parent
    if path.exists() or path.parent.name != "runs" or directory_kind(plan) not in ("study", "sweep"):
        return path
    from ..experiments.artifacts import fetch_runs
    from ..experiments.sweep import open_directory

    fetch_runs(open_directory(plan), only=path.name)
    return path


def cmd_evaluate(args) -> None:
    from ..api import evaluate

    args.run = fetched(args.run)
    if args.top_k is not None and args.top_k < 1:
        raise UserError(f"--top-k must be 1 or more, got {args.top_k}")
    result = evaluate(args.run, args.data, source=args.source, labels=args.labels, device=args.device, aggregate=args.aggregate, top_k=args.top_k)
    if args.json:
        write_json_output(args.json, result)
    print_metrics(f"{args.run} on {args.data} ({result['samples']} samples)", result)


def cmd_predict(args) -> None:
    args.run = fetched(args.run)
    if [bool(args.images), bool(args.audio), bool(args.data)].count(True) != 1:
        raise UserError("predict needs --images DIR, --audio PATH… or --data SPLIT (one of them)")
    if args.top_k is not None and args.top_k < 1:
        raise UserError(f"--top-k must be 1 or more, got {args.top_k}")
    if args.audio:
        predict_audio(args)
        return
    from ..inference.evaluate import predict_folder

    count, scores = predict_folder(args.run, args.images or args.data, args.out, args.labels, args.device, args.probabilities, args.top_k or 0,
                                   "test_folder" if args.images else None)  # fmt: skip
    if args.json:
        write_json_output(args.json, {"run": str(args.run), "out": str(args.out), "predictions": count, "scores": scores})
    print(f"wrote {count} predictions to {args.out}")
    if scores:
        print("  ".join(f"{k} {v:.4f}" for k, v in scores.items()))


def predict_audio(args) -> None:
    from ..inference.recordings import predict_recordings

    files = predict_recordings(args.run, args.audio, args.out, args.windows, args.device)
    for row in files:
        print(f"{row['path']}: {', '.join(row['present']) or '(none)'}  ({row['windows']} windows)")
    windows = str(Path(args.out).with_name("windows.csv")) if args.windows else None
    print(f"wrote {len(files)} predictions to {args.out}" + (f" and their windows to {windows}" if windows else ""))
    if args.json:
        write_json_output(args.json, {"run": str(args.run), "out": str(args.out), "windows": windows, "files": files})


def cmd_inspect(args) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..data.inspect import summarize

    summary = summarize(args.path)
    if args.json:
        write_json_output(args.json, summary.as_dict())
    unit = "clips" if summary.durations else "images"
    table = Table(title="class counts")
    table.add_column("class")
    table.add_column(unit, justify="right")
    for name, count in sorted(summary.counts.items(), key=lambda item: -item[1]):
        table.add_row(escape(name), str(count))
    console = Console()
    console.print(f"{summary.path}: {summary.layout}, {summary.total} {unit}", soft_wrap=True, markup=False)
    if summary.counts:
        console.print(table)
        console.print(f"classes {len(summary.counts)}  imbalance ratio (largest/smallest) {summary.imbalance:.2f}", soft_wrap=True)
    if summary.durations:
        shortest, median, longest = summary.durations
        rates = ", ".join(f"{rate} Hz: {n}" for rate, n in summary.sizes.most_common())
        console.print(f"clip seconds (shortest / median / longest) {shortest:.2f} / {median:.2f} / {longest:.2f}", markup=False)
        console.print(f"sample rates (rate: clips) {rates}", soft_wrap=True, markup=False)
        return
    sizes = ", ".join(f"{w}x{h}: {n}" for (w, h), n in summary.sizes.most_common())
    console.print(f"image sizes (width x height: images) {sizes}", soft_wrap=True, markup=False)
