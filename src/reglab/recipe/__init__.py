"""Recipes: the schema of a run (``schema.py``, ``augment.py``), of a study or sweep
(``plans.py``), the section machinery (``sections.py``), reading files and overrides
(``loading.py``) and one-line validation errors (``errors.py``); ``training.py`` holds the optim,
schedule and train sections."""

from .augment import (AugmentConfig, FilterAugmentConfig, MinorityConfig, MixConfig, MixturesConfig, MulticropConfig,
                      SpecAugmentConfig)  # fmt: skip
from .loading import (apply_overrides, load_base_recipe, load_plan, load_recipe, load_study_recipe, parse_override, read_recipe_tree,
                      save_recipe, set_dotted, validate, with_overrides)  # fmt: skip
from .plans import AdaptiveSeeds, MeasuredConfig, SearchConfig, StudyConfig, StudyRecipe, SweepRecipe, with_amp
from .schema import DataConfig, EvaluateConfig, FrontendConfig, NoScheduleConfig, Recipe, TrainConfig, section
from .sections import Monitor, Section

__all__ = [
    "AdaptiveSeeds", "AugmentConfig", "DataConfig", "MinorityConfig", "EvaluateConfig", "FilterAugmentConfig", "FrontendConfig", "MeasuredConfig",
    "MixConfig", "MixturesConfig", "Monitor", "MulticropConfig", "NoScheduleConfig", "Recipe", "SearchConfig", "Section",
    "SpecAugmentConfig", "StudyConfig", "StudyRecipe", "SweepRecipe", "TrainConfig", "apply_overrides", "load_base_recipe", "load_plan",
    "load_recipe", "load_study_recipe", "parse_override", "read_recipe_tree", "save_recipe", "section", "set_dotted",
    "validate", "with_amp", "with_overrides",
]  # fmt: skip
