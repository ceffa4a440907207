"""Seed-to-seed statistics for studies: percentile-bootstrap confidence intervals (Efron &
Tibshirani 1993) and the paired sign-flip permutation test (Fisher's randomization test), exact
for up to 16 seeds."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000


@dataclass
class Interval:
    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "n/a"
        return f"{self.mean:.4f} ({self.low:.4f}–{self.high:.4f})"


def bootstrap_interval(values, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Mean and percentile-bootstrap interval of the mean."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return Interval(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(RESAMPLES, len(values)), replace=True).mean(axis=1)
    tail = (1 - confidence) / 2
    return Interval(float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))


def paired_permutation_p(differences) -> float:
    """Two-sided p-value that the mean paired difference is zero, flipping each pair's sign."""
    d = np.asarray(differences, dtype=float)
    if len(d) == 0 or np.allclose(d, 0):
        return 1.0
    observed = abs(d.mean())
    if len(d) <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(0).choice((1.0, -1.0), size=(RESAMPLES, len(d)))
    flipped = np.abs((signs * d).mean(axis=1))
    return float((flipped >= observed - 1e-12).mean())


def verdict(mean_difference: float, p_value: float, n_seeds: int, maximize: bool, alpha: float = 0.05) -> str:
    if p_value < alpha:
        better = mean_difference > 0 if maximize else mean_difference < 0
        return "better than baseline" if better else "worse than baseline"
    if 2.0 / 2**n_seeds >= alpha:  # the exact test's smallest possible p-value
        needed = math.ceil(math.log2(2 / alpha))
        return f"no detectable difference with {n_seeds} seeds (p < {alpha} needs ≥ {needed})"
    return f"no detectable difference with {n_seeds} seeds"
