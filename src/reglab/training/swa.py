"""Stochastic weight averaging (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and
Better Generalization"): from ``train.swa.start_epoch`` on, the learning rate is held at
``train.swa.lr`` and the weights at the end of every epoch join an equal-weight average; at the
end the average becomes the model, its batch-norm statistics recomputed with one pass over the
training data (they do not average: the averaged weights see other activations), and it is saved
as ``swa.pt``, the run's final checkpoint. What ``torch.optim.swa_utils`` does, kept resumable."""

from __future__ import annotations

import torch
from torch import nn

from ..inference.predictor import batches_on


class StochasticWeightAverage:
    def __init__(self, model: nn.Module, config):
        self.config, self.model, self.count = config, model, 0
        self.params = [p.detach().clone() for p in model.parameters()]

    def applies(self, epoch: int) -> bool:
        return epoch >= self.config.start_epoch

    def hold_rate(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            group["lr"] = self.config.lr * group.get("factor", 1.0)

    @torch.no_grad()
    def collect(self) -> None:
        """Add the model's current weights to the average: avg += (w − avg) / n."""
        self.count += 1
        torch._foreach_lerp_(self.params, [p.detach() for p in self.model.parameters()], 1.0 / self.count)

    @torch.no_grad()
    def finalize(self, x_train: torch.Tensor, batch_size: int, amp) -> None:
        """The average into the model, and every batch norm's statistics recomputed over ``x_train``
        (as ``swa_utils.update_bn``, dropout as in training, but each batch weighted by its size:
        the running mean is the mean over every sample)."""
        for param, averaged in zip(self.model.parameters(), self.params):
            param.copy_(averaged)
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
        self.model.train()
        device, seen = next(self.model.parameters()).device, 0
        with amp:
            for batch in batches_on(x_train, device, batch_size):
                seen += len(batch)
                for m in norms:
                    m.momentum = len(batch) / seen  # a running mean over samples
                self.model(batch)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        self.model.eval()

    def state_dict(self) -> dict:
        return {"params": self.params, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        for mine, saved in zip(self.params, state["params"]):
            mine.copy_(saved)
        self.count = state["count"]
