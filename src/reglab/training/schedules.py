"""Learning-rate schedules: step decay, ReduceLROnPlateau, cosine annealing (Loshchilov & Hutter
2017), stepped once an epoch, and one-cycle (Smith & Topin 2019), stepped every batch; all torch's
own schedulers behind ``batch_step()`` and ``step(metrics)``."""

from __future__ import annotations

import torch

from ..metrics import resolve_mode


class Schedule:
    def __init__(self, config, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int):
        self.config = config
        if config.name == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[group["lr"] for group in optimizer.param_groups], total_steps=epochs * steps_per_epoch,
                pct_start=config.warmup_fraction,
            )  # fmt: skip
        elif config.name == "step":
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

    def batch_step(self) -> None:
        """Call after every optimizer step."""
        if self.config.name == "onecycle":
            self.scheduler.step()

    def step(self, metrics: dict) -> None:
        """Call once at the end of every epoch with that epoch's metrics."""
        if self.scheduler is None or self.config.name == "onecycle":
            return
        if self.config.name == "plateau":
            self.scheduler.step(metrics[self.config.monitor])
        else:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler:
            self.scheduler.load_state_dict(state)
