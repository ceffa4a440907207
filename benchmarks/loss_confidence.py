"""How confident a classifier is when it is right and when it is wrong, per loss: for each value
of a sweep's loss variant, the configuration that ranked best on validation, its validation and
test accuracy, and the mean probability it gives the true class on right and on wrong predictions.

    python benchmarks/loss_confidence.py sweeps/linear_grid --test ../shared/data/typefaces/test \
        --labels ../shared/data/typefaces/test_labels.csv [--variant loss]

The claim it checks (the CS231n linear-classifier study): one-vs-all binary cross-entropy is less
confident when wrong than softmax cross-entropy. Probabilities are the loss's own: softmax for
cross-entropy, one sigmoid per class for one-vs-all.
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

from reglab.data.folders import read_label_csv
from reglab.inference.trained_run import TrainedRun
from reglab.experiments.sweep import FINISHED, Sweep


def confidence(probs: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, float]:
    """Accuracy; the mean probability of the true class on right and on wrong predictions; and on
    wrong ones, the mean probability of the (wrongly) predicted class."""
    given = probs[np.arange(len(truth)), truth]
    right = probs.argmax(axis=1) == truth
    return float(right.mean()), float(given[right].mean()), float(given[~right].mean()), float(probs.max(axis=1)[~right].mean())


def validation(run_dir, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    with open(run_dir / "val_predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    probs = np.array([[float(row[f"p_{name}"]) for name in classes] for row in rows])
    return probs, np.array([classes.index(row["label"]) for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep")
    parser.add_argument("--test", required=True, help="unlabelled test folder")
    parser.add_argument("--labels", required=True, help="its id,label answer key")
    parser.add_argument("--variant", default="loss", help="the search.variants entry that names the loss")
    args = parser.parse_args()
    sweep = Sweep(args.sweep)
    answers = read_label_csv(args.labels)
    best = {}
    for row in sweep.results():
        label = row["params"][args.variant]
        if row["group"] == FINISHED and label not in best:
            best[label] = row
    print(f"{'loss':<10} {'configuration':<46} {'val acc':>8} {'test acc':>9}   p(true) right / wrong, p(predicted) wrong: "
          f"validation  |  test   (final weights)")  # fmt: skip
    for label, row in best.items():
        trained = TrainedRun(sweep.directory / "runs" / row["name"], "cpu")
        val = confidence(*validation(sweep.directory / "runs" / row["name"], trained.classes))
        data = trained.load(args.test, "test_folder")
        kept = np.array([answers[i] in trained.classes for i in data.ids])  # a run on some of the classes: their test images
        truth = np.array([trained.classes.index(answers[i]) for i, keep in zip(data.ids, kept) if keep])
        test = confidence(trained.probabilities(data)[kept], truth)
        print(f"{label:<10} {row['name']:<46} {val[0]:>8.4f} {test[0]:>9.4f}   "
              f"{val[1]:.3f} / {val[2]:.3f}, {val[3]:.3f}  |  {test[1]:.3f} / {test[2]:.3f}, {test[3]:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
