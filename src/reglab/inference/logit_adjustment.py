"""Post-hoc logit adjustment (Menon et al. 2021, "Long-tail learning via logit adjustment", §4):
a single-label model's scores become log p(y|x) − τ·log π_y, π the training split's class
frequencies, which moves decisions toward rare classes. A model trained on few images of a class
is less sure of that class on new images than on the ones it has seen, even when balanced sampling
showed it every class equally often.

τ is fitted on validation by the class-balanced log-likelihood: each class's samples are weighted
1/n_class, so a validation split that mirrors the training imbalance stands in for a balanced test
set (the setting where macro F1 and balanced accuracy are the goal). The same paper's loss, which
adds τ·log π to the logits while training, is ``loss.logit_adjustment`` (``losses.py``)."""

from __future__ import annotations

import numpy as np

# candidate τ, ordered by distance from 0 so that ties keep the smaller adjustment
TAUS = sorted(np.round(np.linspace(-1.0, 2.0, 61), 2), key=abs)
SMALLEST = np.finfo(np.float32).tiny


def log_prior(counts) -> np.ndarray:
    """log π_c of the training split's class counts (a class with no samples counts as one)."""
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return np.log(counts / counts.sum())


def adjust(probs: np.ndarray, log_prior_: np.ndarray, tau: float) -> np.ndarray:
    """Probabilities ``[N, C]`` renormalized after subtracting τ·log π from their logarithms."""
    scores = np.log(np.maximum(probs, SMALLEST)) - tau * log_prior_
    scores -= scores.max(axis=1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=1, keepdims=True)


def balanced_log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood with every class's samples weighted 1/n_class (classes absent
    from ``y`` play no part)."""
    per_class = np.bincount(y, minlength=probs.shape[1])
    weights = 1.0 / per_class[y]
    nll = -np.log(np.maximum(probs[np.arange(len(y)), y], SMALLEST))
    return float((weights * nll).sum() / weights.sum())


def fit_tau(probs: np.ndarray, y: np.ndarray, log_prior_: np.ndarray) -> float:
    """The candidate τ in [−1, 2] (steps of 0.05) with the lowest class-balanced log loss."""
    losses = [balanced_log_loss(adjust(probs, log_prior_, tau), y) for tau in TAUS]
    return float(TAUS[int(np.argmin(losses))])
