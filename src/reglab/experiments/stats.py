"""Seed-to-seed statistics for studies: percentile-bootstrap confidence intervals (Efron &
Tibshirani 1993); the paired sign-flip permutation test (Fisher's randomization test), exact up to
24 seeds; equivalence by two one-sided tests (Schuirmann 1987; Lakens 2017); a table's arms as
one family, Holm's step-down adjustment over arms (Holm 1979) and Bonferroni over the looks of
adaptive seeds; and the seeds a comparison needs (a power analysis, as Colas et al. 2018 do for
deep RL)."""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import special

RESAMPLES = 10_000
EXACT_UP_TO = 24  # seeds; beyond, RESAMPLES random sign flips
POWER = 0.8
FUTILITY_POWER = 0.2  # adaptive seeds: an arm stops as futile when its last look would decide it with less chance


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


# --- the sign-flip test ----------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def sign_vectors(length: int) -> np.ndarray:
    """Every vector of ``length`` signs ±1, a row each (2^length rows)."""
    return np.array(list(itertools.product((1.0, -1.0), repeat=length))).reshape(2**length, length)


def signed_sums(x: np.ndarray) -> np.ndarray:
    """``Σ sᵢxᵢ`` for every sign vector ``s`` (2^len(x) of them), added left to right."""
    if len(x) == 0:
        return np.zeros(1)
    return (sign_vectors(len(x)) * x).cumsum(axis=1)[:, -1]


def sign_flip_p(x, alternative: str = "two-sided") -> float:
    """p-value of the sign-flip test that ``x`` is symmetric about zero: the share of sign flips
    whose sum is at least as extreme (``greater``: as large, ``less``: as small, ``two-sided``: as
    large in size). Exact up to ``EXACT_UP_TO`` values, by meeting in the middle (the sums of the
    two halves' flips, one sorted and searched)."""
    x = np.asarray(x, dtype=float)
    observed = float(x.sum())
    tolerance = 1e-9 * max(1.0, float(np.abs(x).sum()))
    if len(x) > EXACT_UP_TO:
        flipped = np.random.default_rng(0).choice((1.0, -1.0), size=(RESAMPLES, len(x))) @ x
        at_least = lambda t: float((flipped >= t).mean())  # noqa: E731
        at_most = lambda t: float((flipped <= t).mean())  # noqa: E731
    else:
        half = len(x) // 2
        left, right = signed_sums(x[:half]), np.sort(signed_sums(x[half:]))
        total = len(left) * len(right)
        at_least = lambda t: float((len(right) - np.searchsorted(right, t - left, "left")).sum() / total)  # noqa: E731
        at_most = lambda t: float(np.searchsorted(right, t - left, "right").sum() / total)  # noqa: E731
    if alternative == "greater":
        return at_least(observed - tolerance)
    if alternative == "less":
        return at_most(observed + tolerance)
    if abs(observed) <= tolerance:
        return 1.0
    return min(1.0, at_least(abs(observed) - tolerance) + at_most(-abs(observed) + tolerance))


def close_to(x: np.ndarray, value: float) -> bool:
    """``np.allclose(x, value)`` for a scalar ``value``, without its overhead (the simulated tables
    call it hundreds of thousands of times)."""
    return bool(np.all(np.abs(x - value) <= 1e-8 + 1e-5 * abs(value)))


def paired_permutation_p(differences) -> float:
    """Two-sided p-value that the mean paired difference is zero, flipping each pair's sign."""
    d = np.asarray(differences, dtype=float)
    if len(d) == 0 or close_to(d, 0.0):
        return 1.0
    return sign_flip_p(d)


def equivalence_p(differences, margin: float) -> float:
    """Two one-sided tests (Schuirmann 1987) with the sign-flip test: the larger p of "the mean
    difference is at most −margin" and "at least +margin"; below α, the difference lies within
    ±margin at level α."""
    d = np.asarray(differences, dtype=float)
    if len(d) == 0:
        return 1.0
    return max(sign_flip_p(d + margin, "greater"), sign_flip_p(d - margin, "less"))


def exact_floor(alpha: float, sides: int = 2) -> int:
    """The fewest pairs with which the exact sign-flip test can give p < alpha (its smallest
    p-value is sides / 2^n)."""
    return math.floor(math.log2(sides / alpha)) + 1


# --- power -----------------------------------------------------------------------------------


def spread(differences) -> Optional[tuple[np.ndarray, float, float]]:
    """``(finite differences, mean, standard deviation)``; None with fewer than two, or none that differ."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    if len(d) < 2 or close_to(d, d[0]):
        return None
    return d, float(d.mean()), float(d.std(ddof=1))


def first_enough(power: np.ndarray, n: np.ndarray, floor: int, most: int, wanted: float = POWER) -> Optional[int]:
    enough = np.nonzero(power >= wanted)[0]
    if len(enough) == 0:
        return None
    needed = max(int(n[enough[0]]), floor)
    return needed if needed <= most else None


def seeds_needed(differences, alpha: float = 0.05, most: int = 1000, power: float = POWER) -> Optional[int]:
    """Seeds for the paired comparison to detect the observed mean difference with 80 % power at
    level ``alpha``: the paired t-test's power from the noncentral t distribution (Colas, Sigaud &
    Oudeyer 2018, "How many random seeds?"), with the observed standard deviation; at least what
    the exact sign-flip test needs to reach ``alpha`` at all. None with fewer than two differences,
    none that differ, or more than ``most`` needed."""
    observed = spread(differences)
    if observed is None:
        return None
    _, mean, sd = observed
    n = np.arange(2, most + 1)
    critical, shift = special.stdtrit(n - 1, 1 - alpha / 2), abs(mean) / sd * np.sqrt(n)  # t's quantile
    reached = 1 - special.nctdtr(n - 1, shift, critical) + special.nctdtr(n - 1, shift, -critical)  # noncentral t's cdf
    return first_enough(reached, n, exact_floor(alpha), most, power)


def seeds_for_equivalence(differences, margin: float, alpha: float = 0.05, most: int = 1000, power: float = POWER) -> Optional[int]:
    """Seeds for two one-sided tests at level ``alpha`` to show the difference within ±margin with
    80 % power, at the observed mean difference and spread (the noncentral-t approximation of
    TOST's power, Chow & Liu 2008); None when the observed difference is outside the margin."""
    observed = spread(differences)
    if observed is None:
        return None
    _, mean, sd = observed
    if abs(mean) >= margin:
        return None
    n = np.arange(2, most + 1)
    critical, scale = special.stdtrit(n - 1, 1 - alpha), np.sqrt(n) / sd
    reached = special.nctdtr(n - 1, (mean - margin) * scale, -critical) - special.nctdtr(n - 1, (mean + margin) * scale, critical)
    return first_enough(reached, n, exact_floor(alpha, sides=1), most, power)


# --- the table's family ----------------------------------------------------------------------


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): the i-th smallest times (m − i + 1), made
    non-decreasing; rejecting where the adjusted p is below α keeps the chance of any false
    rejection among the m at most α, whatever their dependence."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted, running = [1.0] * m, 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass
class Comparison:
    """One arm against the baseline, within the table's family."""

    seeds: int  # paired differences
    mean: float  # their mean at the arm's last look
    p_value: float  # the exact test's, at the arm's last look
    p_adjusted: float  # Holm over the arms of the sequential p (Bonferroni over looks)
    equivalence_p: Optional[float]
    equivalence_adjusted: Optional[float]
    outcome: str  # better | worse | equivalent | undecided
    level: float  # the level each look of an undecided arm must reach for a difference
    equivalence_level: float  # ... and for equivalence


def compare_family(differences: dict[str, list], alpha: float = 0.05, looks: Optional[list[int]] = None,
                   maximize: bool = True, margin: Optional[float] = None) -> dict[str, Comparison]:  # fmt: skip
    """Every arm's paired differences from the baseline as one family: each arm is tested at every
    look it has reached (``looks``: the seed counts of adaptive seeds; None: one test on all its
    pairs), its sequential p-value is the smallest look's p times the number of looks (Bonferroni,
    Armitage et al. 1969), and Holm's adjustment over the arms keeps the chance of any false
    better/worse verdict in the table at most ``alpha`` — and, with a ``margin``, of any false
    "equivalent" (two one-sided tests, the same adjustment). Closed testing makes the pair valid
    together: an arm rejected at any look passes its share of α to the others (Maurer & Bretz 2013)."""
    count = len(looks) if looks else 1
    arms, sequential, sequential_eq, last = list(differences), [], [], {}
    for arm in arms:
        d = np.asarray(differences[arm], dtype=float)
        d = d[~np.isnan(d)]
        reached = [n for n in looks if n <= len(d)] if looks else [len(d)] if len(d) else []
        p = [paired_permutation_p(d[:n]) for n in reached]
        sequential.append(min(1.0, count * min(p)) if p else 1.0)
        eq = [equivalence_p(d[:n], margin) for n in reached] if margin else []
        sequential_eq.append(min(1.0, count * min(eq)) if eq else 1.0)
        n = reached[-1] if reached else len(d)
        last[arm] = (n, float(d[:n].mean()) if n else math.nan, p[-1] if p else paired_permutation_p(d),
                     eq[-1] if eq else (equivalence_p(d, margin) if margin and len(d) else None))  # fmt: skip
    adjusted, adjusted_eq = holm(sequential), holm(sequential_eq)
    open_difference = max(1, sum(p >= alpha for p in adjusted))
    open_equivalence = max(1, sum(p >= alpha for p in adjusted_eq))
    family = {}
    for i, arm in enumerate(arms):
        n, mean, p, eq = last[arm]
        if adjusted[i] < alpha:
            outcome = "better" if (mean > 0) == maximize else "worse"
        elif margin and adjusted_eq[i] < alpha:
            outcome = "equivalent"
        else:
            outcome = "undecided"
        family[arm] = Comparison(n, mean, p, adjusted[i], eq, adjusted_eq[i] if margin else None, outcome,
                                 alpha / open_difference / count, alpha / open_equivalence / count)  # fmt: skip
    return family


def undecided_needs(differences, comparison: Comparison, margin: Optional[float], most: int = 1000,
                    power: float = POWER) -> tuple[Optional[int], Optional[str]]:  # fmt: skip
    """For an undecided arm, the fewest seeds that would decide it either way with 80 % power at its
    observed difference and spread, at the level its test must reach: ``(seeds, "difference" or
    "equivalence")``, or ``(None, None)``."""
    options = [(seeds_needed(differences, comparison.level, most, power), "difference")]
    if margin:
        options.append((seeds_for_equivalence(differences, margin, comparison.equivalence_level, most, power), "equivalence"))
    options = [option for option in options if option[0] is not None]
    return min(options) if options else (None, None)


def sequential_seeds(differences: dict[str, list], looks: list[int], alpha: float = 0.05,
                     margin: Optional[float] = None) -> dict[str, tuple[int, bool]]:  # fmt: skip
    """Where each arm's seeds stop: ``arm → (seeds, decided)``. ``differences`` are the arms' paired
    differences in seed order. At each look the family is compared (``compare_family``); a decided
    arm stops, and so does an arm that even the last look would not decide with 80 % power at its
    observed difference (stopping for futility never adds false verdicts). Arms still running when
    their differences run out are given the look they must reach next."""
    differences = {arm: [x for x in d if not math.isnan(x)] for arm, d in differences.items()}
    stopped: dict[str, tuple[int, bool]] = {}
    for look in looks:
        running = [arm for arm in differences if arm not in stopped]
        if not running:
            break
        if any(len(differences[arm]) < look for arm in running):
            return {**stopped, **{arm: (look, False) for arm in running}}
        now = {arm: d[: stopped[arm][0] if arm in stopped else look] for arm, d in differences.items()}
        family = compare_family(now, alpha, looks, margin=margin)
        for arm in running:
            if family[arm].outcome != "undecided":
                stopped[arm] = (look, True)
            elif look == looks[-1] or undecided_needs(now[arm], family[arm], margin, looks[-1], FUTILITY_POWER)[0] is None:
                stopped[arm] = (look, False)
    return stopped


def verdict(comparison: Comparison, margin: Optional[float] = None) -> str:
    """The table's words for a comparison."""
    if comparison.outcome in ("better", "worse"):
        return f"{comparison.outcome} than baseline"
    if comparison.outcome == "equivalent":
        return f"equivalent to baseline within ±{margin:g}"
    floor = exact_floor(comparison.level)
    if comparison.seeds < floor:  # the exact test cannot reach the level with so few seeds
        return f"undecided with {comparison.seeds} seeds (p < {comparison.level:.3g} needs ≥ {floor})"
    return f"undecided with {comparison.seeds} seeds"
