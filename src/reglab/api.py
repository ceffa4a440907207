"""reglab from Python, for notebooks and scripts: the runs, studies and predictions of the command
line (a thin layer over these functions), with a recipe given as a file path, a YAML string or a
dict, and overrides as keyword arguments (``optim={"lr": 0.01}`` or ``**{"optim.lr": 0.01}``)."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Optional, Union

import yaml

from .errors import UserError
from .inference.evaluate import evaluate_run
from .inference.trained_run import TrainedRun
from .plugins import BATCH_OPS, DATA_SOURCES, LOSSES, MODELS
from .progress import Silent
from .rundir import RunDir, default_run_dir
from .recipe import Recipe, set_dotted, validate
from .recipe.loading import laid_over, read_recipe_tree, settle_moved, with_own_folder
from .training.run import RunResult
from .training.run import train as train_run
from .training.tracking import attach_report

RecipeLike = Union[str, Path, dict, Recipe]


def recipe_tree(recipe: RecipeLike) -> tuple[dict, str]:
    """The recipe's tree and where it came from (for messages). A string that names no file and
    holds a line break or a colon is YAML; a dict's references are looked up from the current folder."""
    if isinstance(recipe, Recipe):
        return recipe.to_dict(), "recipe"
    if isinstance(recipe, dict):
        return with_own_folder(copy.deepcopy(recipe), Path.cwd() / "recipe"), "recipe"
    text = str(recipe)
    if isinstance(recipe, str) and not Path(text).is_file() and ("\n" in text or ": " in text):
        try:
            tree = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"recipe: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(tree, dict):
            raise UserError("recipe: a recipe must be a mapping of sections")
        return with_own_folder(tree, Path.cwd() / "recipe"), "recipe"
    tree = read_recipe_tree(text)
    if tree is not None and not isinstance(tree, dict):
        raise UserError(f"{text}: a recipe must be a mapping of sections")
    return tree or {}, text


def overridden_tree(recipe: RecipeLike, overrides: dict) -> tuple[dict, str]:
    """``recipe_tree`` with the keyword overrides set (``None``: the default). A dotted key sets
    one value; a mapping is laid over the section below it as a ``base:`` recipe is (its keys
    merged, the section replaced whole when its ``name`` changes: ``schedule={"name": "cosine"}``)."""
    tree, origin = recipe_tree(recipe)
    for key, value in overrides.items():
        keys = key.split(".")
        below = tree
        for part in keys:
            below = below.get(part) if isinstance(below, dict) else None
        if isinstance(value, dict) and isinstance(below, dict):
            value = laid_over({key: below}, {key: value})[key]
        set_dotted(tree, keys, copy.deepcopy(value))
    return tree, origin


def load(recipe: RecipeLike, **overrides) -> Recipe:
    """A validated run recipe (``None`` as an override restores the default)."""
    tree, origin = overridden_tree(recipe, overrides)
    return validate(settle_moved(tree), origin)


def train(recipe: RecipeLike, out: Optional[Union[str, Path]] = None, *, resume: bool = False, reporter=None, report: bool = True,
          **overrides) -> RunResult:  # fmt: skip
    """Train one run; ``out`` defaults to ``runs/<name>-<time>``. ``reporter``: a progress
    reporter (the command line's shows epochs; default silent). Writes the run's report unless
    ``report=False``."""
    from .report import build_report

    loaded = load(recipe, **overrides)
    out = Path(out) if out is not None else default_run_dir(loaded.name or (Path(recipe).stem if isinstance(recipe, (str, Path)) and Path(recipe).is_file() else "run"))
    result = train_run(loaded, out, reporter or Silent(), resume=resume)
    if report:
        build_report(out)
        attach_report(out, RunDir.open(out).meta(), loaded)
    return result


def evaluate(run: Union[str, Path], data: Union[str, Path], *, source: Optional[str] = None, labels: Optional[str] = None,
             device: str = "auto", aggregate: Optional[str] = None, top_k: Optional[int] = None) -> dict:  # fmt: skip
    """Score a finished run on labelled data (a folder, or for a run on a user's data source the
    split its loader is asked for, e.g. ``"test"``); also saved as ``eval_<name>.json`` in the run.
    ``aggregate``/``top_k``: how long excerpts' window scores combine (default: the recipe's)."""
    return evaluate_run(run, data, source, labels, device, aggregate, top_k)


def load_run(path: Union[str, Path], device: str = "auto") -> TrainedRun:
    """A trained run for predictions: ``load_run(p).predict(x)`` gives class probabilities."""
    return TrainedRun(path, device)


def registering_modules(tree) -> list[str]:
    """The modules that registered the names a recipe uses (a study's workers are other processes:
    they import them); a name registered in ``__main__`` (a notebook, a script) cannot be."""
    if isinstance(tree, dict):
        return [module for value in tree.values() for module in registering_modules(value)]
    if isinstance(tree, list):
        return [module for value in tree for module in registering_modules(value)]
    found = []
    for registry in (MODELS, DATA_SOURCES, LOSSES, BATCH_OPS):
        entry = registry.entries.get(tree) if isinstance(tree, str) else None
        if entry is not None and not entry.builtin:
            module = getattr(entry.target, "__module__", "__main__")
            if module == "__main__":
                raise UserError(f"{registry.kind} '{tree}' is registered in this script or notebook only; a study's workers are other "
                                "processes: register it in a module of its own and import that module")  # fmt: skip
            found.append(module)
    return found


def study(recipe: RecipeLike, out: Optional[Union[str, Path]] = None, *, workers: int = 2, storage: Optional[str] = None,
          device: Optional[str] = None, quiet: bool = True, **overrides) -> dict:  # fmt: skip
    """Run a study to its end with ``workers`` local processes; returns its table as data: the
    arms (verdict, intervals, p-values, seeds needed) and every run, as ``reglab study --json``."""
    from .experiments.study import Study

    if workers < 1:
        raise UserError(f"workers must be 1 or more, got {workers}")
    tree, origin = overridden_tree(recipe, overrides)
    name = tree.get("name") or (Path(origin).stem if origin != "recipe" else "study")
    tree.setdefault("plugin_dirs", [str(Path.cwd())] if origin == "recipe" else [str(Path(origin).resolve().parent)])
    tree["imports"] = list(dict.fromkeys([*tree.get("imports", []), *registering_modules(tree)]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.yaml"
        path.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
        prepared = Study.prepare(path, [], Path(out) if out else None, storage)
    prepared.run_rounds(workers, quiet, device, say=(lambda *a: None) if quiet else print)
    return prepared.table_data()
