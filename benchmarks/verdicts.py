"""How often a study's table is wrong, and how often it finds what is there: simulated studies
through the functions the table uses (``stats.compare_family``; ``stats.sequential_seeds`` for
adaptive seeds), printed as a Markdown table.

    python benchmarks/verdicts.py [--studies 2000]

Each seed draws an effect its arms share and each run its own noise (both standard normal);
effects and margins are in standard deviations of the paired difference. Rows: the share of
tables with any false better/worse verdict (every arm equal to the baseline), the same with each
arm tested at 0.05 on its own, the share of studies that find one arm 1.5 SD better, the share of
equal arms shown equivalent within ±1 SD and of arms 2 SD away wrongly called equivalent, and the
seeds an adaptive study spends per arm.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from reglab.experiments.stats import compare_family, sequential_seeds

SD = math.sqrt(2)


def study(rng, arms: int, seeds: int, shift: float) -> dict[str, list[float]]:
    shared = rng.standard_normal(seeds)
    base = shared + rng.standard_normal(seeds)
    return {f"a{i}": list(shared + rng.standard_normal(seeds) + (shift * SD if i == 0 else 0.0) - base) for i in range(arms)}


def table_of(d: dict, looks, margin=None) -> dict:
    if looks is None:
        return compare_family(d, 0.05, margin=margin)
    stops = sequential_seeds(d, looks, 0.05, margin)
    return {**compare_family({a: x[: stops[a][0]] for a, x in d.items()}, 0.05, looks, margin=margin), "_seeds": stops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    args = parser.parse_args()
    print("| design | arms | seeds | any false better/worse | unadjusted | 1.5 SD found | equivalent (true 0, δ 1 SD) | equivalent (true 2δ) | seeds per arm (null) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for design in ("fixed", "adaptive"):
        for arms in (1, 4, 8):
            for seeds in (6, 10, 16):
                looks = None if design == "fixed" else sorted(set(range(3, seeds, 3)) | {seeds})
                rng = np.random.default_rng(arms * 1000 + seeds)
                null = [table_of(study(rng, arms, seeds, 0.0), looks) for _ in range(args.studies)]
                false = np.mean([any(c.outcome in ("better", "worse") for a, c in t.items() if a != "_seeds") for t in null])
                raw = np.mean([any(c.p_value < 0.05 for a, c in t.items() if a != "_seeds") for t in null])
                found = np.mean([table_of(study(rng, arms, seeds, 1.5), looks)["a0"].outcome == "better" for _ in range(args.studies // 4)])
                equal = np.mean([table_of(study(rng, arms, seeds, 0.0), looks, SD)["a0"].outcome == "equivalent" for _ in range(args.studies // 4)])
                wrong = np.mean([table_of(study(rng, arms, seeds, 2.0), looks, SD)["a0"].outcome == "equivalent" for _ in range(args.studies // 4)])
                spent = np.mean([s for t in null for s, _ in t["_seeds"].values()]) if looks else seeds
                print(f"| {design} | {arms} | {seeds} | {false:.3f} | {raw:.3f} | {found:.2f} | {equal:.2f} | {wrong:.3f} | {spent:.1f} |", flush=True)


if __name__ == "__main__":
    main()
