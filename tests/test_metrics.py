"""Scores a user compares arms by: reglab's vectorized ROC-AUC against scikit-learn's."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from reglab.metrics import summary


@pytest.mark.parametrize("multilabel", [False, True])
def test_roc_auc_by_ranks_equals_scikit_learns_with_ties_and_an_absent_class(multilabel):
    rng = np.random.default_rng(0)
    n, classes = 300, 6
    probs = rng.random((n, classes)).round(1)  # coarse: many tied scores
    probs /= probs.sum(axis=1, keepdims=True)
    if multilabel:
        y = (rng.random((n, classes)) < 0.3).astype(np.int64)
        y[:, 5] = 0  # a class never present
        onehot = y
    else:
        y = rng.choice(5, size=n)  # class 5 absent from this split
        onehot = np.eye(classes, dtype=np.int64)[y]
    got = summary(y, probs, multilabel=multilabel)
    scorable = onehot[:, :5]
    assert got["macro_roc_auc"] == pytest.approx(roc_auc_score(scorable, probs[:, :5], average="macro"), abs=1e-12)
    assert got["micro_roc_auc"] == pytest.approx(roc_auc_score(onehot.ravel(), probs.ravel()), abs=1e-12)


def test_roc_auc_is_one_for_a_perfect_ranking_and_nan_when_no_class_is_scorable():
    y = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[y] * 0.8 + 0.1
    assert summary(y, probs)["macro_roc_auc"] == summary(y, probs)["micro_roc_auc"] == 1.0
    single = summary(np.zeros(4, dtype=np.int64), np.full((4, 2), 0.5))
    assert np.isnan(single["macro_roc_auc"]) and np.isnan(single["micro_roc_auc"])
