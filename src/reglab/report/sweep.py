"""What a sweep report shows, from the sweep's storage and its run directories: the ranking of
configurations, parameter importances, the metric against each parameter, and every run's curve
(pruned runs stop early)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..experiments.table import arm_rows, metric_label, objective_cells, objective_headers
from ..rundir import RunDir, directory_kind
from ..experiments.study import Study
from ..experiments.artifacts import fetch_runs
from ..experiments.sweep import Sweep, local_directory
from . import figures
from .page import Figure, Section

LISTED = 30  # rows of the ranking table


def shown(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def sweep_sections(path) -> tuple[str, str, list[Section]]:
    sweep = Sweep(path)
    fetch_runs(sweep)  # the runs other machines trained, from the artifact store
    config, rows, names = sweep.config, sweep.results(), sweep.space.names
    metric = metric_label(config, "at epoch")
    title = f"Sweep report: {sweep.name}"
    subtitle = (f"{len(rows)}/{sweep.total()} configurations run; {config.sampler} sampler, {config.pruner} pruner; "
                f"ranked by {metric}, one seed each (confirm the leaders over seeds with `reglab sweep confirm`)")  # fmt: skip
    epochs = sum(row["epochs_run"] for row in rows)
    table = Section(
        "Configurations", text=f"Best first; runs that trained to the end rank above pruned ones. {epochs} epochs trained in all.",
        headers=["rank", *names, *objective_headers(config), "val loss", "epochs", "status"],
        rows=[[row["rank"], *(shown(row["params"].get(n)) for n in names), *objective_cells(row, config), f"{row['val_loss']:.4f}",
               row["epochs_run"], row["status"]] for row in rows[:LISTED]],
    )  # fmt: skip
    sections = [table]
    finished = [row for row in rows if "front" in row]
    if config.multi and finished:
        (x, x_up), (y, y_up) = config.objectives[:2]
        sections.append(Section("Pareto front", text=f"Every configuration that trained to the end; the Pareto-optimal ones (front 1: no other is "
                                f"better on every objective) joined. Better is {'right' if x_up else 'left'} and {'up' if y_up else 'down'}.",
                                figures=[Figure("pareto", figures.pareto([(r["values"][x], r["values"][y], r["front"] == 1, r["name"]) for r in finished], x, y),
                                                f"{x} against {y}" + (" (the first two objectives)" if len(config.objectives) > 2 else ""))]))  # fmt: skip
    confirmed = confirmation_section(sweep, {row["name"]: row for row in rows})
    if confirmed:
        sections.append(confirmed)
    importance = sweep.importances()
    if importance:
        sections.append(Section("Parameter importances", figures=[Figure("importances", figures.importances(importance),
                                                                         "How much of the metric's variance each parameter explains")]))  # fmt: skip
    if rows:
        sections.append(Section("The metric against each parameter", figures=[
            Figure("slices", figures.slices(rows, names, config.metric), f"{metric} of every configuration")]))  # fmt: skip
        histories = [(row["status"], RunDir(sweep.directory / "runs" / row["name"]).history()) for row in rows]
        histories = [(status, history) for status, history in histories if history]
        if histories:
            sections.append(Section("Curves", figures=[
                Figure("curves", figures.sweep_curves(histories, config.metric, config.metric, rows[0]["name"]),
                       f"{config.metric} per epoch of every configuration (blue: trained to the end, orange: pruned)"),
                Figure("val_loss", figures.sweep_curves(histories, "val_loss", "validation loss", rows[0]["name"]),
                       "Validation loss per epoch of every configuration")]))  # fmt: skip
    return title, subtitle, sections


def confirmation_section(sweep: Sweep, by_name: dict[str, dict]) -> Optional[Section]:
    """After ``sweep confirm``: each confirmed configuration's score in the sweep (one seed, the one
    that selected it) beside its mean over the confirmation's fresh seeds; the drop between them
    is the winner's curse."""
    confirmation = sweep.optuna.user_attrs.get("confirmation")
    if not confirmation:
        return None
    directory = Path(confirmation["directory"])
    if directory_kind(directory) != "study":  # confirmed on another machine: made here from the storage
        if "study" not in confirmation:
            return None
        directory = local_directory(sweep.storage_url, confirmation["study"], sweep.directory / "confirm")
    names, study = confirmation["arms"], Study(directory)
    rows = {row["arm"]: row for row in arm_rows(study.results(), study.config)}
    lines = []
    for arm, name in names.items():
        if arm in rows and name in by_name:
            swept, confirmed = by_name[name]["value"], rows[arm]["value"]
            lines.append([arm, name, f"{swept:.4f}", str(confirmed), rows[arm]["seeds"], f"{swept - confirmed.mean:+.4f}", rows[arm]["verdict"]])
    if not lines:
        return None
    seeds = ", ".join(map(str, study.config.seed_values))
    return Section("Confirmation on fresh seeds", text=f"Each confirmed configuration's sweep value (the seed that selected it) beside its "
                   f"mean over fresh seeds {seeds} (each with its own split), with a 95% bootstrap interval. The sweep's value minus the "
                   "confirmed mean is the winner's curse: the luck that ranked it first.",
                   headers=["arm", "configuration", "sweep value", "confirmed (fresh seeds)", "seeds", "sweep − confirmed", "verdict"],
                   rows=lines)  # fmt: skip
