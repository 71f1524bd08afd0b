"""The head's largest step, ``Linear((attn . regions - word)^2)``, with its backward recomputing the differences.

Plain autograd keeps two (Bi, W, E) tensors per block of captions for the backward (the
differences and their squares) and makes two more in it: at the paper's sizes in training,
four passes over 800 MB that stall on memory. Here the forward keeps only its small inputs and
the backward rebuilds one block's differences while they are still in cache, so the only
large tensors are per block and short-lived. The maths, and so the gradients, are those of
``F.linear(torch.baddbmm(-words, attn, img).square(), weight, bias)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _differences(attn: torch.Tensor, img: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """(Bi, W, E) ``attn . regions - word`` of every image x packed word."""
    return torch.baddbmm(-words, attn, img)


class _SquaredDifferenceLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, attn: torch.Tensor, img: torch.Tensor, words: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor, autocast: tuple[str, bool, torch.dtype]) -> torch.Tensor:
        device_type, enabled, dtype = autocast
        with torch.autocast(device_type, dtype=dtype, enabled=enabled):
            out = F.linear(_differences(attn, img, words).square_(), weight, bias)
        ctx.save_for_backward(attn, img, words, weight)
        ctx.autocast = autocast
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        attn, img, words, weight = ctx.saved_tensors
        device_type, enabled, dtype = ctx.autocast
        # The forward's precision, so the rebuilt differences are the ones the forward used.
        with torch.autocast(device_type, dtype=dtype, enabled=enabled):
            diff = _differences(attn, img, words)
            compute = diff.dtype
            grad_out = grad_out.to(compute)
            grad_weight = grad_out.flatten(0, 1).t() @ diff.square().flatten(0, 1)
            grad_bias = grad_out.sum(dim=(0, 1))
            # d/d diff of (diff^2 . W^T) = 2 diff * (grad . W), built in diff's storage.
            grad_diff = diff.mul_(grad_out @ weight.to(compute)).mul_(2)
            grad_attn = grad_diff @ img.to(compute).transpose(1, 2)
            grad_img = attn.to(compute).transpose(1, 2) @ grad_diff
            grad_words = -grad_diff.sum(dim=0)
        return (grad_attn.to(attn.dtype), grad_img.to(img.dtype), grad_words.to(words.dtype),
                grad_weight.to(weight.dtype), grad_bias.to(weight.dtype), None)


def squared_difference_linear(attn: torch.Tensor, img: torch.Tensor, words: torch.Tensor,
                              weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.linear((attn @ img - words)^2, weight, bias)``: (Bi, W, R) x (Bi, R, E) vs (W, E) -> (Bi, W, S)."""
    device_type = img.device.type
    autocast = (device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
    return _SquaredDifferenceLinear.apply(attn, img, words, weight, bias, autocast)
