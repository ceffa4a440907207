"""Running a model over tensors without gradients, and the targets losses and metrics compare against."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def targets_for(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Soft targets ``[B, C]``: one-hot for class indices, unchanged for multi-hot rows."""
    return F.one_hot(y, n_classes).float() if y.dim() == 1 else y.float()


@torch.no_grad()
def predict_logits(model, x: torch.Tensor, batch_size: int, amp) -> torch.Tensor:
    model.eval()
    with amp:
        return torch.cat([model(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])
