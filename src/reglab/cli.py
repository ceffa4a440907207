"""``reglab`` command line: train | demo | evaluate | predict | report | study | sweep | worker | data inspect.

Exit codes: 0 success, 2 a user error (one line on stderr naming the file or key), 1 a bug,
130 interrupted. The same idea has the same option everywhere: ``--out`` what a command writes,
``--quiet`` no progress, ``--device`` where a model runs, ``--json PATH`` what the terminal shows
as JSON for scripts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import traceback
from importlib import resources
from pathlib import Path

from . import __version__
from .errors import UserError


def default_run_dir(name: str) -> Path:
    base = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def reporter_for(quiet: bool):
    from .progress import Silent, Terminal

    return Silent() if quiet else Terminal()


def with_device(args) -> list[str]:
    """The command's overrides, plus ``train.device`` when ``--device`` was given."""
    return list(args.overrides) + ([f"train.device={args.device}"] if args.device else [])


def json_ready(value):
    """Dataclasses as mappings, NaN and infinities as null: standard JSON for any reader."""
    if dataclasses.is_dataclass(value):
        return json_ready(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_output(path, payload: dict) -> None:
    """``--json PATH``: what the command printed, as JSON."""
    from .rundir import check_output, write_atomic

    target = check_output(path, "--json")
    write_atomic(target, lambda tmp: tmp.write_text(json.dumps(json_ready(payload), indent=2) + "\n"))


def cmd_train(args) -> None:
    from .recipe import load_recipe
    from .training.run import train

    recipe = load_recipe(args.recipe, with_device(args))
    if recipe.train.parallel_seeds > 1:
        raise UserError(f"train.parallel_seeds: {recipe.train.parallel_seeds} is for studies (a worker trains that many seeds of an arm "
                        "as one stack); reglab train trains one seed: set it to 1, or run a study")  # fmt: skip
    out = args.out or default_run_dir(recipe.name or Path(args.recipe).stem)
    train(recipe, out, reporter_for(args.quiet), resume=args.resume)
    write_report_of(out, args.quiet)


def write_report_of(directory, quiet: bool) -> None:
    """The report of a run or study directory, and its path unless ``quiet``."""
    from .report import build_report

    html, _ = build_report(directory)
    if not quiet:
        print(f"report: {html}")


def cmd_report(args) -> None:
    from .report import build_report

    started = time.perf_counter()
    html, markdown = build_report(args.path)
    print(f"report written to {html} and {markdown} ({time.perf_counter() - started:.1f} s)")


def cmd_demo(args) -> None:
    from .recipe import load_recipe
    from .training.run import train

    with resources.as_file(resources.files("reglab") / "recipes" / "demo.yaml") as path:
        recipe = load_recipe(path, with_device(args))
    out = args.out or default_run_dir("demo")
    train(recipe, out, reporter_for(args.quiet), resume=args.resume)
    write_report_of(out, args.quiet)


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


def cmd_evaluate(args) -> None:
    from .inference.evaluate import evaluate_run

    if args.top_k is not None and args.top_k < 1:
        raise UserError(f"--top-k must be 1 or more, got {args.top_k}")
    result = evaluate_run(args.run, args.data, args.source, args.labels, args.device, args.aggregate, args.top_k)
    if args.json:
        write_json_output(args.json, result)
    print_metrics(f"{args.run} on {args.data} ({result['samples']} samples)", result)


def cmd_predict(args) -> None:
    if bool(args.images) == bool(args.audio):
        raise UserError("predict needs --images DIR or --audio PATH… (one of them)")
    if args.top_k is not None and args.top_k < 1:
        raise UserError(f"--top-k must be 1 or more, got {args.top_k}")
    if args.audio:
        predict_audio(args)
        return
    from .inference.evaluate import predict_folder

    count, scores = predict_folder(args.run, args.images, args.out, args.labels, args.device, args.probabilities, args.top_k or 0)
    if args.json:
        write_json_output(args.json, {"run": str(args.run), "out": str(args.out), "predictions": count, "scores": scores})
    print(f"wrote {count} predictions to {args.out}")
    if scores:
        print("  ".join(f"{k} {v:.4f}" for k, v in scores.items()))


def predict_audio(args) -> None:
    from .inference.recordings import predict_recordings

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

    from .data.inspect import summarize

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


def show_study(study, json_path=None, quiet=False) -> None:
    from .experiments.table import arm_rows, print_table

    records = study.records()  # one read of the storage
    results, total = study.results(records), len(study.planned(records))
    rows = arm_rows(results, study.config)
    if json_path:
        write_json_output(json_path, {"study": study.name, "metric": study.config.metric, "at_epoch": study.config.at_epoch,
                                      "alpha": study.config.alpha, "margin": study.config.margin, "finished": len(results),
                                      "total": total, "arms": rows, "runs": results, "directory": str(study.directory)})  # fmt: skip
    if quiet:
        return
    print_table(rows, study.config, f"study {study.name}: {len(results)}/{total} runs finished")
    print(f"study directory {study.directory}  storage {study.storage_url}")


def cmd_study(args) -> None:
    from .experiments.study import Study

    if args.recipe == "show":
        if len(args.overrides) != 1:
            raise UserError("usage: reglab study show STUDY_DIR")
        show_study(Study(args.overrides[0], args.storage), args.json)
        return
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    run_study(Study.prepare(args.recipe, args.overrides, args.out, args.storage), args)


def run_study(study, args) -> None:
    """Run a prepared study with ``--workers`` local workers and show its table and report (or
    say how to start workers)."""
    say = (lambda *a: None) if args.quiet else print
    say(f"study {study.name}: {len(study.points())} runs ({len(study.config.arms)} arms x {study.config.seeds_text}) in {study.directory}")
    if args.workers:
        study.run_workers(args.workers, args.quiet, args.device)
        while study.enqueue_missing():  # adaptive seeds: the next round for the arms not decided yet
            say(f"study {study.name}: more seeds for the undecided arms, {len(study.points())} runs in all")
            study.run_workers(args.workers, args.quiet, args.device)
        show_study(study, args.json, args.quiet)
        write_report_of(study.directory, args.quiet)
    else:
        say(f"queued; start workers with: reglab worker {study.directory} --storage {study.storage_url}")


def show_sweep(sweep, json_path=None, quiet=False, top: int = 10) -> None:
    from .experiments.table import print_ranking
    from .experiments.sweep import MIN_FOR_IMPORTANCE

    rows, importances = sweep.results(), sweep.importances()
    best = sweep.write_best(rows)
    if json_path:
        write_json_output(json_path, {"sweep": sweep.name, "metric": sweep.config.metric, "finished": len(rows), "total": sweep.total(),
                                      "best_yaml": str(best) if best else None, "importances": importances,
                                      "runs": [{k: v for k, v in row.items() if k != "group"} for row in rows],
                                      "directory": str(sweep.directory)})  # fmt: skip
    if quiet:
        return
    print_ranking(rows[:top], sweep.space.names, sweep.config, f"sweep {sweep.name}: {len(rows)}/{sweep.total()} configurations run "
                  f"({sweep.config.sampler} sampler, {sweep.config.pruner} pruner); top {min(top, len(rows))}")  # fmt: skip
    if importances:
        print("parameter importances (fANOVA over completed runs): " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
    else:
        print(f"parameter importances: need {MIN_FOR_IMPORTANCE} completed runs with different values")
    print(f"sweep directory {sweep.directory}  storage {sweep.storage_url}")
    if best:
        print(f"best configuration: {best} (train it with: reglab train {best})")


def cmd_sweep(args) -> None:
    from .experiments.sweep import Sweep

    if args.recipe in ("show", "confirm"):
        if len(args.overrides) != 1:
            raise UserError(f"usage: reglab sweep {args.recipe} SWEEP_DIR")
        sweep = Sweep(args.overrides[0], args.storage)
        if args.recipe == "show":
            show_sweep(sweep, args.json, top=args.top or 10)
        else:
            confirm_sweep(sweep, args)
        return
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    if args.timeout is not None and args.timeout <= 0:
        raise UserError(f"--timeout must be above 0 seconds, got {args.timeout}")
    overrides = list(args.overrides) + ([f"search.trials={args.trials}"] if args.trials is not None else [])
    sweep = Sweep.prepare(args.recipe, overrides, args.out, args.storage)
    say = (lambda *a: None) if args.quiet else print
    how = f"{len(sweep.points())} grid points" if sweep.grid else f"{sweep.config.trials} {sweep.config.sampler} trials"
    say(f"sweep {sweep.name}: {how} over {', '.join(sweep.space.names)} in {sweep.directory}")
    if args.workers:
        sweep.run_workers(args.workers, args.quiet, args.device, args.timeout)
        show_sweep(sweep, args.json, args.quiet)
        write_report_of(sweep.directory, args.quiet)
    else:
        say(f"queued; start workers with: reglab worker {sweep.directory} --storage {sweep.storage_url}")


def confirm_sweep(sweep, args) -> None:
    from .experiments.study import Study

    out = args.out or sweep.directory / "confirm"
    path, arms = sweep.confirmation(3 if args.top is None else args.top, args.seeds, args.baseline, out)
    study = Study.prepare(path, [], out, None)
    if not args.quiet:
        for arm, params in arms.items():
            print(f"{arm}: {', '.join(f'{k}={v}' for k, v in params.items())}")
        print(f"fresh seeds {', '.join(map(str, study.config.seeds))} (the sweep selected on {', '.join(map(str, sorted(sweep.selecting_seeds())))})")
    run_study(study, args)


def cmd_worker(args) -> None:
    import torch

    from .experiments.sweep import open_directory

    if args.threads:
        torch.set_num_threads(args.threads)
    engine = open_directory(args.study, args.storage)
    engine.quiet, engine.device = args.quiet, args.device
    engine.work(args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reglab", description="Controlled regularization studies for deep classifiers.")
    parser.add_argument("--version", action="version", version=f"reglab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def device(sub, default=None):
        where = "the recipe's train.device" if default is None else default
        sub.add_argument("--device", default=default, choices=["auto", "cpu", "cuda"], help=f"where the model runs (default: {where})")

    def quiet(sub):
        sub.add_argument("--quiet", action="store_true", help="no progress output")

    def json_out(sub):
        sub.add_argument("--json", metavar="PATH", help="also write what is shown as JSON to PATH")

    def run_options(sub):
        sub.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=0.01")
        sub.add_argument("--out", type=Path, help="run directory (default: runs/<name>-<time>)")
        sub.add_argument("--resume", action="store_true", help="continue the unfinished run in --out from its last completed epoch")
        quiet(sub)
        device(sub)

    train = commands.add_parser("train", help="train one run from a recipe")
    train.add_argument("recipe", help="YAML recipe file")
    run_options(train)
    train.set_defaults(func=cmd_train)

    demo = commands.add_parser("demo", help="train the built-in demo (digits, under a minute on a laptop)")
    run_options(demo)
    demo.set_defaults(func=cmd_demo)

    evaluate = commands.add_parser("evaluate", help="score a finished run on a labelled data set")
    evaluate.add_argument("run", help="run directory")
    evaluate.add_argument("--data", required=True, help="image folder, CIFAR folder, Tiny-ImageNet root, test folder or IRMAS excerpts")
    evaluate.add_argument("--source", choices=["image_folder", "test_folder", "cifar", "tiny_imagenet"], help="layout (default: detected)")
    evaluate.add_argument("--labels", help="id,label CSV for an unlabelled test folder")
    evaluate.add_argument("--aggregate", choices=["mean", "max", "topk"], help="long excerpts: how window scores combine (default: the recipe's)")
    evaluate.add_argument("--top-k", type=int, help="with --aggregate topk: windows averaged")
    device(evaluate, "auto")
    json_out(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    predict = commands.add_parser("predict", help="predictions of a trained run on unlabelled images or recordings")
    predict.add_argument("run", help="run directory")
    predict.add_argument("--images", help="folder of <id>.png / .jpg images: writes an id,label CSV")
    predict.add_argument("--audio", nargs="+", metavar="PATH", help="recordings or folders of them (wav, flac, ogg, mp3; any length)")
    predict.add_argument("--out", required=True, help="CSV to write (images: id,label; audio: one row per file)")
    predict.add_argument("--labels", help="images: answer key (id,label CSV) to score the submission against")
    predict.add_argument("--probabilities", action="store_true", help="images: one probability column per class")
    predict.add_argument("--top-k", type=int, help="images: a column with the k most probable classes")
    predict.add_argument("--windows", action="store_true", help="audio: also windows.csv beside --out (file, start, end, probabilities)")
    device(predict, "auto")
    json_out(predict)
    predict.set_defaults(func=cmd_predict)

    def plan_options(sub, kind: str, default_out: str, command):
        """What ``study`` and ``sweep`` share: overrides, local workers, directory, storage, output."""
        sub.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of the base recipe")
        sub.add_argument("--workers", type=int, default=2, help="local worker processes (0: only queue the runs)")
        sub.add_argument("--out", type=Path, help=f"{kind} directory (default: {default_out})")
        sub.add_argument("--storage", help=f"Optuna storage URL (default: sqlite in the {kind} directory; "
                         "postgresql://… for a cluster, journal:PATH for a shared disk)")  # fmt: skip
        quiet(sub)
        device(sub)
        json_out(sub)
        sub.set_defaults(func=command)

    study = commands.add_parser("study", help="run every arm over several seeds and compare (or: study show DIR)")
    study.add_argument("recipe", help="study recipe (a recipe with a 'study' section), or 'show'")
    plan_options(study, "study", "studies/<name>", cmd_study)

    sweep = commands.add_parser("sweep", help="search a recipe's search space (or: sweep show DIR, sweep confirm DIR)")
    sweep.add_argument("recipe", help="sweep recipe (a recipe with a 'search' section), 'show' or 'confirm'")
    plan_options(sweep, "sweep", "sweeps/<name>; confirm: the study's, SWEEP_DIR/confirm", cmd_sweep)
    sweep.add_argument("--trials", type=int, help="random and tpe: configurations to try (default: search.trials)")
    sweep.add_argument("--timeout", type=float, help="seconds after which local workers start no new configuration")
    sweep.add_argument("--top", type=int, help="show: configurations listed (default 10); confirm: configurations compared (default 3)")
    sweep.add_argument("--seeds", default="5", help="confirm: how many fresh seeds per configuration (default 5: the next after the "
                       "sweep's own), or a list such as 1,2,3 that leaves out the sweep's seed")  # fmt: skip
    sweep.add_argument("--baseline", help="confirm: 'base' to compare against the recipe without the searched values")

    worker = commands.add_parser("worker", help="join a study's or sweep's queue from this process or machine")
    worker.add_argument("study", help="study or sweep directory")
    worker.add_argument("--timeout", type=float, help="sweeps: seconds after which this worker starts no new configuration")
    worker.add_argument("--storage", help="storage URL (default: the one the study was created with)")
    worker.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    quiet(worker)
    device(worker)
    worker.set_defaults(func=cmd_worker)

    report = commands.add_parser("report", help="report.html (self-contained) and report.md of a run or a study, from its stored results")
    report.add_argument("path", help="run or study directory")
    report.set_defaults(func=cmd_report)

    data = commands.add_parser("data", help="look at a data set")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    inspect = data_commands.add_parser("inspect", help="class counts, imbalance ratio, image sizes or clip durations")
    inspect.add_argument("path", help="data folder")
    json_out(inspect)
    inspect.set_defaults(func=cmd_inspect)
    return parser


def parse(argv: list[str] | None):
    """The command line, with KEY=VALUE overrides accepted after options too
    (``reglab train r.yaml --out runs/a train.seed=1``), as argparse alone does not."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and (not hasattr(args, "overrides") or any(token.startswith("-") or "=" not in token for token in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides += extra
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.environ.get("REGLAB_KEEP_FREED_MEMORY", "1") != "0":
        from .allocator import keep_freed_memory

        keep_freed_memory()  # up to 1.35x faster steps at larger batches on glibc (benchmarks/allocator.py)
    try:
        if getattr(args, "resume", False) and not args.out:
            raise UserError("--resume needs --out RUN_DIR: the run to continue")
        args.func(args)
    except UserError as exc:
        print(f"reglab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reglab: interrupted; finished epochs and checkpoints are in the run directory", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's fault
        if os.environ.get("REGLAB_DEBUG"):
            traceback.print_exc()
        print(f"reglab: internal error: {type(exc).__name__}: {exc} (set REGLAB_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
