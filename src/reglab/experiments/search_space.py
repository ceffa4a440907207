"""A sweep's search space, read from a recipe's ``search`` section.

``space`` maps dotted recipe keys to distributions::

    optim.lr: {loguniform: [1.0e-4, 1.0e-2]}
    model.dropout.rate: {choice: [0.3, 0.4, 0.5]}
    train.batch_size: {int: [32, 256], step: 32}
    loss.label_smoothing: {uniform: [0.0, 0.2]}

``cocktail`` lists the regularizers the search may switch on or off (regularization cocktails,
Kadra et al. 2021, "Well-tuned simple nets excel on tabular datasets"; ``all``: every one that
applies, ``cocktail.py``). Each is a recipe key;
its switch is a parameter named ``KEY?`` and whatever it samples exists only in configurations
where it is on (a conditional parameter)::

    augment.mix: {mixup_alpha: {uniform: [0.1, 1.0]}}    # a block: fixed values and sampled ones
    optim.weight_decay: {loguniform: [1.0e-5, 1.0e-3]}   # one value, sampled when on
    augment.hflip: 0.5                                    # a fixed value when on

Off sets the key to null: the recipe's default, which for every regularizer block is "off".

``variants`` are named alternatives, each a set of overrides with searched keys of its own (a
parameter ``KEY [variant]``), for choices that change several keys at once::

    loss:
      softmax: {loss.name: cross_entropy, optim.lr: {choice: [0.001, 0.01]}}
      ovr_bce: {loss.name: ovr_bce, optim.lr: {choice: [0.019, 0.19]}}

A switch is a two-variant choice; both are *branches* here. A configuration (a *point*) is a
tuple of values in ``names`` order, ``None`` where a conditional parameter is absent;
``overrides`` turns it into dotted recipe overrides.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Optional

import optuna

from ..errors import UserError
from ..recipe import SweepRecipe, load_plan, with_overrides
from .cocktail import every_regularizer

KINDS = ("choice", "uniform", "loguniform", "int")
SCALAR = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Dimension:
    """One searched parameter, ``name``, setting the recipe's ``key``: ``choice`` values, or a
    ``(low, high)`` range with an optional step."""

    name: str
    key: str
    kind: str
    values: tuple
    step: Optional[float] = None

    @property
    def discrete(self) -> bool:
        return self.kind in ("choice", "int")

    def grid(self) -> list:
        if self.kind == "choice":
            return list(self.values)
        low, high = self.values
        return list(range(low, high + 1, self.step or 1))

    def suggest(self, trial: optuna.Trial):
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.values))
        low, high = self.values
        if self.kind == "int":
            return trial.suggest_int(self.name, low, high, step=self.step or 1)
        return trial.suggest_float(self.name, low, high, step=self.step, log=self.kind == "loguniform")


@dataclass(frozen=True)
class Option:
    """One alternative of a branch: the overrides it sets, and the dimensions it samples."""

    fixed: dict
    dimensions: tuple[Dimension, ...]

    def overrides(self, values: dict) -> dict:
        return {**copy.deepcopy(self.fixed), **{d.key: values[d.name] for d in self.dimensions}}


@dataclass(frozen=True)
class Branch:
    """A categorical parameter ``name`` whose value picks one option (a cocktail switch: False or True)."""

    name: str
    where: str  # how the user finds it: search.cocktail.augment.mix, search.variants.loss
    options: dict

    @property
    def dimensions(self) -> list[Dimension]:
        return [d for option in self.options.values() for d in option.dimensions]


def is_distribution(spec: Any) -> bool:
    return isinstance(spec, dict) and any(kind in spec for kind in KINDS)


def parse_dimension(name: str, key: str, spec: Any, where: str) -> Dimension:
    """``where`` is how the user finds it: ``search.space.optim.lr``."""
    if not is_distribution(spec):
        raise UserError(f"{where}: a distribution is a mapping with one of {', '.join(KINDS)} (e.g. {{choice: [0.1, 0.2]}}), got {spec!r}")
    kinds = [kind for kind in KINDS if kind in spec]
    extra = sorted(set(spec) - set(KINDS) - {"step"})
    if len(kinds) > 1 or extra:
        raise UserError(f"{where}: one distribution and an optional step, got keys {', '.join(map(str, spec))}")
    kind, values, step = kinds[0], spec[kinds[0]], spec.get("step")
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: choice needs a list of at least one value")
        if not all(isinstance(v, SCALAR) for v in values):
            raise UserError(f"{where}: choice values must be numbers, strings, booleans or null")
        if len(set(map(json.dumps, values))) != len(values):
            raise UserError(f"{where}: choice values repeat")
        if step is not None:
            raise UserError(f"{where}: step applies to int and uniform ranges, not to choice")
        return Dimension(name, key, kind, tuple(values))
    if not (isinstance(values, list) and len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        raise UserError(f"{where}: {kind} needs [low, high], two numbers")
    low, high = values
    if not low < high:
        raise UserError(f"{where}: {kind} needs low < high, got [{low}, {high}]")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"{where}: loguniform needs bounds above 0, got [{low}, {high}]")
    if kind == "int" and not all(isinstance(v, int) for v in (low, high, step if step is not None else 1)):
        raise UserError(f"{where}: int needs integer bounds and step")
    if step is not None and (kind == "loguniform" or not isinstance(step, (int, float)) or step <= 0):
        raise UserError(f"{where}: step must be a number above 0 (int and uniform ranges only)")
    return Dimension(name, key, kind, (low, high), step)


def parse_switch(key: str, spec: Any) -> Branch:
    """A cocktail member: off (the key null) or on (``spec``: a block, one sampled value, or a fixed value)."""
    where = f"search.cocktail.{key}"
    if is_distribution(spec):
        on = Option({}, (parse_dimension(key, key, spec, where),))
    elif isinstance(spec, dict):
        fixed = {sub: value for sub, value in spec.items() if not is_distribution(value)}
        dimensions = tuple(parse_dimension(f"{key}.{sub}", f"{key}.{sub}", value, f"{where}.{sub}") for sub, value in spec.items() if is_distribution(value))
        on = Option({key: fixed}, dimensions)
    else:
        on = Option({key: {} if spec is None else spec}, ())
    return Branch(f"{key}?", where, {False: Option({key: None}, ()), True: on})


def parse_variants(name: str, spec: Any) -> Branch:
    where = f"search.variants.{name}"
    if not isinstance(spec, dict) or not spec or not all(isinstance(o, dict) for o in spec.values()):
        raise UserError(f"{where}: variants are a mapping of names to mappings of dotted keys and values")
    options = {}
    for label, keys in spec.items():
        fixed = {key: value for key, value in keys.items() if not is_distribution(value)}
        dimensions = tuple(parse_dimension(f"{key} [{label}]", key, value, f"{where}.{label}.{key}") for key, value in keys.items() if is_distribution(value))
        options[str(label)] = Option(fixed, dimensions)
    return Branch(name, where, options)


class SearchSpace:
    def __init__(self, space: dict[str, Any], cocktail: dict[str, Any], variants: dict[str, Any]):
        self.dimensions = tuple(parse_dimension(key, key, spec, f"search.space.{key}") for key, spec in space.items())
        self.branches = tuple([parse_switch(key, spec) for key, spec in cocktail.items()] +
                              [parse_variants(name, spec) for name, spec in variants.items()])  # fmt: skip
        self.names = [d.name for d in self.dimensions]
        for branch in self.branches:
            self.names += [branch.name] + [d.name for d in branch.dimensions]
        repeated = sorted({name for name in self.names if self.names.count(name) > 1})
        if repeated:
            raise UserError(f"search: {repeated[0]} is searched twice (in space, cocktail or variants)")
        if not self.names:
            raise UserError("search: nothing to search; give search.space, search.cocktail or search.variants at least one key")

    def where(self, dimension: Dimension) -> str:
        if dimension in self.dimensions:
            return f"search.space.{dimension.name}"
        return next(f"{b.where}.{dimension.key}" for b in self.branches if dimension in b.dimensions)

    # --- points ------------------------------------------------------------------------------
    def point(self, values: dict) -> tuple:
        return tuple(values.get(name) for name in self.names)

    def chosen(self, values: dict) -> list[tuple[Branch, Option]]:
        return [(branch, branch.options[values[branch.name]]) for branch in self.branches]

    def values(self, point: tuple) -> dict:
        """Name → value of the parameters present in ``point`` (what Optuna stores for its trial)."""
        values = dict(zip(self.names, point))
        present = {d.name: values[d.name] for d in self.dimensions}
        for branch, option in self.chosen(values):
            present[branch.name] = values[branch.name]
            present.update({d.name: values[d.name] for d in option.dimensions})
        return present

    def grid(self) -> list[tuple]:
        """Every point of a grid over discrete dimensions (a branch: each option with each of its
        own grid points)."""
        continuous = [d for d in self.dimensions + tuple(d for b in self.branches for d in b.dimensions) if not d.discrete]
        if continuous:
            d = continuous[0]
            raise UserError(f"{self.where(d)}: search.sampler grid needs discrete values (choice, or int with a step); {d.kind} is continuous")

        def combine(axes: list[list[dict]]) -> list[dict]:
            return [dict(itertools.chain.from_iterable(part.items() for part in combo)) for combo in itertools.product(*axes)]

        axes = [[{d.name: v} for v in d.grid()] for d in self.dimensions]
        for branch in self.branches:
            axes.append([{branch.name: label, **values} for label, option in branch.options.items()
                         for values in combine([[{d.name: v} for v in d.grid()] for d in option.dimensions])])  # fmt: skip
        return [self.point(values) for values in combine(axes)]

    def suggest(self, trial: optuna.Trial) -> tuple:
        """The point of a trial: its enqueued values, or the sampler's proposal."""
        values = {d.name: d.suggest(trial) for d in self.dimensions}
        for branch in self.branches:
            values[branch.name] = label = trial.suggest_categorical(branch.name, list(branch.options))
            values.update({d.name: d.suggest(trial) for d in branch.options[label].dimensions})
        return self.point(values)

    def overrides(self, point: tuple) -> dict[str, Any]:
        """Dotted recipe overrides that make the base recipe into this configuration."""
        values = dict(zip(self.names, point))
        overrides = {d.key: values[d.name] for d in self.dimensions}
        for _, option in self.chosen(values):
            overrides.update(option.overrides(values))
        return overrides

    def probes(self) -> list[tuple[str, dict]]:
        """(where, overrides) pairs that together try every bound and choice on the base recipe."""
        probes = [(f"search.space.{d.name}", {d.key: value}) for d in self.dimensions for value in d.values]
        for branch in self.branches:
            for label, option in branch.options.items():
                values = [d.values for d in option.dimensions]
                for i in range(max([len(v) for v in values], default=1)):
                    probe = {d.name: v[i % len(v)] for d, v in zip(option.dimensions, values)}
                    probes.append((f"{branch.where}" + (f".{label}" if branch.where.startswith("search.variants") else ""), option.overrides(probe)))
        return probes


def run_name(space: SearchSpace, point: tuple) -> str:
    """A readable, file-safe name for a configuration, unique by its hash: ``rate0.3_lr0.001-1f2e3d``."""
    parts = []
    for name, value in zip(space.names, point):
        if value is None:
            continue
        label = re.sub(r" \[.*\]$", "", name).rstrip("?").split(".")[-1]  # "optim.lr [ovr_bce]" -> "lr"
        if isinstance(value, bool):
            text = "on" if value else "off"
        elif isinstance(value, float):
            text = f"{value:.3g}"
        else:
            text = str(value)
        parts.append(re.sub(r"[^A-Za-z0-9.-]", "", label + text))
    digest = hashlib.sha1(json.dumps(list(point)).encode()).hexdigest()[:6]
    return f"{'_'.join(parts)[:60]}-{digest}"


def load_sweep_recipe(path, overrides: list[str] = (), saved: bool = False) -> tuple[SweepRecipe, dict, SearchSpace]:
    """A sweep file: a recipe plus a ``search`` section. Returns the sweep, the base recipe's tree
    and the search space, every key and bound of it tried on the base recipe."""
    sweep, base = load_plan(path, overrides, saved, SweepRecipe, "search")
    if sweep.search.cocktail == "all":  # written out in the resolved recipe: a saved sweep keeps what it ran with
        cocktail, variants = every_regularizer(sweep, sweep.search.variants, lambda overrides: accepts(base, overrides))
        sweep = sweep.model_copy(update={"search": sweep.search.model_copy(update={"cocktail": cocktail, "variants": variants})})
    try:
        space = SearchSpace(sweep.search.space, sweep.search.cocktail, sweep.search.variants)
        for where, probe in space.probes():
            with_overrides(base, probe, where, saved)
        if sweep.search.sampler == "grid":
            space.grid()
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    return sweep, base, space


def accepts(base: dict, overrides: dict) -> bool:
    """Whether a base recipe takes these overrides, each searched key at its lowest value."""
    def lowest(value: Any) -> Any:
        if is_distribution(value):
            return next(value[kind][0] for kind in KINDS if kind in value)
        return {sub: lowest(v) for sub, v in value.items()} if isinstance(value, dict) else value

    try:
        with_overrides(base, {key: lowest(value) for key, value in overrides.items()}, "search.cocktail: all")
    except UserError:
        return False
    return True
