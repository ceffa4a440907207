"""Decisions fitted on validation after training: per-class thresholds for multi-label scores
(tuned on validation mixtures) and post-hoc logit adjustment of single-label scores (Menon et al.
2021). Each is saved in the run directory for ``evaluate`` and ``predict`` to apply."""

from __future__ import annotations

import numpy as np
import torch

from . import logit_adjustment
from .. import metrics
from .decisions import ValidationMixtures


def fit_thresholds(run, predict, mixtures: ValidationMixtures, classes: list[str]) -> dict:
    """Per-class thresholds tuned on validation mixtures, saved as ``thresholds.json``; returns
    the mixtures' metrics at those thresholds."""
    thresholds, scores = mixtures.score(predict)
    run.write_json("thresholds.json", dict(zip(classes, thresholds.tolist())))
    return scores


def fit_logit_adjustment(run, setting, counts: torch.Tensor, val_probs: np.ndarray, val_set) -> dict:
    """τ (fitted on validation for ``setting`` 'fit', else as given) and the training split's class
    counts, saved as ``logit_adjustment.json``; returns τ and the adjusted validation scores."""
    prior = logit_adjustment.log_prior(counts.cpu().numpy())
    y = val_set.y.numpy()
    tau = logit_adjustment.fit_tau(val_probs, y, prior) if setting == "fit" else float(setting)
    run.write_json("logit_adjustment.json", {"tau": tau, "train_counts": dict(zip(val_set.classes, counts.tolist()))})
    adjusted = logit_adjustment.adjust(val_probs, prior, tau)
    scores = {"logit_adjustment_tau": tau, "val_balanced_log_loss": logit_adjustment.balanced_log_loss(val_probs, y),
              "adjusted_balanced_log_loss": logit_adjustment.balanced_log_loss(adjusted, y)}  # fmt: skip
    scores.update({f"adjusted_{k}": v for k, v in metrics.summary(y, adjusted).items()})
    return scores
