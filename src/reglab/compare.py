"""Which arm wins, and how sure that is: per-arm means with 95% bootstrap intervals over seeds,
and each arm against the baseline paired by seed."""

from __future__ import annotations

import math

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .stats import bootstrap_interval, paired_permutation_p, seeds_needed, verdict

COLUMNS = ("value", "train_loss", "val_loss", "gap_loss", "best_epoch")


def arm_rows(results: list[dict], config) -> list[dict]:
    """One row per arm: intervals of every column, and the paired comparison with the baseline."""
    by_arm = {arm: {r["seed"]: r for r in results if r["arm"] == arm} for arm in config.arms}
    baseline = by_arm[config.baseline]
    rows = []
    for arm, runs in by_arm.items():
        row = {"arm": arm, "seeds": len(runs), "diverged": sum(r["status"] == "diverged" for r in runs.values())}
        for column in COLUMNS:
            row[column] = bootstrap_interval([r[column] for r in runs.values()])
        shared = sorted(set(runs) & set(baseline))
        differences = [runs[s]["value"] - baseline[s]["value"] for s in shared]
        differences = [d for d in differences if not math.isnan(d)]
        row["seeds_needed"] = None  # for an undecided arm: seeds for 80% power at the observed difference
        if arm == config.baseline:
            row["difference"], row["p_value"], row["verdict"] = None, None, "baseline"
        elif differences:
            row["difference"] = bootstrap_interval(differences)
            row["p_value"] = paired_permutation_p(differences)
            row["verdict"] = verdict(float(np.mean(differences)), row["p_value"], len(differences), config.maximize, config.alpha)
            if row["p_value"] >= config.alpha:
                row["seeds_needed"] = seeds_needed(differences, config.alpha)
        else:
            row["difference"], row["p_value"], row["verdict"] = None, None, "no paired runs yet"
        rows.append(row)
    return rows


def print_table(rows: list[dict], config, title: str, console: Console | None = None) -> None:
    metric = config.metric if config.at_epoch is None else f"{config.metric}@{config.at_epoch}"
    if config.at_epoch is None:
        metric = f"{config.reduce} {metric}"
    table = Table(title=escape(title))
    for header in ("arm", "runs", metric, "train loss", "val loss", "gap (train−val)", "best epoch",
                   "Δ vs baseline", "p", "verdict", "seeds needed"):  # fmt: skip
        table.add_column(header, justify="left" if header in ("arm", "verdict") else "right")
    for row in rows:
        runs = f"{row['seeds']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        table.add_row(
            escape(row["arm"]), runs, *(str(row[c]) for c in COLUMNS[:-1]), f"{row['best_epoch'].mean:.1f}",
            str(row["difference"]) if row["difference"] else "—",
            f"{row['p_value']:.3f}" if row["p_value"] is not None else "—", row["verdict"], needed(row),
        )  # fmt: skip
    wide_console(console).print(table)
    print("means over seeds with 95% bootstrap intervals; Δ paired by seed, p from an exact sign-flip permutation test; "
          "seeds needed: for 80% power at the observed difference and spread (paired t-test, Colas et al. 2018)")


def needed(row: dict) -> str:
    return "—" if row["seeds_needed"] is None else str(row["seeds_needed"])


def wide_console(console: Console | None = None) -> Console:
    console = console or Console()
    if not console.is_terminal:  # logs and pipes: do not fold the table to 80 columns
        console.width = max(console.width, 180)
    return console


def print_ranking(rows: list[dict], names: list[str], config, title: str, console: Console | None = None) -> None:
    """A sweep's configurations, best first: their searched values, metric, loss, epochs and status."""
    table = Table(title=escape(title))
    metric = config.metric if config.at_epoch is None else f"{config.metric}@{config.at_epoch}"
    for header in ("rank", *names, f"{config.reduce} {metric}" if config.at_epoch is None else metric, "val loss", "epochs", "status"):
        table.add_column(escape(header), justify="left" if header == "status" else "right")
    for row in rows:
        values = [row["params"].get(name) for name in names]
        shown = ["—" if v is None else ("on" if v else "off") if isinstance(v, bool) else f"{v:.3g}" if isinstance(v, float) else str(v)
                 for v in values]  # fmt: skip
        status = row["status"] + (f" ({row['reason']})" if row.get("reason") and row["status"] != "diverged" else "")
        table.add_row(str(row["rank"]), *map(escape, shown), f"{row['value']:.4f}", f"{row['val_loss']:.4f}",
                      str(row["epochs_run"]), escape(status))  # fmt: skip
    wide_console(console).print(table)
