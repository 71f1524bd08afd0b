"""One optimisation step, shared by the trainer and the training-step benchmark."""

from __future__ import annotations

import torch
from torch import nn

from hsc.loss import ContrastiveLoss


def optimisation_step(model: nn.Module, loss_fn: ContrastiveLoss, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler, grad_clip: float, images: torch.Tensor, tokens: torch.Tensor,
                      lengths: torch.Tensor) -> torch.Tensor:
    """Forward (fp16 autocast when ``scaler`` is enabled), hinge loss, backward, clipping, update.

    Returns the loss, detached and still on the device (reading it would synchronise a GPU).
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=images.device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        scores = model(images, tokens, lengths)
    loss = loss_fn(scores.float())  # the hinge loss in float32: fp16 margins round coarsely
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()
