"""The command line's grammar: one sub-command per job, the same option for the same idea."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..version import __version__
from .plans import cmd_study, cmd_study_list, cmd_study_show, cmd_sweep, cmd_sweep_confirm, cmd_sweep_show, cmd_worker
from .runs import cmd_demo, cmd_evaluate, cmd_inspect, cmd_predict, cmd_report, cmd_train


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
    predict.add_argument("--data", metavar="SPLIT", help="a run on your own data source: the split its loader returns (e.g. test)")
    predict.add_argument("--out", required=True, help="CSV to write (images: id,label; audio: one row per file)")
    predict.add_argument("--labels", help="images: answer key (id,label CSV) to score the submission against")
    predict.add_argument("--probabilities", action="store_true", help="images: one probability column per class")
    predict.add_argument("--top-k", type=int, help="images: a column with the k most probable classes")
    predict.add_argument("--windows", action="store_true", help="audio: also windows.csv beside --out (file, start, end, probabilities)")
    device(predict, "auto")
    json_out(predict)
    predict.set_defaults(func=cmd_predict)

    def storage(sub, kind: str):
        sub.add_argument("--storage", help=f"Optuna storage URL (default: the {kind}'s own: sqlite in its directory; "
                         "postgresql://… for a cluster, journal:PATH for a shared disk)")  # fmt: skip

    def running(sub, kind: str, default_out: str, command):
        """What runs a plan: local workers, where it goes, progress, devices, output."""
        sub.add_argument("--workers", type=int, default=2, help="local worker processes (0: only queue the runs)")
        sub.add_argument("--out", type=Path, help=f"{kind} directory (default: {default_out})")
        sub.add_argument("--store", metavar="PATH", help="artifact store (a folder every machine reaches, or s3://BUCKET[/PREFIX]): each "
                         "finished run is archived there, so workers need no shared folder and report fetches what it lacks")  # fmt: skip
        storage(sub, kind)
        quiet(sub)
        device(sub)
        json_out(sub)
        sub.set_defaults(func=command)

    def shown(sub, kind: str, command):
        sub.add_argument("directory", nargs="?", help=f"{kind} directory (or --storage URL --study NAME: from the storage alone)")
        sub.add_argument("--study", metavar="NAME", help=f"with --storage: the {kind} to show, into a directory made here (--out)")
        sub.add_argument("--out", type=Path, help=f"with --study: this machine's directory for it (default: {dict(study='studies', sweep='sweeps')[kind]}/NAME)")
        storage(sub, kind)
        json_out(sub)
        sub.set_defaults(func=command)

    def plan_command(kind: str, section: str, default_out: str, help: str, command):
        """``reglab study`` / ``reglab sweep``: the command, its actions, and ``run`` (the default action)."""
        actions = commands.add_parser(kind, help=help).add_subparsers(dest="action", required=True, metavar="ACTION")
        run = actions.add_parser("run", help=f"run a {kind} recipe (the default: reglab {kind} RECIPE)")
        run.add_argument("recipe", help=f"{kind} recipe (a recipe with a '{section}' section)")
        run.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of the base recipe")
        running(run, kind, default_out, command)
        return actions, run

    study_actions, _ = plan_command("study", "study", "studies/<name>", "run every arm over several seeds and compare "
                                    "(study [run] RECIPE | study show DIR)", cmd_study)  # fmt: skip
    shown(study_actions.add_parser("show", help="the arm table again, from the study's storage"), "study", cmd_study_show)
    listed = study_actions.add_parser("list", help="the studies and sweeps a storage holds")
    listed.add_argument("--storage", required=True, help="storage URL (postgresql://…, sqlite:///…, journal:PATH)")
    json_out(listed)
    listed.set_defaults(func=cmd_study_list)
    sweep_actions, run = plan_command("sweep", "search", "sweeps/<name>", "search a recipe's space "
                                      "(sweep [run] RECIPE | sweep show DIR | sweep confirm DIR)", cmd_sweep)  # fmt: skip
    run.add_argument("--trials", type=int, help="random and tpe: configurations to try (default: search.trials)")
    run.add_argument("--timeout", type=float, help="seconds after which local workers start no new configuration")
    show = sweep_actions.add_parser("show", help="the ranking, parameter importances and best.yaml, from the sweep's storage")
    shown(show, "sweep", cmd_sweep_show)
    show.add_argument("--top", type=int, default=10, help="configurations listed (default 10)")
    confirm = sweep_actions.add_parser("confirm", help="the top configurations as a study over fresh seeds")
    confirm.add_argument("directory", nargs="?", help="sweep directory (or --storage URL --study NAME: from the storage alone)")
    confirm.add_argument("--study", metavar="NAME", help="with --storage: the sweep to confirm, its directory made here (sweeps/NAME)")
    running(confirm, "sweep", "SWEEP_DIR/confirm", cmd_sweep_confirm)
    confirm.add_argument("--top", type=int, default=3, help="configurations compared (default 3)")
    confirm.add_argument("--seeds", default="5", help="how many fresh seeds per configuration (default 5: the next after the "
                         "sweep's own), or a list such as 1,2,3 that leaves out the sweep's seed")  # fmt: skip
    confirm.add_argument("--baseline", help="'base' to compare against the recipe without the searched values")

    worker = commands.add_parser("worker", help="join a study's or sweep's queue from this process or machine")
    worker.add_argument("directory", nargs="?", help="study or sweep directory (or --storage URL --study NAME: no shared folder)")
    worker.add_argument("--study", metavar="NAME", help="with --storage: the study or sweep to join, its plan read from the storage")
    worker.add_argument("--out", type=Path, help="with --study: this machine's directory for its runs (default: studies/NAME or sweeps/NAME)")
    worker.add_argument("--timeout", type=float, help="sweeps: seconds after which this worker starts no new configuration")
    worker.add_argument("--storage", help="storage URL (default: the one the study was created with)")
    worker.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    worker.add_argument("--patience", type=float, default=120.0, help="seconds a lost database is retried, with back-off, before this "
                        "worker stops (its trial then runs again elsewhere; default 120)")  # fmt: skip
    quiet(worker)
    device(worker)
    worker.set_defaults(func=cmd_worker)

    report = commands.add_parser("report", help="report.html (self-contained) and report.md of a run or a study, from its stored results")
    report.add_argument("path", help="run or study directory")
    report.set_defaults(func=cmd_report)

    data = commands.add_parser("data", help="look at a data set")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    inspect = data_commands.add_parser("inspect", help="class counts, imbalance ratio, image sizes or clip durations")
    inspect.add_argument("path", help="data folder, or a recipe file (its data: any source, your own loader included)")
    json_out(inspect)
    inspect.set_defaults(func=cmd_inspect)
    return parser
