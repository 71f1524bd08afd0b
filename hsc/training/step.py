"""One optimisation step, shared by the trainer and the training-step benchmark."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hsc.data.batches import PairBatch


def optimisation_step(model: nn.Module, objective: Any, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler, grad_clip: float, batch: PairBatch) -> torch.Tensor:
    """Forward (fp16 autocast when ``scaler`` is enabled), the model's objective, backward, clipping, update.

    ``batch`` is on the model's device. Returns the loss, detached and still on the device
    (reading it would synchronise a GPU).
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=batch.images.device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        loss = objective(model, batch)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()
