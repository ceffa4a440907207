"""Epoch-end decisions: which epoch is best so far, and when to stop early (Prechelt 1998,
"Early Stopping — but when?"), in the manner of Keras' ``EarlyStopping``."""

from __future__ import annotations

import math

from ..metrics import resolve_mode


class EarlyStopping:
    """Tracks ``monitor``; ``update`` says whether this epoch is the best so far, and
    ``should_stop`` turns true after ``patience`` epochs without an improvement of ``min_delta``,
    counted from ``start_epoch`` on (the best epoch is tracked from the first)."""

    def __init__(self, config):
        self.monitor = config.monitor
        self.sign = 1.0 if resolve_mode(config.monitor, config.mode) == "min" else -1.0
        self.patience, self.min_delta, self.start_epoch = config.patience, config.min_delta, config.start_epoch
        self.best = math.inf
        self.best_epoch = 0
        self.waited = 0

    def update(self, epoch: int, metrics: dict) -> bool:
        value = self.sign * metrics[self.monitor]
        if not math.isnan(value) and value < self.best - self.min_delta:
            self.best, self.best_epoch, self.waited = value, epoch, 0
            return True
        if epoch >= self.start_epoch:
            self.waited += 1
        return False

    @property
    def best_value(self) -> float:
        return self.sign * self.best

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.waited >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.waited = state["best"], state["best_epoch"], state["waited"]
