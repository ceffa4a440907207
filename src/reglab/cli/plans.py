"""Commands on many runs: study (run, show), sweep (run, show, confirm) and worker."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .output import write_json_output
from .runs import write_report_of


def show_study(study, json_path=None, quiet=False) -> None:
    from ..experiments.table import print_table

    summary = study.table_data()
    if json_path:
        write_json_output(json_path, summary)
    if quiet:
        return
    print_table(summary["arms"], study.config, f"study {study.name}: {summary['finished']}/{summary['total']} runs finished")
    print(f"study directory {study.directory}  storage {study.storage_url}")


def cmd_study(args) -> None:
    from ..experiments.study import Study

    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    run_study(Study.prepare(args.recipe, args.overrides, args.out, args.storage, args.store), args)


def from_storage(args, what: str) -> bool:
    """Whether a command reads its plan from ``--storage URL --study NAME`` rather than a directory."""
    if bool(args.directory) == bool(args.study):
        raise UserError(f"{what} needs a directory, or --storage URL --study NAME (one of them)")
    if args.study and not args.storage:
        raise UserError("--study NAME needs --storage URL: the storage that holds the plan")
    return bool(args.study)


def shown_directory(args):
    """The directory ``study show`` / ``sweep show`` reads: given, or made here from the storage's plan."""
    from ..experiments.sweep import local_directory

    return local_directory(args.storage, args.study, args.out) if from_storage(args, "show") else args.directory


def cmd_study_show(args) -> None:
    from ..experiments.study import Study

    show_study(Study(shown_directory(args), args.storage), args.json)


def run_study(study, args) -> None:
    """Run a prepared study with ``--workers`` local workers, its rounds of adaptive seeds
    included, and show its table and report (or say how to start workers)."""
    say = (lambda *a: None) if args.quiet else print
    say(f"study {study.name}: {len(study.points())} runs ({len(study.config.arms)} arms x {study.config.seeds_text}) in {study.directory}")
    if args.workers:
        study.run_rounds(args.workers, args.quiet, args.device, say)
        show_study(study, args.json, args.quiet)
        write_report_of(study.directory, args.quiet)
    else:
        say(f"queued; start workers with: reglab worker {study.directory} --storage {study.storage_url} (another machine: "
            f"reglab worker --storage URL --study {study.name})")


def show_sweep(sweep, json_path=None, quiet=False, top: int = 10) -> None:
    from ..experiments.table import print_ranking
    from ..experiments.sweep import MIN_FOR_IMPORTANCE

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
        of = f", for {sweep.config.metric}" if sweep.config.multi else ""
        print(f"parameter importances (fANOVA over completed runs{of}): " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
    else:
        print(f"parameter importances: need {MIN_FOR_IMPORTANCE} completed runs with different values")
    print(f"sweep directory {sweep.directory}  storage {sweep.storage_url}")
    if best:
        print(f"best configuration: {best} (train it with: reglab train {best})")


def cmd_sweep(args) -> None:
    from ..experiments.sweep import Sweep

    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    if args.timeout is not None and args.timeout <= 0:
        raise UserError(f"--timeout must be above 0 seconds, got {args.timeout}")
    overrides = list(args.overrides) + ([f"search.trials={args.trials}"] if args.trials is not None else [])
    sweep = Sweep.prepare(args.recipe, overrides, args.out, args.storage, args.store)
    say = (lambda *a: None) if args.quiet else print
    how = f"{len(sweep.points())} grid points" if sweep.grid else f"{sweep.config.trials} {sweep.config.sampler} trials"
    say(f"sweep {sweep.name}: {how} over {', '.join(sweep.space.names)} in {sweep.directory}")
    if args.workers:
        sweep.run_workers(args.workers, args.quiet, args.device, args.timeout)
        show_sweep(sweep, args.json, args.quiet)
        write_report_of(sweep.directory, args.quiet)
    else:
        say(f"queued; start workers with: reglab worker {sweep.directory} --storage {sweep.storage_url} (another machine: "
            f"reglab worker --storage URL --study {sweep.name})")


def cmd_sweep_show(args) -> None:
    from ..experiments.sweep import Sweep

    show_sweep(Sweep(shown_directory(args), args.storage), args.json, top=args.top)


def cmd_sweep_confirm(args) -> None:
    from ..experiments.artifacts import STORE
    from ..experiments.study import Study
    from ..experiments.sweep import Sweep, local_directory
    from ..experiments.table import searched_text

    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    # the sweep's directory, given or made here from the storage (--out is the confirmation's)
    sweep = Sweep(local_directory(args.storage, args.study) if from_storage(args, "sweep confirm") else args.directory, args.storage)
    out = Path(args.out or sweep.directory / "confirm")
    path, arms = sweep.confirmation(args.top, args.seeds, args.baseline, out)
    first = not (out / "study.json").exists()  # a confirmation made before keeps its own storage
    study = Study.prepare(path, [], out, sweep.storage_url if first else None, args.store or sweep.optuna.user_attrs.get(STORE))
    if not args.quiet:
        for arm, params in arms.items():
            print(f"{arm}: {searched_text(params, sweep.space.names)}")
        print(f"fresh seeds {', '.join(map(str, study.config.seeds))} (the sweep selected on {', '.join(map(str, sorted(sweep.selecting_seeds())))})")
    run_study(study, args)


def cmd_study_list(args) -> None:
    from ..experiments.sweep import plans_in

    found = plans_in(args.storage)
    if args.json:
        write_json_output(args.json, {"storage": args.storage, "plans": found})
    for plan in found:
        print(f"{plan['name']}  {plan['kind']}  {plan['finished']}/{plan['trials']} trials finished")
    if not found:
        print(f"{args.storage}: no studies or sweeps")


def cmd_worker(args) -> None:
    import torch

    from ..experiments.sweep import local_directory, open_directory

    if args.patience < 0:
        raise UserError(f"--patience must be 0 seconds or more, got {args.patience}")
    directory = local_directory(args.storage, args.study, args.out) if from_storage(args, "worker") else args.directory
    if args.threads:
        torch.set_num_threads(args.threads)
    engine = open_directory(directory, args.storage, args.patience)
    engine.quiet, engine.device = args.quiet, args.device
    engine.work(args.timeout)
