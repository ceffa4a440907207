"""Multi-label decisions on long recordings: window scores (the best of a moment's views: the
downmix and each channel) aggregated per excerpt (mean, max, or the mean of the top k windows),
then a threshold — one global value, or one per class tuned to maximize F1 on validation
mixtures."""

from __future__ import annotations

import numpy as np
import torch

from .. import metrics
from ..data.mixing import validation_mixtures

CANDIDATES = np.round(np.linspace(0.02, 0.98, 49), 4)


def best_view(scores: torch.Tensor, moment: torch.Tensor, owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, the highest score among the views (downmix, channels) of each moment: ``[M, C]``
    and the excerpt each moment belongs to ``[M]``. An instrument panned to one side is heard
    louder in its channel than in the downmix."""
    count = int(moment.max()) + 1
    index = moment[:, None].expand_as(scores)
    best = torch.full((count, scores.shape[1]), -torch.inf, dtype=scores.dtype).scatter_reduce(0, index, scores, "amax")
    return best, torch.empty(count, dtype=owner.dtype).scatter_(0, moment, owner)


def aggregate_windows(scores: torch.Tensor, owner: torch.Tensor, how: str, top_k: int = 2) -> torch.Tensor:
    """``scores`` ``[W, C]`` of windows belonging to excerpts ``owner`` ``[W]`` → ``[E, C]``."""
    rows = []
    for excerpt in range(int(owner.max()) + 1):
        windows = scores[owner == excerpt]
        if how == "max":
            rows.append(windows.max(0).values)
        elif how == "topk":
            rows.append(windows.topk(min(top_k, len(windows)), dim=0).values.mean(0))
        else:
            rows.append(windows.mean(0))
    return torch.stack(rows)


def tune_thresholds(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per class, the candidate threshold with the highest F1 (the lowest such, on ties)."""
    chosen = np.empty(probs.shape[1])
    for c in range(probs.shape[1]):
        predicted = probs[:, c][None, :] >= CANDIDATES[:, None]  # [candidates, N]
        truth = targets[:, c][None, :] > 0.5
        tp = (predicted & truth).sum(1)
        f1 = 2 * tp / np.maximum(predicted.sum(1) + truth.sum(1), 1)
        chosen[c] = CANDIDATES[int(np.argmax(f1))]
    return chosen


class ValidationMixtures:
    """Fixed polyphonic validation data: ``config.tuning_mixtures`` mixtures of validation clips
    (``augment.mixtures.validation_mixtures``), drawn once. ``score`` rates a model on them as
    excerpts are rated — a 3-second mixture is one window, so aggregation leaves it as is — at
    the recipe's threshold, or at per-class thresholds tuned on these mixtures (as ``evaluate``
    uses them); computed every epoch it is the task-level monitor ``val_mix_*``."""

    def __init__(self, x_val: torch.Tensor, targets_val: torch.Tensor, config):
        self.x, targets = validation_mixtures(x_val, targets_val, config.tuning_mixtures, config.tuning_max_sources, config.tuning_gain_db)
        self.targets = targets.numpy().astype(np.int64)
        self.tuned = config.threshold == "tuned"
        self.threshold = config.threshold

    def score(self, predict) -> tuple[np.ndarray, dict]:
        """``predict`` (features → probabilities) scored on the mixtures: the thresholds applied
        (one per class) and the metrics at them."""
        probs = predict(self.x)
        thresholds = tune_thresholds(probs, self.targets) if self.tuned else np.full(probs.shape[1], self.threshold)
        return thresholds, metrics.summary(self.targets, probs, multilabel=True, threshold=thresholds)
