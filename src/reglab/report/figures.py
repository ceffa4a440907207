"""The report's figures, drawn with matplotlib's Agg backend (no display needed) and returned as
PNG bytes. Sizes grow with the number of classes so labels stay legible at 50 classes; every axis
has a label with its unit."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..metrics import calibration_bins  # noqa: E402


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def curves(history: list[dict], keys: list[str], ylabel: str, best_epoch: int = 0) -> bytes:
    """Per-epoch values of ``keys`` (train and validation), the learning rate on a second axis,
    the best epoch marked."""
    epochs = [row["epoch"] for row in history]
    figure, axis = plt.subplots(figsize=(7, 3.6))
    for key in keys:
        if key in history[0]:
            axis.plot(epochs, [row[key] for row in history], marker="o", markersize=3, label=key)
    if best_epoch:
        axis.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(ylabel)
    rate = axis.twinx()
    rate.plot(epochs, [row["lr"] for row in history], color="black", alpha=0.3, linewidth=1)
    rate.set_ylim(0, max(row["lr"] for row in history) * 1.1)  # from zero: a constant rate is a flat line, not noise
    rate.set_ylabel("learning rate", alpha=0.6)
    axis.legend(loc="best", fontsize=8)
    return png(figure)


def class_distribution(counts: dict[str, int]) -> bytes:
    names = sorted(counts, key=counts.get, reverse=True)
    figure, axis = plt.subplots(figsize=(max(5, 0.3 * len(names) + 2), 3.4))
    axis.bar(range(len(names)), [counts[n] for n in names], color="#4c72b0")
    axis.set_xticks(range(len(names)), names, rotation=90 if len(names) > 8 else 0, fontsize=8)
    axis.set_ylabel("training samples")
    ratio = max(counts.values()) / max(1, min(counts.values()))
    axis.set_title(f"imbalance ratio (largest/smallest) {ratio:.2f}", fontsize=9)
    return png(figure)


def confusion(matrix: list[list[int]], classes: list[str], per_row=None, xlabel: str = "predicted class") -> bytes:
    """Rows normalized to 1 (recall on the diagonal), or divided by ``per_row`` (the samples of
    each true class, for a multi-label co-occurrence whose rows do not add up to them)."""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True) if per_row is None else np.asarray(per_row, dtype=float)[:, None]
    rows = counts / np.maximum(totals, 1)
    side = max(4.5, 0.32 * len(classes) + 2.5)
    figure, axis = plt.subplots(figsize=(side, side * 0.85))
    image = axis.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(classes))
    axis.set_xticks(ticks, classes, rotation=90, fontsize=7 if len(classes) > 20 else 8)
    axis.set_yticks(ticks, classes, fontsize=7 if len(classes) > 20 else 8)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("true class")
    if len(classes) <= 20:
        for i in ticks:
            for j in ticks:
                if rows[i, j] >= 0.005:
                    axis.text(j, i, f"{rows[i, j]:.2f}", ha="center", va="center", fontsize=6, color="white" if rows[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=axis, label="share of the true class")
    return png(figure)


def reliability(probs: np.ndarray, y_true: np.ndarray, ece: float) -> bytes:
    """Accuracy against confidence per bin (Guo et al. 2017), with the share of samples per bin."""
    confidence, accuracy, counts = calibration_bins(probs, y_true)
    edges = np.linspace(0, 1, len(counts) + 1)
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    filled = counts > 0
    axis.bar(centers[filled], accuracy[filled], width=width * 0.95, color="#4c72b0", label="accuracy")
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    axis.set_xlabel("confidence (top-class probability)")
    axis.set_ylabel("accuracy")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_title(f"ECE {ece:.4f} (15 bins)", fontsize=9)
    axis.legend(loc="upper left", fontsize=8)
    return png(figure)


def true_class_probability(probs: np.ndarray, y_true: np.ndarray) -> bytes:
    """Histogram of the probability given to the true class, right and wrong predictions apart."""
    given = probs[np.arange(len(y_true)), y_true]
    right = probs.argmax(axis=1) == y_true
    figure, axis = plt.subplots(figsize=(5.2, 3.4))
    bins = np.linspace(0, 1, 21)
    axis.hist(given[right], bins=bins, alpha=0.7, label=f"correct ({int(right.sum())})", color="#55a868")
    axis.hist(given[~right], bins=bins, alpha=0.7, label=f"wrong ({int((~right).sum())})", color="#c44e52")
    axis.set_xlabel("probability given to the true class")
    axis.set_ylabel("validation samples")
    axis.legend(fontsize=8)
    return png(figure)


def weight_images(weights: np.ndarray, titles: list[str]) -> bytes:
    """One tile per row of ``weights`` ``[N, C, H, W]`` (first-layer filters, or a linear model's
    weights per class), each scaled to its own range; grey for one channel, RGB for three."""
    count = len(weights)
    columns = min(count, 8 if count > 16 else max(1, count))
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.45 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        tile = weights[index]
        tile = (tile - tile.min()) / max(float(tile.max() - tile.min()), 1e-12)
        axis.imshow(tile[0] if tile.shape[0] != 3 else tile.transpose(1, 2, 0), cmap="gray" if tile.shape[0] != 3 else None)
        if titles:  # long class names cut so that neighbouring titles never overlap
            title = titles[index]
            axis.set_title(title if len(title) <= 16 else title[:15] + "…", fontsize=7)
    return png(figure)


def arm_curves(per_arm: dict[str, list[list[dict]]], key: str, ylabel: str) -> bytes:
    """Mean over seeds of ``key`` per epoch for every arm, with a band from the lowest to the
    highest seed (epochs that only some seeds reached average over those)."""
    figure, axis = plt.subplots(figsize=(7, 3.8))
    for arm, histories in per_arm.items():
        longest = max((len(h) for h in histories), default=0)
        epochs, means, lows, highs = [], [], [], []
        for epoch in range(longest):
            values = [h[epoch][key] for h in histories if len(h) > epoch and h[epoch].get(key) is not None]
            if values:
                epochs.append(epoch + 1)
                means.append(np.mean(values))
                lows.append(np.min(values))
                highs.append(np.max(values))
        if epochs:
            (line,) = axis.plot(epochs, means, label=f"{arm} ({len(histories)} seeds)")
            axis.fill_between(epochs, lows, highs, alpha=0.2, color=line.get_color())
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=8)
    return png(figure)


def forest(rows: list[tuple[str, float, float, float]], metric: str) -> bytes:
    """Each arm's mean paired difference from the baseline with its 95% interval."""
    figure, axis = plt.subplots(figsize=(6, 0.5 * len(rows) + 1.4))
    for index, (arm, mean, low, high) in enumerate(rows):
        axis.errorbar(mean, index, xerr=[[mean - low], [high - mean]], fmt="o", color="#4c72b0", capsize=4)
    axis.axvline(0, color="grey", linestyle="--", linewidth=1)
    axis.set_yticks(range(len(rows)), [row[0] for row in rows])
    axis.set_xlabel(f"difference from the baseline in {metric} (paired by seed, 95% interval)")
    axis.invert_yaxis()
    return png(figure)


def pareto(points: list[tuple[float, float, bool, str]], x_label: str, y_label: str) -> bytes:
    """Configurations on two objectives, the Pareto-optimal ones labelled and joined."""
    figure, axis = plt.subplots(figsize=(6, 4.2))
    axis.scatter([p[0] for p in points if not p[2]], [p[1] for p in points if not p[2]], color="#aaaaaa", label="dominated")
    front = sorted(p for p in points if p[2])
    axis.plot([p[0] for p in front], [p[1] for p in front], "o-", color="#c44e52", label="Pareto-optimal")
    for x, y, _, name in front:
        axis.annotate(name, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.legend(fontsize=8)
    return png(figure)


def window_timeline(middles: np.ndarray, probs: np.ndarray, classes: list[str], labelled: set[str], thresholds: np.ndarray) -> bytes:
    """Per-window probabilities over one recording: the labelled instruments in colour (their
    thresholds dashed), every other class in grey."""
    figure, axis = plt.subplots(figsize=(7.5, 3.8))
    for index, name in enumerate(classes):
        if name in labelled:
            (line,) = axis.plot(middles, probs[:, index], marker="o", markersize=3, linewidth=2, label=f"{name} (labelled)")
            axis.axhline(thresholds[index], color=line.get_color(), linestyle="--", linewidth=1)
        else:
            axis.plot(middles, probs[:, index], color="grey", alpha=0.35, linewidth=1)
    axis.set_xlabel("time (s, window centre)")
    axis.set_ylabel("probability")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8, loc="upper right")
    return png(figure)


STATUS_COLORS = {"completed": "#4c72b0", "early_stopped": "#4c72b0", "pruned": "#dd8452", "diverged": "#c44e52"}


def importances(values: dict[str, float]) -> bytes:
    """Parameter importances as horizontal bars, the most important on top."""
    figure, axis = plt.subplots(figsize=(6, 0.45 * len(values) + 1.3))
    names = list(values)
    axis.barh(range(len(names)), [values[n] for n in names], color="#4c72b0")
    axis.set_yticks(range(len(names)), names)
    axis.invert_yaxis()
    axis.set_xlabel("share of the metric's variance explained (fANOVA)")
    return png(figure)


def slices(rows: list[dict], names: list[str], metric: str) -> bytes:
    """The metric of every configuration against each parameter's value, one panel a parameter,
    coloured by how the run ended; positive values spanning a factor of 10 or more on a log axis."""
    columns = min(len(names), 3)
    count_rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(count_rows, columns, figsize=(4.2 * columns, 3.2 * count_rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        shown = [row for row in rows if row["params"].get(name) is not None and not math.isnan(row["value"])]
        values = [row["params"][name] for row in shown]
        categorical = any(isinstance(v, (str, bool)) for v in values)
        labels = sorted({str(v) for v in values}) if categorical else []
        xs = [labels.index(str(v)) for v in values] if categorical else values
        axis.scatter(xs, [row["value"] for row in shown], c=[STATUS_COLORS.get(row["status"], "grey") for row in shown], s=22)
        if categorical:
            axis.set_xticks(range(len(labels)), labels)
        elif values and min(values) > 0 and max(values) >= 10 * min(values):
            axis.set_xscale("log")
        axis.set_xlabel(name)
        axis.set_ylabel(metric)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=color, label=label)
               for label, color in (("trained to the end", "#4c72b0"), ("pruned", "#dd8452"))]  # fmt: skip
    axes.flat[0].legend(handles=handles, fontsize=8)
    return png(figure)


def sweep_curves(histories: list[tuple[str, list[dict]]], key: str, ylabel: str, best: str) -> bytes:
    """``key`` per epoch for every configuration: pruned runs end early; the best one is drawn bold."""
    figure, axis = plt.subplots(figsize=(7, 3.8))
    for status, history in histories:
        axis.plot([row["epoch"] for row in history], [row.get(key, float("nan")) for row in history],
                  color=STATUS_COLORS.get(status, "grey"), alpha=0.45, linewidth=1)  # fmt: skip
    for status, history in histories[:1]:
        axis.plot([row["epoch"] for row in history], [row.get(key, float("nan")) for row in history], color="black", linewidth=2, label=f"best: {best}")
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=8)
    return png(figure)
