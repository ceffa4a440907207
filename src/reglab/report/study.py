"""What a study report shows, from the study's storage and its run directories: the arm table
with intervals and verdicts, every arm's curves over seeds (mean and band), the generalization gap
per arm, and a forest plot of each arm's paired difference from the baseline."""

from __future__ import annotations

import math

from ..experiments.table import arm_rows, explanation, metric_label, table
from ..rundir import RunDir
from .run import learnt_weights, validation_probabilities
from ..experiments.study import Study
from . import figures
from .page import Figure, Section


def study_sections(path) -> tuple[str, str, list[Section]]:
    study = Study(path)
    recorded = study.records()  # one read of the storage
    config, results = study.config, study.results(recorded)
    rows = arm_rows(results, config)
    metric = metric_label(config, "at epoch")
    title = f"Study report: {study.name}"
    subtitle = (f"{len(results)}/{len(study.planned(recorded))} runs finished; {len(config.arms)} arms × {config.seeds_text}; "
                f"compared: {metric}, baseline {config.baseline}")  # fmt: skip
    headers, cells = table(rows, config)
    table_section = Section("Arms", text=explanation(config), headers=headers, rows=cells)
    sections = [table_section]
    per_arm = {arm: [RunDir(study.run_path((arm, seed))).history() for seed in config.seed_values if (arm, seed) in recorded]
               for arm in config.arms}  # fmt: skip
    per_arm = {arm: histories for arm, histories in per_arm.items() if histories}
    if per_arm:
        sections.append(Section("Curves per arm", text="Mean over seeds; the band spans the lowest to the highest seed.", figures=[
            Figure("val_loss", figures.arm_curves(per_arm, "val_loss", "validation loss"), "Validation loss per epoch"),
            Figure("train_loss", figures.arm_curves(per_arm, "train_loss", "training loss"), "Training loss per epoch"),
            Figure("metric", figures.arm_curves(per_arm, config.metric, config.metric), f"{config.metric} per epoch"),
        ]))  # fmt: skip
        sections.append(Section("Generalization gap per arm", figures=[
            Figure("gap", figures.arm_curves(per_arm, "gap_loss", "train − validation loss"), "Loss gap per epoch (below zero: overfitting)")]))  # fmt: skip
    sections += side_by_side(study, recorded)
    compared = [(row["arm"], row["difference"].mean, row["difference"].low, row["difference"].high) for row in rows
                if row["difference"] is not None and not math.isnan(row["difference"].mean)]  # fmt: skip
    if compared:
        sections.append(Section("Differences from the baseline", figures=[Figure("forest", figures.forest(compared, config.metric),
                                                                                 f"Each arm minus {config.baseline}, paired by seed")]))  # fmt: skip
    return title, subtitle, sections


def side_by_side(study, recorded: dict) -> list[Section]:
    """What the seeds compared by eye, arm beside arm, from each arm's first recorded seed: the
    probability given to the true class on validation (right and wrong predictions; single-label
    runs) and the learnt first-layer filters or linear weights."""
    first = {}
    for arm in study.config.arms:
        seed = next((seed for seed in study.config.seed_values if (arm, seed) in recorded), None)
        if seed is not None and (run := RunDir(study.run_path((arm, seed)))).status() not in ("running", "unknown", "diverged"):
            first[arm] = (seed, run)
    confidence, weights = [], []
    for arm, (seed, run) in first.items():
        meta = run.meta()
        if run.read_json("metrics.json").get("confusion_matrix"):  # single-label: one true class a sample
            probs, truth = validation_probabilities(run, meta["classes"])
            confidence.append(Figure(f"true_class_{arm}", figures.true_class_probability(probs, truth), f"{arm} (seed {seed})"))
        if (learnt := learnt_weights(run, meta)) is not None:
            tiles, titles, caption = learnt
            weights.append(Figure(f"weights_{arm}", figures.weight_images(tiles, titles), f"{arm} (seed {seed}): {caption}"))
    sections = []
    if confidence:
        sections.append(Section("Probability of the true class, arm beside arm", text="Validation samples, right and wrong predictions; each arm's first seed.",
                                figures=confidence))  # fmt: skip
    if weights:
        sections.append(Section("Learnt weights, arm beside arm", figures=weights))
    return sections
