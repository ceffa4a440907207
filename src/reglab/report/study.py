"""What a study report shows, from the study's storage and its run directories: the arm table
with intervals and verdicts (and the scores of runs evaluated on other sets), every arm's curves
over seeds (mean and band), the generalization gap per arm, calibration, true-class probabilities
and learnt weights arm beside arm, and a forest plot of each arm's paired difference."""

from __future__ import annotations

import math

import numpy as np

from .. import metrics
from ..experiments.table import arm_rows, explanation, metric_label, table
from ..rundir import RunDir
from .run import learnt_weights, validation_probabilities
from ..experiments.artifacts import fetch_runs
from ..experiments.study import Study
from . import figures
from .page import Figure, Section


def study_sections(path) -> tuple[str, str, list[Section]]:
    study = Study(path)
    fetch_runs(study)  # the runs other machines trained, from the artifact store
    recorded = study.records()  # one read of the storage
    config, results = study.config, study.results(recorded)
    rows = arm_rows(results, config)
    metric = metric_label(config, "at epoch")
    title = f"Study report: {study.name}"
    subtitle = (f"{len(results)}/{len(study.planned(recorded))} runs finished; {len(config.arms)} arms × {config.seeds_text}; "
                f"compared: {metric}, baseline {config.baseline}")  # fmt: skip
    headers, cells = table(rows, config)
    evaluated = evaluation_columns(study, [row["arm"] for row in rows], recorded)
    for name, column in evaluated.items():
        headers, cells = headers + [f"{name}: macro F1 (seeds)"], [cell + [value] for cell, value in zip(cells, column)]
    text = explanation(config) + (" Evaluated sets (reglab evaluate, after the study; no verdict): mean macro F1 over the seeds evaluated."
                                  if evaluated else "")  # fmt: skip
    table_section = Section("Arms", text=text, headers=headers, rows=cells)
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


def evaluation_columns(study, arms: list[str], recorded: dict) -> dict[str, list[str]]:
    """Per data set any run was evaluated on (``eval_<name>.json``): each arm's mean macro F1 over
    its evaluated seeds, with their count."""
    scores: dict[str, dict[str, list[float]]] = {}
    for arm in arms:
        for seed in study.config.seed_values:
            if (arm, seed) in recorded:
                for file in sorted(study.run_path((arm, seed)).glob("eval_*.json")):
                    result = RunDir(file.parent).read_json(file.name)
                    if "macro_f1" in result:
                        scores.setdefault(file.stem.removeprefix("eval_"), {}).setdefault(arm, []).append(float(result["macro_f1"]))
    return {name: [f"{np.mean(per_arm[arm]):.4f} ({len(per_arm[arm])})" if arm in per_arm else "—" for arm in arms]
            for name, per_arm in scores.items()}  # fmt: skip


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
            ece = metrics.expected_calibration_error(probs, truth)
            confidence.append(Figure(f"reliability_{arm}", figures.reliability(probs, truth, ece), f"{arm} (seed {seed}): reliability, ECE {ece:.4f}"))
            confidence.append(Figure(f"true_class_{arm}", figures.true_class_probability(probs, truth), f"{arm} (seed {seed}): true-class probability"))
        if (learnt := learnt_weights(run, meta)) is not None:
            tiles, titles, caption = learnt
            weights.append(Figure(f"weights_{arm}", figures.weight_images(tiles, titles), f"{arm} (seed {seed}): {caption}"))
    sections = []
    if confidence:
        sections.append(Section("Calibration and the probability of the true class, arm beside arm",
                                text="Validation samples of each arm's first seed: the reliability diagram (Guo et al. 2017) and the "
                                "probability given to the true class for right and wrong predictions; one arm a row.", figures=confidence,
                                columns=2))  # fmt: skip
    if weights:
        sections.append(Section("Learnt weights, arm beside arm", figures=weights, columns=2))
    return sections
