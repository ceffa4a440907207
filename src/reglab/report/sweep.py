"""What a sweep report shows, from the sweep's storage and its run directories: the ranking of
configurations, parameter importances, the metric against each parameter, and every run's curve
(pruned runs stop early)."""

from __future__ import annotations

from ..rundir import RunDir
from ..sweep import Sweep
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
    config, rows, names = sweep.config, sweep.results(), sweep.space.names
    metric = f"{config.reduce} {config.metric}" if config.at_epoch is None else f"{config.metric} at epoch {config.at_epoch}"
    title = f"Sweep report: {sweep.name}"
    subtitle = (f"{len(rows)}/{sweep.total()} configurations run; {config.sampler} sampler, {config.pruner} pruner; "
                f"ranked by {metric}, one seed each (confirm the leaders over seeds with `reglab sweep confirm`)")  # fmt: skip
    epochs = sum(row["epochs_run"] for row in rows)
    table = Section(
        "Configurations", text=f"Best first; runs that trained to the end rank above pruned ones. {epochs} epochs trained in all.",
        headers=["rank", *names, metric, "val loss", "epochs", "status"],
        rows=[[row["rank"], *(shown(row["params"].get(n)) for n in names), f"{row['value']:.4f}", f"{row['val_loss']:.4f}",
               row["epochs_run"], row["status"]] for row in rows[:LISTED]],
    )  # fmt: skip
    sections = [table]
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
