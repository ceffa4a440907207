"""Seed-to-seed statistics for studies: percentile-bootstrap confidence intervals (Efron &
Tibshirani 1993), the paired sign-flip permutation test (Fisher's randomization test), exact
for up to 16 seeds, and the seeds a comparison needs (a power analysis, as Colas et al. 2018 do
for deep RL)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

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
        return f"no detectable difference with {n_seeds} seeds (p < {alpha:.3g} needs ≥ {needed})"
    return f"no detectable difference with {n_seeds} seeds"


def seeds_needed(differences, alpha: float = 0.05, power: float = 0.8, most: int = 1000) -> int | None:
    """Seeds for the paired comparison to detect the observed mean difference with ``power`` at
    level ``alpha``: the paired t-test's power from the noncentral t distribution (Colas, Sigaud &
    Oudeyer 2018, "How many random seeds?"), with the observed standard deviation; at least what
    the exact sign-flip test needs to reach ``alpha`` at all. None with fewer than two differences,
    none that differ, or more than ``most`` needed."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    if len(d) < 2 or np.allclose(d, d[0]):
        return None
    effect = abs(d.mean()) / d.std(ddof=1)
    floor = math.ceil(math.log2(2 / alpha))
    for n in range(2, most + 1):
        t = stats.t.ppf(1 - alpha / 2, n - 1)
        shift = effect * math.sqrt(n)
        if 1 - stats.nct.cdf(t, n - 1, shift) + stats.nct.cdf(-t, n - 1, shift) >= power:
            return max(n, floor)
    return None


def sequential_stop(differences, looks: list[int], alpha: float) -> tuple[int, bool]:
    """Where an arm's seeds stop: ``(seeds, decided)``. ``differences`` are its paired differences
    in seed order; at each look (a seed count) the exact test decides at level ``alpha`` (the
    study's 0.05 split over its looks), or the arm stops as futile when even the last look would
    not give 80 % power at the observed difference (stopping for futility never adds false
    positives). A look beyond the differences given is where the arm must go next."""
    d = [x for x in differences if not math.isnan(x)]
    for seeds in looks:
        if len(d) < seeds:
            return seeds, False
        if paired_permutation_p(d[:seeds]) < alpha:
            return seeds, True
        needed = seeds_needed(d[:seeds], alpha)
        if needed is None or needed > looks[-1]:
            return seeds, False
    return looks[-1], False
