"""A trained run loaded for prediction: its recipe, classes and final checkpoint, the model's batch
norms folded once for every prediction it makes, and the decisions it saved (logit adjustment,
thresholds)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .. import data as data_sources
from ..data.dataset import Excerpts
from ..data.layout import detect_source
from ..device import autocast, pick_device
from ..errors import UserError
from ..plugins import DATA_SOURCES, is_plugin
from ..models import create_model
from ..models.folding import folded
from ..rundir import RunDir
from . import logit_adjustment
from .decisions import aggregate_windows, best_view
from .predictor import predict_logits, probabilities


class TrainedRun:
    """A run directory with its model rebuilt from the recipe and the final checkpoint, its batch
    norms folded once for every prediction it makes."""

    def __init__(self, path: str | Path, device: str = "auto"):
        self.run = RunDir.open(path)
        self.recipe = self.run.recipe()
        self.meta = self.run.meta()
        self.classes: list[str] = self.meta["classes"]
        self.device = pick_device(device)
        input_shape = tuple(self.meta["input_shape"])
        self.model = create_model(self.recipe.model, input_shape, len(self.classes), self.recipe.data)
        checkpoint = self.meta.get("final_checkpoint", "last.pt")
        try:
            self.model.load_state_dict(self.run.load_state(checkpoint))
        except RuntimeError:  # missing or extra keys, wrong shapes
            raise UserError(f"{self.run.path / checkpoint}: does not fit the run's model (recipe.yaml or meta.json changed?)") from None
        self.model = folded(self.model.to(self.device).eval())

    def load(self, path, source: Optional[str] = None, labels: Optional[str] = None):
        """``path`` read with the run's input size and front end, labelled in the run's classes:
        ``Samples``, or windowed ``Excerpts`` for long recordings. A run on a user's data source
        reads ``path`` as the split its loader is asked for (``test``)."""
        if source is None and is_plugin(self.recipe.data.source, DATA_SOURCES):
            data = data_sources.load(self.recipe.data, str(path), classes=self.classes)
        elif (source or detect_source(path)) == "irmas_test":
            config = self.recipe.data.model_copy(update={"source": "irmas_test", "path": str(path), "classes": self.classes})
            data = data_sources.load_excerpts(config, self.classes, self.recipe.evaluate.channels)
        else:
            config = self.recipe.data.model_copy(update={"source": source or detect_source(path), "path": str(path), "labels": labels,
                                                         "classes": self.classes})  # fmt: skip
            data = data_sources.load(config, "test", classes=self.classes)
        shape = tuple((data.windows if isinstance(data, Excerpts) else data.x).shape[1:])
        if shape != tuple(self.meta["input_shape"]):
            raise UserError(f"{path}: inputs are {shape}, the model expects {tuple(self.meta['input_shape'])}")
        return data

    def predict(self, x) -> np.ndarray:
        """Class probabilities ``[N, C]`` of inputs shaped as the run's (``[N, C, H, W]`` uint8 images
        or float features; an array or a tensor), logit-adjusted when the recipe says so."""
        x = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
        if tuple(x.shape[1:]) != tuple(self.meta["input_shape"]):
            raise UserError(f"predict: inputs are {tuple(x.shape[1:])}, the model expects {tuple(self.meta['input_shape'])}")
        probs = self.window_probabilities(x).numpy()
        return probs if self.recipe.evaluate.logit_adjustment is None else self.logit_adjusted(probs)

    def window_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities of every input in ``x`` (images, clips or windows), on the CPU."""
        amp = autocast(self.device, self.recipe.train.amp, self.recipe.model.name)
        logits = predict_logits(self.model, x, self.recipe.train.eval_batch_size, amp)
        return probabilities(logits, self.recipe.loss.sigmoid).cpu()

    def probabilities(self, data) -> np.ndarray:
        """Class probabilities per sample (logit-adjusted when the recipe says so); per excerpt
        (windows aggregated) for ``Excerpts``."""
        config = self.recipe.evaluate
        if isinstance(data, Excerpts):
            probs, owner = self.moment_probabilities(data)
            return aggregate_windows(probs, owner, config.aggregate, config.top_k).numpy()
        return self.predict(data.x)

    def moment_probabilities(self, data: Excerpts) -> tuple[torch.Tensor, torch.Tensor]:
        """Per window moment of long excerpts: the best of its views' probabilities ``[M, C]``, and
        the excerpt it belongs to ``[M]`` (moments in time order within an excerpt)."""
        return best_view(self.window_probabilities(data.windows), data.moment, data.owner)

    def logit_adjusted(self, probs: np.ndarray) -> np.ndarray:
        """``probs`` adjusted by the τ and training counts the run saved (``logit_adjustment.json``)."""
        saved = self.run.read_json("logit_adjustment.json")
        prior = logit_adjustment.log_prior([saved["train_counts"][name] for name in self.classes])
        return logit_adjustment.adjust(probs, prior, saved["tau"])

    def thresholds(self):
        """The recipe's global threshold, or the per-class ones tuned after training."""
        if self.recipe.evaluate.threshold != "tuned":
            return self.recipe.evaluate.threshold
        tuned = self.run.read_json("thresholds.json")
        return np.array([tuned[name] for name in self.classes])
