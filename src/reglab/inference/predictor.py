"""Running a model over tensors without gradients, and the targets losses and metrics compare against."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def probabilities(logits: torch.Tensor, sigmoid: bool) -> torch.Tensor:
    """Class probabilities as the loss models them (``recipe.loss.sigmoid``): per-class sigmoids
    (BCE losses), else a softmax."""
    return torch.sigmoid(logits.float()) if sigmoid else F.softmax(logits.float(), dim=1)


def targets_for(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Soft targets ``[B, C]``: one-hot for class indices, unchanged for multi-hot rows."""
    return F.one_hot(y, n_classes).float() if y.dim() == 1 else y.float()


def batches_on(x: torch.Tensor, device: torch.device, batch_size: int):
    """``x`` in slices of ``batch_size`` on ``device``; from the CPU to a GPU through pinned memory,
    each copy queued without waiting, so the next batch travels while the last one computes."""
    if device.type == "cuda" and x.device.type == "cpu":
        x = x.pin_memory()
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size].to(device, non_blocking=True)


@torch.inference_mode()
def predict_logits(model, x: torch.Tensor, batch_size: int, amp) -> torch.Tensor:
    """Logits of ``x`` (on any device) on the model's device, in inference mode (no autograd
    bookkeeping at all), batch by batch. Callers pass the model with its batch norms folded
    (``models.folding.folded``), folded once for all the calls its weights serve."""
    model.eval()
    device = next(model.parameters()).device
    with amp:
        return torch.cat([model(batch).float() for batch in batches_on(x, device, batch_size)])
