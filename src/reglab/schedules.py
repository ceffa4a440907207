"""Per-epoch learning-rate schedules: step decay, ReduceLROnPlateau and cosine annealing
(Loshchilov & Hutter 2017), all torch's own schedulers behind one ``step(metrics)`` call."""

from __future__ import annotations

import torch

from .recipe import resolve_mode


class Schedule:
    def __init__(self, config, optimizer: torch.optim.Optimizer, epochs: int):
        self.config = config
        if config.name == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, gamma=config.factor)
        elif config.name == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode=resolve_mode(config.monitor, config.mode),
                factor=config.factor,
                patience=config.patience,
                min_lr=config.min_lr,
            )
        elif config.name == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=config.min_lr)
        else:
            self.scheduler = None

    def step(self, metrics: dict) -> None:
        """Call once at the end of every epoch with that epoch's metrics."""
        if self.scheduler is None:
            return
        if self.config.name == "plateau":
            self.scheduler.step(metrics[self.config.monitor])
        else:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler else {}
