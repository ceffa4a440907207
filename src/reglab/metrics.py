"""Classification metrics for single-label and multi-label data, from scikit-learn but for ROC-AUC.

Single-label targets are class indices ``[N]`` scored on ``argmax`` of the probabilities;
multi-label targets are 0/1 matrices ``[N, C]`` scored on ``probs >= threshold``. ROC-AUC is
computed over the classes that have both positives and negatives in ``y_true`` (a class absent
from a small validation split would otherwise make it undefined), by ranks: the Mann-Whitney
statistic, which is the area under the curve with ties counted half (Hanley & McNeil 1982) — what
``sklearn.metrics.roc_auc_score`` returns, for all classes in one vectorized pass (every epoch
scores validation: 0.6 ms against sklearn's 9.7 ms for the typeface set's 285 × 19).
Calibration: the expected calibration error of the top-class confidence (Guo et al. 2017, "On
Calibration of Modern Neural Networks"), 15 equal-width bins; NaN for multi-label data.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

# Every per-epoch value a run records; monitors (early stopping, plateau) must name one of these.
EPOCH_METRICS = {  # per-epoch history column -> the direction in which it gets better
    "train_loss": "min",
    "train_accuracy": "max",
    "train_penalty": "min",  # the l2/l1 penalties added to the loss, mean over the epoch's steps
    "train_cost": "min",  # train_loss + train_penalty: what Keras reports as the loss
    "val_loss": "min",
    "val_accuracy": "max",
    "val_macro_f1": "max",
    "val_micro_f1": "max",
    "val_macro_roc_auc": "max",
    "val_micro_roc_auc": "max",
    "val_ece": "min",
    "val_mix_micro_f1": "max",  # on fixed validation mixtures (audio): what polyphonic excerpts measure
    "val_mix_macro_f1": "max",
    "gap_loss": "max",  # train − val loss: negative when overfitting, better toward 0
    "gap_accuracy": "min",  # train − val accuracy: positive when overfitting, better toward 0
}
BOUNDED_METRICS = {name for name in EPOCH_METRICS if not name.endswith("loss")}  # shares and scores: a range of 1
MIXTURE_METRICS = {"val_mix_micro_f1", "val_mix_macro_f1"}  # only where validation mixtures are scored


def resolve_mode(monitor: str, mode: str) -> str:
    """``auto``: the direction in which the metric gets better (losses and the accuracy gap
    down; scores and the loss gap, train − val, up)."""
    return EPOCH_METRICS[monitor] if mode == "auto" else mode


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.int64)[labels]


def predictions(probs: np.ndarray, multilabel: bool, threshold=0.5) -> np.ndarray:
    return (probs >= threshold).astype(np.int64) if multilabel else probs.argmax(axis=1)


def ranked_auc(y_onehot: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per column, the share of (positive, negative) pairs the scores order rightly, ties counted
    half: (rank sum of the positives − P(P+1)/2) / (P·N), with tied scores given their mean rank."""
    positives = y_onehot.sum(axis=0)
    negatives = len(y_onehot) - positives
    rank_sum = (rankdata(scores, axis=0) * y_onehot).sum(axis=0)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def roc_auc(y_onehot: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(macro, micro) ROC-AUC over the classes that are both present and absent somewhere."""
    positives = y_onehot.sum(axis=0)
    scorable = (positives > 0) & (positives < len(y_onehot))
    if not scorable.any():
        return float("nan"), float("nan")
    macro = ranked_auc(y_onehot[:, scorable], probs[:, scorable]).mean()
    micro = ranked_auc(y_onehot.reshape(-1, 1), probs.reshape(-1, 1))[0]
    return float(macro), float(micro)


ECE_BINS = 15


def calibration_bins(probs: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of top-class confidence over (0, 1]: mean confidence, accuracy and the
    number of samples (empty bins: NaN, NaN, 0)."""
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == y_true).astype(float)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / counts
        accuracy = np.bincount(index, weights=correct, minlength=bins) / counts
    return mean_confidence, accuracy, counts


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ over bins of (share of samples) · |accuracy − mean confidence|."""
    confidence, accuracy, counts = calibration_bins(probs, y_true, bins)
    filled = counts > 0
    return float(np.sum(counts[filled] / counts.sum() * np.abs(accuracy[filled] - confidence[filled])))


def summary(y_true: np.ndarray, probs: np.ndarray, multilabel: bool = False, threshold=0.5) -> dict:
    """Accuracy, macro/micro F1 and macro/micro ROC-AUC."""
    n_classes = probs.shape[1]
    y_pred = predictions(probs, multilabel, threshold)
    labels = list(range(n_classes))
    y_onehot = y_true if multilabel else one_hot(y_true, n_classes)
    macro_auc, micro_auc = roc_auc(y_onehot, probs)
    average_kw = {} if multilabel else {"labels": labels}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0, **average_kw)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0, **average_kw)),
        "macro_roc_auc": macro_auc,
        "micro_roc_auc": micro_auc,
        "ece": float("nan") if multilabel else expected_calibration_error(probs, y_true),
    }


def detailed(y_true: np.ndarray, probs: np.ndarray, classes: list[str], multilabel: bool = False, threshold=0.5) -> dict:
    """``summary`` plus per-class precision/recall/F1/support and (single-label) the confusion matrix."""
    result = summary(y_true, probs, multilabel, threshold)
    y_pred = predictions(probs, multilabel, threshold)
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=None if multilabel else labels, zero_division=0
    )
    result["per_class"] = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(classes, precision, recall, f1, support)
    }
    if not multilabel:
        result["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    else:
        result["cooccurrence"] = cooccurrence_confusion(y_true, y_pred)
    return result


def cooccurrence_confusion(y_true: np.ndarray, y_pred: np.ndarray) -> list[list[int]]:
    """The multi-label confusion: ``[i][j]`` (j ≠ i) counts the samples where class i is present
    and class j is predicted without being present — what i is mistaken for; ``[i][i]`` counts
    the samples where i is present and missed."""
    present, predicted = y_true.astype(bool), y_pred.astype(bool)
    matrix = present.T.astype(np.int64) @ (predicted & ~present).astype(np.int64)
    np.fill_diagonal(matrix, (present & ~predicted).sum(0))
    return matrix.tolist()
