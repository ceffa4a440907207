"""The data a run trains and validates on: the recipe's data set, checked against the recipe, split
(stratified, by ``data.split_seed``) and put on the device once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .. import data as data_sources
from ..data.dataset import Samples
from ..data.memory import require
from ..data.split import stratified_split
from ..errors import UserError
from ..inference.decisions import ValidationMixtures
from ..inference.predictor import targets_for
from ..recipe import Recipe


def check_trainable(recipe: Recipe, data: Samples) -> None:
    """Refuse, before anything trains, data and settings that cannot make sense together."""
    if len(data.classes) < 2:
        raise UserError(f"{recipe.data.path or recipe.data.source}: {len(data.classes)} class found; a classifier needs at least 2")
    multilabel = data.multilabel or recipe.polyphonic
    if multilabel and not recipe.loss.sigmoid:
        raise UserError(f"loss.name: {recipe.loss.name} is a softmax loss, but this recipe is multi-label "
                        "(multi-hot data, augment.mixtures or evaluate.threshold: tuned); use bce")  # fmt: skip
    monitors = {"train.early_stopping.monitor": recipe.train.early_stopping.monitor, "schedule.monitor": getattr(recipe.schedule, "monitor", "")}
    for key, monitor in monitors.items():
        if monitor.startswith("val_mix_") and not recipe.polyphonic:
            raise UserError(f"{key}: {monitor} scores validation mixtures, which this recipe has none of "
                            "(set augment.mixtures or evaluate.threshold: tuned)")  # fmt: skip
    if recipe.evaluate.logit_adjustment is not None and (multilabel or recipe.loss.sigmoid):
        raise UserError(f"evaluate.logit_adjustment: needs single-label data and a softmax loss (loss.name={recipe.loss.name})")
    batch_bytes = recipe.train.batch_size * data.x[0].numel() * 4 * 3  # float32: the batch, its augmented and its mixed copy
    require(batch_bytes, f"train.batch_size: {recipe.train.batch_size} samples of {tuple(data.x.shape[1:])}")


@dataclass
class Split:
    """The data a run trains and validates on, loaded once (the members of a stack share it)."""

    train_set: Samples
    val_set: Samples
    train_data: Samples  # the training split on the device
    x_val: torch.Tensor
    y_val: torch.Tensor
    mixtures: Optional[ValidationMixtures]

    @property
    def classes(self) -> list[str]:
        return self.train_set.classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_set.x.shape[1:])

    @classmethod
    def load(cls, recipe: Recipe, device: torch.device, full: Optional[Samples] = None) -> "Split":
        """The recipe's split of its data (``full``: the data set, when it is loaded already)."""
        if recipe.data.source == "test_folder":
            raise UserError("data.source: test_folder is unlabelled; train on image_folder, cifar, tiny_imagenet or digits")
        full = full if full is not None else data_sources.load(recipe.data, "train")
        check_trainable(recipe, full)
        train_set, val_set = stratified_split(full, recipe.data.val_fraction, recipe.data.split_seed)
        x_val, y_val = val_set.x.to(device), val_set.y.to(device)
        mixtures = ValidationMixtures(x_val, targets_for(val_set.y, len(full.classes)), recipe.evaluate) if recipe.polyphonic else None
        variants = None if train_set.variants is None else train_set.variants.to(device)
        train_data = Samples(train_set.x.to(device), train_set.y.to(device), full.classes, train_set.ids, variants, train_set.variant_p)
        return cls(train_set, val_set, train_data, x_val, y_val, mixtures)
