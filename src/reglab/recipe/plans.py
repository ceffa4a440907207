"""The plan sections: a study's ``study`` (arms × seeds, the table's statistics) and a sweep's
``search`` (a search space, sampler and pruner), on top of a run recipe."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Discriminator, Field, Tag, model_validator

from ..metrics import BOUNDED_METRICS, resolve_mode
from .schema import Recipe
from .sections import Monitor, Section

class MeasuredConfig(Section):
    """How many trainings are compared: ``metric`` reduced over a run's epochs (``best``, ``last``,
    or its value ``at_epoch``), in the metric's own direction unless told otherwise."""

    metric: Monitor = "val_macro_f1"
    reduce: Literal["best", "last"] = "best"
    at_epoch: Optional[int] = Field(None, ge=1, description="compare the metric at this epoch instead")
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    heartbeat_seconds: int = Field(10, ge=1, description="a worker silent for 3 heartbeats is presumed dead")

    @property
    def maximize(self) -> bool:
        if self.direction == "auto":
            return resolve_mode(self.metric, "auto") == "max"
        return self.direction == "maximize"

    @property
    def objectives(self) -> list[tuple[str, bool]]:
        """(metric, maximize) of every objective: one, or a multi-objective sweep's."""
        return [(self.metric, self.maximize)]


class AdaptiveSeeds(Section):
    """Seeds added in rounds of ``step`` from ``min`` to ``max`` to each arm whose comparison with the
    baseline is not decided yet (``stats.sequential_seeds``)."""

    min: int = Field(3, ge=2)
    max: int = Field(20, ge=2)
    step: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.min > self.max:
            raise ValueError(f"study.seeds: min {self.min} is above max {self.max}")
        return self


class StudyConfig(MeasuredConfig):
    """A controlled comparison: every arm (a set of dotted overrides of the base recipe) is run
    once per seed and compared against the ``baseline`` arm, paired by seed: a fixed list of
    seeds, or seeds added until each arm is decided."""

    arms: dict[str, dict[str, Any]]
    baseline: str
    seeds: Annotated[
        Union[Annotated[list[int], Tag("list")], Annotated[AdaptiveSeeds, Tag("adaptive")]],
        Discriminator(lambda value: "adaptive" if isinstance(value, (dict, AdaptiveSeeds)) else "list"),
    ] = [0, 1, 2]

    alpha: float = Field(0.05, gt=0, lt=0.5, description="family-wise error rate of the table's verdicts (Holm over the arms)")
    margin: Optional[float] = Field(None, description="equivalence margin ±δ in the metric's units (two one-sided tests)")
    also: list[Monitor] = Field([], description="exploratory columns: other per-epoch values at the compared epoch, no verdict")
    parallel_seeds: Union[Literal["auto"], Annotated[int, Field(ge=1, le=64)]] = Field(
        "auto", description="a worker pops up to this many waiting seeds of one arm and trains them at once, as one vectorized "
        "network (the queue's setting, not a run's); auto: device.seeds_per_stack")  # fmt: skip
    split_follows_seed: Optional[bool] = Field(
        None, description="each seed draws its own train/validation split (data.split_seed = the seed); "
        "default: yes unless the recipe sets data.split_seed")  # fmt: skip

    @property
    def looks(self) -> Optional[list[int]]:
        """Seed counts at which an arm is compared with adaptive seeds; None for a fixed list
        (one comparison on all its seeds)."""
        if isinstance(self.seeds, list):
            return None
        return sorted(set(range(self.seeds.min, self.seeds.max, self.seeds.step)) | {self.seeds.max})

    @property
    def seeds_text(self) -> str:
        if isinstance(self.seeds, list):
            return f"{len(self.seeds)} seeds"
        return f"seeds added until decided (compared at {', '.join(map(str, self.looks))})"

    @property
    def seed_values(self) -> list[int]:
        """Every seed a run may have."""
        return list(self.seeds) if isinstance(self.seeds, list) else list(range(self.seeds.max))

    @model_validator(mode="after")
    def _consistent(self):
        if not self.arms:
            raise ValueError("study.arms must name at least one arm")
        for arm in self.arms:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", arm):
                raise ValueError(f"study.arms: arm name {arm!r} may hold only letters, digits, '.', '_' and '-' (it names run directories)")
        if self.baseline not in self.arms:
            raise ValueError(f"study.baseline '{self.baseline}' is not one of the arms ({', '.join(self.arms)})")
        if isinstance(self.seeds, list) and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError("study.seeds must list at least one seed, none twice")
        if self.margin is not None:
            if not self.margin > 0:
                raise ValueError(f"study.margin must be above 0 (a difference in {self.metric} that does not matter), got {self.margin}")
            if self.metric in BOUNDED_METRICS and self.margin >= 1:
                raise ValueError(f"study.margin {self.margin} is not below {self.metric}'s whole range (0 to 1): give it in the metric's units")
        return self


class SearchConfig(MeasuredConfig):
    """A sweep: configurations of the base recipe drawn from ``space`` (dotted key → distribution)
    and ``cocktail`` (regularizers the search may switch on, each with the keys it samples only
    when on; Kadra et al. 2021) and ``variants`` (named sets of overrides), one seed each, ranked by
    ``metric``; see ``search_space.py``."""

    space: dict[str, Any] = {}
    cocktail: Union[Literal["all"], dict[str, Any]] = Field({}, description="regularizers switched on or off, or all of them")
    variants: dict[str, Any] = {}
    sampler: Literal["grid", "random", "tpe"] = "tpe"
    seed: int = Field(0, description="the sampler's seed: the same recipe proposes the same configurations")
    trials: int = Field(20, ge=1, description="random and tpe: configurations tried (--trials)")
    pruner: Literal["none", "median", "successive_halving", "hyperband"] = "none"
    min_epochs: int = Field(1, ge=1, description="pruners: epochs every run gets before it can be stopped")
    reduction_factor: int = Field(3, ge=2, description="successive_halving and hyperband: 1/η of the runs go on at each rung")
    metrics: list[Monitor] = Field([], description="multi-objective: two or more metrics searched together (their Pareto front); "
                                   "each taken at the epoch where the first is best")  # fmt: skip
    directions: list[Literal["auto", "maximize", "minimize"]] = Field([], description="with metrics: one each (default auto)")

    @model_validator(mode="before")
    @classmethod
    def _first_metric_ranks(cls, data: Any) -> Any:
        """With ``metrics``, ``metric`` (what picks the compared epoch and is reported) is the first."""
        if isinstance(data, dict) and isinstance(data.get("metrics"), list) and data["metrics"] and "metric" not in data:
            data = {**data, "metric": data["metrics"][0]}
        return data

    @model_validator(mode="after")
    def _objectives(self):
        if self.metrics:
            if len(self.metrics) < 2 or len(set(self.metrics)) != len(self.metrics):
                raise ValueError("search.metrics: two or more different metrics (one metric: search.metric)")
            if self.metric != self.metrics[0]:
                raise ValueError(f"search.metric {self.metric} and search.metrics: give one of them (metrics ranks by its first)")
            if self.directions and len(self.directions) != len(self.metrics):
                raise ValueError(f"search.directions: one per metric ({len(self.metrics)}), got {len(self.directions)}")
            if self.pruner != "none":
                raise ValueError("search.pruner: pruners stop runs on one metric; a multi-objective sweep (search.metrics) takes none")
        return self

    @property
    def multi(self) -> bool:
        return bool(self.metrics)

    @property
    def objectives(self) -> list[tuple[str, bool]]:
        if not self.metrics:
            return [(self.metric, self.maximize)]
        directions = self.directions or ["auto"] * len(self.metrics)
        return [(m, resolve_mode(m, "auto") == "max" if d == "auto" else d == "maximize") for m, d in zip(self.metrics, directions)]


def with_amp(tree: dict, amp: str) -> dict:
    """A resolved plan whose ``train.amp: auto`` (in its base, or set by a study arm) becomes
    ``amp``: a study or sweep pins its precision when it is created (``device.pinned_amp``), so
    that workers on machines that would resolve ``auto`` differently never mix precisions within
    one table. An explicit value stays."""
    def pinned(train: dict) -> dict:
        return {**train, "amp": amp} if train.get("amp", "auto") == "auto" else train

    tree = {**tree, "train": pinned(tree["train"])}
    if "study" in tree:
        arms = {name: {**arm, **({"train.amp": amp} if arm.get("train.amp") == "auto" else {}),
                       **({"train": pinned(arm["train"])} if isinstance(arm.get("train"), dict) and "amp" in arm["train"] else {})}
                for name, arm in tree["study"]["arms"].items()}  # fmt: skip
        tree["study"] = {**tree["study"], "arms": arms}
    return tree


class StudyRecipe(Recipe):
    study: StudyConfig

    @model_validator(mode="after")
    def _compile_runs_alone(self) -> "StudyRecipe":
        if self.train.compile is True and self.study.parallel_seeds not in (1, "auto"):
            raise ValueError("train.compile compiles one network; study.parallel_seeds stacks seeds under vmap, which it does not "
                             "compile: set one of them off")  # fmt: skip
        if self.optim.sam is not None and self.study.parallel_seeds not in (1, "auto"):
            raise ValueError("optim.sam takes two passes a step, which a stack of study.parallel_seeds does not: set one of them off")
        return self


class SweepRecipe(Recipe):
    search: SearchConfig
