"""Prediction files: every window's probabilities of long recordings or excerpts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..rundir import write_csv


def write_window_csv(path: Path, recordings: list[tuple[str, np.ndarray]], classes: list[str], window_seconds: float,
                     hop_seconds: float, key: str = "id") -> None:
    """One row per window: the recording (``key`` column), start and end seconds, one probability per class."""
    rows = ([name, f"{k * hop_seconds:.3f}", f"{k * hop_seconds + window_seconds:.3f}", *(f"{p:.6g}" for p in probs)]
            for name, windows in recordings for k, probs in enumerate(windows))  # fmt: skip
    write_csv(path, [key, "start", "end", *(f"p_{name}" for name in classes)], rows)
