"""``search.cocktail: all``: every regularizer reglab has that applies to the base recipe, each
switched on or off by the search with the strength it samples only when on — the regularization
cocktail of Kadra et al. 2021 ("Well-tuned simple nets excel on tabular datasets"), whose ranges
are taken where they give one (weight decay, dropout, mixup). Regularizers that exclude each other
(the two weight averages; the two augmentation policies; mixup and CutMix, as Kadra et al.'s
augmentation choice) are one variant each. The expansion is written into the sweep's resolved
recipe, so a saved sweep keeps the cocktail it ran with."""

from __future__ import annotations

import math
from typing import Any, Callable

from ..recipe import Recipe

def always(recipe: Recipe) -> bool:
    return True


def images(recipe: Recipe) -> bool:
    return not recipe.data.is_audio


def audio(recipe: Recipe) -> bool:
    return recipe.data.is_audio


def residual(recipe: Recipe) -> bool:
    """Stochastic depth and DropBlock: ResNet-18's (EfficientNet-B0 has its own stochastic depth on by default)."""
    return recipe.model.name == "resnet18"


def members(base: Recipe) -> dict[str, tuple[Any, Callable[[Recipe], bool]]]:
    """Cocktail key → (what it samples when on, whether it applies to a recipe)."""
    dropout = getattr(base.model, "dropout", None)
    return {
        "optim.weight_decay": ({"loguniform": [1.0e-5, 1.0e-1]}, always),  # decoupled (Loshchilov & Hutter 2019); Kadra et al.'s range
        "optim.l2": ({"loguniform": [1.0e-6, 1.0e-2]}, always),
        "optim.l1": ({"loguniform": [1.0e-7, 1.0e-4]}, always),
        "optim.clip_grad_norm": ({"loguniform": [0.1, 10.0]}, always),  # Pascanu et al. 2013
        "optim.max_norm": ({"uniform": [1.0, 5.0]}, always),  # Srivastava et al. 2014 (they use 3–4)
        "optim.sam": ({"rho": {"loguniform": [0.01, 0.5]}}, always),  # Foret et al. 2021
        "model.dropout": ({"rate": {"uniform": [0.0, 0.8]}, "kind": {"choice": ["standard", "maxdropout"]},  # Kadra et al.'s range;
                           "where": dropout.where if dropout else "head"}, always),  # MaxDropout: Santos & Papa 2020  # fmt: skip
        "model.drop_path": ({"uniform": [0.0, 0.3]}, residual),  # Huang et al. 2016
        "model.dropblock": ({"p": {"uniform": [0.05, 0.2]}, "block_size": {"choice": [3, 5]}}, residual),  # Ghiasi et al. 2018
        "loss.label_smoothing": ({"uniform": [0.0, 0.2]}, always),  # Szegedy et al. 2016
        "augment.erasing": ({"p": {"uniform": [0.1, 0.5]}}, images),  # cutout (DeVries & Taylor 2017), Kadra et al.'s
        "augment.specaugment": ({"freq_width": {"int": [4, 16]}, "time_width": {"int": [10, 40]}}, audio),  # Park et al. 2019
    }


def variants(base: Recipe) -> dict[str, tuple[dict, Callable[[Recipe], bool]]]:
    """Variant name → (its options, whether it applies): regularizers that exclude each other, each
    option setting the others off."""
    epochs, lr = base.train.epochs, base.optim.lr
    averaging = {"none": {"train.ema_decay": None, "train.swa": None},
                 "ema": {"train.swa": None, "train.ema_decay": {"uniform": [0.99, 0.999]}},  # Polyak & Juditsky 1992
                 "swa": {"train.ema_decay": None, "train.swa.start_epoch": max(1, math.ceil(0.75 * epochs)),  # Izmailov et al. 2018
                         "train.swa.lr": {"loguniform": [lr / 20, lr / 2]}, "train.early_stopping.restore_best": False}}  # fmt: skip
    mixing = {"none": {"augment.mix": None},
              "mixup": {"augment.mix.cutmix_alpha": 0.0, "augment.mix.mixup_alpha": {"uniform": [0.1, 1.0]}},  # Zhang et al. 2018
              "cutmix": {"augment.mix.mixup_alpha": 0.0, "augment.mix.cutmix_alpha": {"uniform": [0.1, 1.0]}}}  # Yun et al. 2019  # fmt: skip
    policy = {"none": {"augment.randaugment": None, "augment.trivialaugment": False},  # Cubuk et al. 2020; Müller & Hutter 2021
              "randaugment": {"augment.trivialaugment": False, "augment.randaugment.n": {"int": [1, 3]}, "augment.randaugment.m": {"int": [5, 15]}},
              "trivialaugment": {"augment.randaugment": None, "augment.trivialaugment": True}}  # fmt: skip
    return {"weight averaging": (averaging, always), "mixing": (mixing, always), "augmentation policy": (policy, images)}


def every_regularizer(base: Recipe, variants_given: dict, accepts: Callable[[dict], bool]) -> tuple[dict, dict]:
    """The cocktail and variants ``all`` stands for on this base recipe: each member (and variant
    option) that applies to its model and data and whose overrides the base ``accepts``; the
    user's own variants are kept (a variant of the same name replaces the built-in one)."""
    cocktail = {key: spec for key, (spec, applies) in members(base).items() if applies(base) and accepts({key: spec})}
    chosen = {}
    for name, (options, applies) in variants(base).items():
        kept = {label: option for label, option in options.items() if applies(base) and accepts(option)}
        if len(kept) > 1:
            chosen[name] = kept
    return cocktail, {**chosen, **variants_given}
