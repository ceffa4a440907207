"""The statistics behind a study's table, tried as a reviewer would: exact tests against brute
force, and simulated studies through the functions the table uses (``compare_family`` for a fixed
list of seeds, ``sequential_seeds`` then ``compare_family`` for adaptive seeds), counting how
often a table calls an arm better, worse or equivalent when it is not.

Simulated runs: each seed draws a shared effect (what the arms of one seed have in common: its
split, its initialization stream) and each run its own noise, both standard normal, so paired
differences have standard deviation √2; an "SD" below is that of the paired difference."""

import itertools
import math

import numpy as np
import pytest

from reglab.experiments.stats import (
    bootstrap_interval,
    compare_family,
    equivalence_p,
    holm,
    paired_permutation_p,
    seeds_needed,
    seeds_for_equivalence,
    sequential_seeds,
    sign_flip_p,
    verdict,
)

STUDIES = 1000
ALPHA = 0.05
MONTE_CARLO = 2 * math.sqrt(ALPHA * (1 - ALPHA) / STUDIES)  # two standard errors of a share near 0.05
SD = math.sqrt(2)  # of a paired difference


def draw(rng, arms: int, seeds: int, shifts: dict[int, float] = {}) -> dict[str, list[float]]:
    """One simulated study: each arm's paired differences from the baseline (``shifts``: arm index →
    true difference in SDs)."""
    shared = rng.standard_normal(seeds)
    baseline = shared + rng.standard_normal(seeds)
    return {f"arm{a}": list(shared + rng.standard_normal(seeds) + shifts.get(a, 0.0) * SD - baseline) for a in range(arms)}


def adaptive_looks(most: int) -> list[int]:
    return sorted(set(range(3, most, 3)) | {most})  # study.seeds: {min: 3, max: most, step: 3}


def adaptive_table(differences: dict, looks: list[int], margin=None) -> dict:
    """What the table says once the adaptive rounds are over: each arm compared on the seeds it ran."""
    stops = sequential_seeds(differences, looks, ALPHA, margin)
    return compare_family({arm: d[: stops[arm][0]] for arm, d in differences.items()}, ALPHA, looks, margin=margin)


def test_the_exact_sign_flip_test_matches_enumerating_every_flip():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 8, 13):
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        for x in (rng.standard_normal(n), np.round(rng.standard_normal(n))):  # ties too
            flipped, observed = signs @ x, x.sum()
            assert sign_flip_p(x, "greater") == pytest.approx((flipped >= observed - 1e-9).mean(), abs=1e-12)
            assert sign_flip_p(x, "less") == pytest.approx((flipped <= observed + 1e-9).mean(), abs=1e-12)
            if abs(observed) > 1e-9:
                assert sign_flip_p(x) == pytest.approx((np.abs(flipped) >= abs(observed) - 1e-9).mean(), abs=1e-12)


def test_bootstrap_interval_and_exact_permutation_test():
    interval = bootstrap_interval([1.0, 2.0, 3.0, 4.0])
    assert interval.mean == 2.5 and 1.0 <= interval.low < 2.5 < interval.high <= 4.0
    assert paired_permutation_p([1.0, 1.0, 1.0]) == pytest.approx(2 / 8)  # all same sign: the two extreme flips
    assert paired_permutation_p([0.5] * 6) == pytest.approx(2 / 64)
    assert paired_permutation_p([1.0, -1.0, 1.0, -1.0]) == 1.0
    assert equivalence_p([0.0] * 6, 1.0) == pytest.approx(1 / 64)  # both one-sided tests at their smallest p
    assert equivalence_p([2.0] * 6, 1.0) == 1.0


def test_holm_adjusts_step_down():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.02]) == [0.02] and holm([]) == []


def test_verdicts_read_better_worse_equivalent_or_undecided():
    family = compare_family({"up": [0.5] * 8, "down": [-0.5] * 8, "flat": [0.01, -0.01] * 4, "few": [0.5] * 3}, margin=0.1)
    words = {arm: verdict(c, 0.1) for arm, c in family.items()}
    assert words["up"] == "better than baseline" and words["down"] == "worse than baseline"
    assert words["flat"] == "equivalent to baseline within ±0.1"
    assert words["few"] == "undecided with 3 seeds (p < 0.025 needs ≥ 7)"  # 2 of 4 arms still open: 0.05 / 2
    assert compare_family({"down": [-0.5] * 8}, maximize=False)["down"].outcome == "better"  # a loss that falls


def test_seeds_needed_match_the_paired_t_tests_power_tables():
    half = 2**-0.5
    for effect, n in ((0.5, 34), (0.8, 15), (1.0, 10)):  # Cohen's d -> n for 80% power at 0.05 (G*Power's figures)
        assert seeds_needed([effect - half, effect + half]) == n
    assert seeds_needed([3.0, 3.1, 2.9]) == 6  # a large effect still needs the 6 seeds the exact test needs
    assert seeds_needed([0.1]) is None and seeds_needed([0.2, 0.2]) is None
    assert seeds_needed([1.0 - half, 1.0 + half], 0.05 / 4) > 10  # an adjusted level needs more
    assert seeds_for_equivalence([-0.5, 0.5], margin=2.0) < seeds_for_equivalence([-0.5, 0.5], margin=1.0)
    assert seeds_for_equivalence([1.5, 2.5], margin=1.0) is None  # observed outside the margin


@pytest.mark.parametrize("arms", [1, 4, 8])
def test_a_tables_chance_of_any_false_verdict_stays_at_alpha(arms):
    """Every arm equal to the baseline: the share of studies whose table calls any arm better or
    worse is at most 0.05 (plus Monte Carlo error) at 6, 10 and 16 seeds — where testing each arm
    at 0.05 on its own would, with several arms, call one in far more."""
    for seeds in (6, 10, 16):
        rng = np.random.default_rng(100 * arms + seeds)
        tables = [compare_family(draw(rng, arms, seeds), ALPHA) for _ in range(STUDIES)]
        false = np.mean([any(c.outcome in ("better", "worse") for c in table.values()) for table in tables])
        assert false <= ALPHA + MONTE_CARLO, (arms, seeds, false)
        unadjusted = np.mean([any(c.p_value < ALPHA for c in table.values()) for table in tables])
        if arms > 1 and seeds >= 10:
            assert unadjusted > ALPHA + MONTE_CARLO, (arms, seeds, unadjusted)  # what the family adjustment prevents


@pytest.mark.parametrize("arms", [1, 4, 8])
def test_a_real_difference_is_still_found_among_the_family(arms):
    rng = np.random.default_rng(7 + arms)
    tables = [compare_family(draw(rng, arms, 16, {0: 1.5}), ALPHA) for _ in range(STUDIES)]
    assert np.mean([table["arm0"].outcome == "better" for table in tables]) >= 0.8
    assert np.mean([any(c.outcome in ("better", "worse") for a, c in table.items() if a != "arm0") for table in tables]) <= ALPHA + MONTE_CARLO


@pytest.mark.parametrize("arms", [1, 4, 8])
def test_adaptive_seeds_keep_the_tables_error_rate_across_arms_and_looks(arms):
    """Seeds added in rounds of 3 up to 6, 10 or 16 (looks 3, 6, …): no arm differs, and the share of
    tables with any better/worse verdict stays at most 0.05; one arm 1.5 SD better, with up to 16
    seeds, is decided in at least 80 % of studies."""
    for most in (6, 10, 16):
        rng = np.random.default_rng(300 + 10 * arms + most)
        tables = [adaptive_table(draw(rng, arms, most), adaptive_looks(most)) for _ in range(STUDIES)]
        false = np.mean([any(c.outcome in ("better", "worse") for c in table.values()) for table in tables])
        assert false <= ALPHA + MONTE_CARLO, (arms, most, false)
    rng = np.random.default_rng(400 + arms)
    runs = [sequential_seeds(d, adaptive_looks(16), ALPHA) for d in (draw(rng, arms, 16, {0: 1.5}) for _ in range(STUDIES))]
    assert np.mean([stops["arm0"][1] for stops in runs]) >= 0.8
    assert max(stops["arm0"][0] for stops in runs) <= 16


@pytest.mark.parametrize("arms", [1, 4, 8])
def test_equivalence_is_shown_for_arms_that_do_not_differ_and_never_for_one_that_does(arms):
    """δ = 1 SD at 16 seeds: arms with no true difference are called equivalent in at least 80 % of
    studies; an arm whose true difference is 2δ never is."""
    rng = np.random.default_rng(500 + arms)
    tables = [compare_family(draw(rng, arms, 16), ALPHA, margin=SD) for _ in range(STUDIES)]
    assert np.mean([c.outcome == "equivalent" for table in tables for c in table.values()]) >= 0.8
    shifted = [compare_family(draw(rng, arms, 16, {0: 2.0}), ALPHA, margin=SD) for _ in range(STUDIES)]
    assert not any(table["arm0"].outcome == "equivalent" for table in shifted)
    adaptive = [adaptive_table(draw(rng, arms, 16, {0: 2.0}), adaptive_looks(16), margin=SD) for _ in range(STUDIES // 4)]
    assert not any(table["arm0"].outcome == "equivalent" for table in adaptive)
