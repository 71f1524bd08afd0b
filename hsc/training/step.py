"""One optimisation step, shared by the trainer and the training-step benchmark."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from hsc.data.batches import PairBatch
from hsc.training.distributed import LOCAL, Gather, average_gradients, synced


def optimisation_step(model: nn.Module, objective: Any, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler, grad_clip: float, batch: PairBatch,
                      gather: Gather = LOCAL, autocast: Optional[torch.dtype] = None) -> torch.Tensor:
    """Forward (under ``autocast`` when given), the objective, backward, gradient averaging, clipping, update.

    ``batch`` is this rank's share of the global batch, on the model's device; ``gather`` joins the
    shares (identity in one process); ``scaler`` is enabled for float16 (:mod:`hsc.training.precision`).
    Returns the global batch's loss, detached and still on the device (reading it would synchronise a GPU).
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=batch.images.device.type, dtype=autocast, enabled=autocast is not None), \
            synced(gather):
        loss = objective(model, batch, gather)
    scaler.scale(loss).backward()
    average_gradients(model)  # before unscaling: a rank's inf reaches every rank, which all skip the step
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()
