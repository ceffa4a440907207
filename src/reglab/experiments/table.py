"""Which arm wins, and how sure that is: per-arm means with 95% bootstrap intervals over seeds,
each arm against the baseline paired by seed, the arms as one family (``stats.compare_family``),
and the one table model that the terminal, ``--json`` and the report all show."""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .stats import bootstrap_interval, compare_family, undecided_needs, verdict

LOSSES = ("train_loss", "val_loss", "gap_loss")
COLUMNS = ("value", *LOSSES, "best_epoch")


def paired(runs: dict, baseline: dict, key) -> list[float]:
    """The arm's values minus the baseline's, seed by seed, over the seeds both have."""
    differences = [key(runs[s]) - key(baseline[s]) for s in sorted(set(runs) & set(baseline))]
    return [d for d in differences if not math.isnan(d)]


def also_value(key: str):
    return lambda run: run.get("at_compared_epoch", {}).get(key, math.nan)


def arm_rows(results: list[dict], config) -> list[dict]:
    """One row per arm: intervals of every column, and the paired comparison with the baseline,
    its verdict kept at the family-wise level ``config.alpha``; ``study.also`` values as
    exploratory columns (intervals and paired differences, no test)."""
    by_arm = {arm: {r["seed"]: r for r in results if r["arm"] == arm} for arm in config.arms}
    baseline = by_arm[config.baseline]
    differences = {arm: paired(runs, baseline, lambda run: run["value"]) for arm, runs in by_arm.items() if arm != config.baseline}
    family = compare_family(differences, config.alpha, config.looks, config.maximize, config.margin)
    rows = []
    for arm, runs in by_arm.items():
        row = {"arm": arm, "seeds": len(runs), "diverged": sum(r["status"] == "diverged" for r in runs.values())}
        for column in COLUMNS:
            row[column] = bootstrap_interval([r[column] for r in runs.values()])
        row["also"] = {key: {"value": bootstrap_interval([also_value(key)(r) for r in runs.values()]),
                             "difference": None if arm == config.baseline else bootstrap_interval(paired(runs, baseline, also_value(key)))}
                       for key in config.also}  # fmt: skip
        row.update(difference=None, p_value=None, p_adjusted=None, equivalence_p=None, equivalence_adjusted=None,
                   outcome=None, seeds_needed=None, seeds_needed_for=None)  # fmt: skip
        if arm == config.baseline:
            row["verdict"] = "baseline"
        elif differences[arm]:
            comparison = family[arm]
            row.update(difference=bootstrap_interval(differences[arm]), p_value=comparison.p_value, p_adjusted=comparison.p_adjusted,
                       equivalence_p=comparison.equivalence_p, equivalence_adjusted=comparison.equivalence_adjusted,
                       outcome=comparison.outcome, verdict=verdict(comparison, config.margin))  # fmt: skip
            if comparison.outcome == "undecided":  # the seeds that would decide it, at the level its test must reach
                row["seeds_needed"], row["seeds_needed_for"] = undecided_needs(differences[arm], comparison, config.margin)
        else:
            row["verdict"] = "no paired runs yet"
        rows.append(row)
    return rows


def metric_label(config, at: str = "@") -> str:
    """The compared metric as the tables head it: ``val_loss@15`` or ``best val_macro_f1``."""
    if config.at_epoch is None:
        return f"{config.reduce} {config.metric}"
    return f"{config.metric}{at}{config.at_epoch}" if at == "@" else f"{config.metric} {at} {config.at_epoch}"


def explanation(config) -> str:
    """The sentence under a study table: what the numbers are and what the verdicts promise."""
    varied = ("initialization, data order, augmentation, dropout and the train/validation split" if config.split_follows_seed else
              "initialization, data order, augmentation and dropout (the train/validation split is fixed by the recipe)")  # fmt: skip
    looks = "" if config.looks is None else f", Bonferroni over the looks at {', '.join(map(str, config.looks))} seeds"
    arms = len(config.arms) - 1
    text = (f"Means over seeds with 95% bootstrap intervals; each seed varies {varied}. Δ paired by seed; p from an exact sign-flip "
            f"permutation test, adjusted by Holm over the {arms} arm{'s' if arms != 1 else ''} compared with the baseline{looks}: "
            f"the chance of any false better/worse verdict in the table is at most {config.alpha:g}.")  # fmt: skip
    if config.margin:
        text += (f" Equivalent: two one-sided tests (Schuirmann 1987) show the difference within ±{config.margin:g}, "
                 "adjusted the same way.")  # fmt: skip
    text += " Seeds needed: for 80% power at the observed difference and spread, at the level the arm must reach (paired t-test, Colas et al. 2018)."
    if config.also:
        text += f" Exploratory (no test, not in the family): {', '.join(config.also)} at the compared epoch."
    return text


def interval_text(value) -> str:
    return "—" if value is None else str(value)


def p_text(value) -> str:
    return "—" if value is None else f"{value:.3g}" if value < 0.001 else f"{value:.3f}"


def table(rows: list[dict], config) -> tuple[list[str], list[list[str]]]:
    """The study table as headers and cells of text."""
    losses_at = f"@{config.at_epoch}" if config.at_epoch is not None else " (last epoch)"
    headers = ["arm", "runs", metric_label(config), f"train loss{losses_at}", f"val loss{losses_at}", f"gap (train−val){losses_at}",
               "best epoch", "Δ vs baseline", "p", "p (Holm)"]  # fmt: skip
    if config.margin:
        headers.append(f"p equiv. ±{config.margin:g} (Holm)")
    headers += ["verdict", "seeds needed"]
    for key in config.also:
        headers += [f"{key} (exploratory)", f"Δ {key}"]
    cells = []
    for row in rows:
        runs = f"{row['seeds']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        line = [row["arm"], runs, *(str(row[c]) for c in COLUMNS[:-1]), f"{row['best_epoch'].mean:.1f}", interval_text(row["difference"]),
                p_text(row["p_value"]), p_text(row["p_adjusted"])]  # fmt: skip
        if config.margin:
            line.append(p_text(row["equivalence_adjusted"]))
        line += [row["verdict"], needed(row)]
        for key in config.also:
            line += [str(row["also"][key]["value"]), interval_text(row["also"][key]["difference"])]
        cells.append(line)
    return headers, cells


def print_table(rows: list[dict], config, title: str, console: Console | None = None) -> None:
    headers, cells = table(rows, config)
    shown = Table(title=escape(title))
    for header in headers:
        shown.add_column(escape(header), justify="left" if header in ("arm", "verdict") else "right")
    for line in cells:
        shown.add_row(*map(escape, line))
    wide_console(console, 24 * len(headers)).print(shown)
    print(explanation(config))


def needed(row: dict) -> str:
    if row["seeds_needed"] is None:
        return "—"
    return f"{row['seeds_needed']}" + (" (equivalence)" if row["seeds_needed_for"] == "equivalence" else "")


def wide_console(console: Console | None = None, width: int = 180) -> Console:
    console = console or Console()
    if not console.is_terminal:  # logs and pipes: do not fold the table to 80 columns
        console.width = max(console.width, width)
    return console


def objective_headers(config) -> list[str]:
    """The ranking's value columns: the metric, or each objective of a multi-objective sweep and its Pareto front."""
    if not config.multi:
        return [metric_label(config)]
    return [f"{metric} ({'max' if up else 'min'})" for metric, up in config.objectives] + ["Pareto front"]


def objective_cells(row: dict, config) -> list[str]:
    if not config.multi:
        return [f"{row['value']:.4f}"]
    return [f"{value:.4f}" for value in row["values"].values()] + [str(row.get("front", "—"))]


COMPACT_ABOVE = 8  # searched parameters past which the ranking shows one configuration column


def cell(value) -> str:
    return "—" if value is None else ("on" if value else "off") if isinstance(value, bool) else f"{value:.3g}" if isinstance(value, float) else str(value)


def configuration_text(params: dict) -> str:
    """A configuration in one cell: the members switched on with their values, the variants chosen
    (a switch that is off, and the switch itself when its values show it on, are left out)."""
    parts = []
    for name, value in params.items():
        if name.endswith("?"):
            key = name[:-1]
            if value and not any(other.startswith(key) and other != name for other in params):
                parts.append(key)
            continue
        parts.append(f"{name.split(' [')[0]}={cell(value)}")
    return " ".join(parts) or "(every member off)"


def searched_text(params: dict, names: list[str]) -> str:
    """A configuration on one line: every searched value, or for a cocktail what is switched on."""
    return configuration_text(params) if len(names) > COMPACT_ABOVE else ", ".join(f"{k}={v}" for k, v in params.items())


def print_ranking(rows: list[dict], names: list[str], config, title: str, console: Console | None = None) -> None:
    """A sweep's configurations, best first: their searched values, metric(s), loss, epochs and status."""
    shown = Table(title=escape(title))
    losses_at = f"@{config.at_epoch}" if config.at_epoch is not None else ""
    compact = len(names) > COMPACT_ABOVE  # a cocktail: one column of what each configuration switched on
    for header in ("rank", *(["configuration (what is on)"] if compact else names), *objective_headers(config), f"val loss{losses_at}", "epochs", "status"):
        shown.add_column(escape(header), justify="left" if header in ("status", "configuration (what is on)") else "right")
    for row in rows:
        cells = [configuration_text(row["params"])] if compact else [cell(row["params"].get(name)) for name in names]
        status = row["status"] + (f" ({row['reason']})" if row.get("reason") and row["status"] != "diverged" else "")
        shown.add_row(str(row["rank"]), *map(escape, cells), *objective_cells(row, config), f"{row['val_loss']:.4f}",
                      str(row["epochs_run"]), escape(status))  # fmt: skip
    wide_console(console).print(shown)

