"""Layers written out as plain tensor maths (eval mode), for the per-pair reference of the heads.

They share parameters with the modules but none of their code, so a test that compares a
batched head with its reference compares two independent computations.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-8


def l2(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x / (torch.sqrt((x * x).sum(dim=dim, keepdim=True)) + EPS)


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return x @ layer.weight.t() + layer.bias


def batch_norm(bn: nn.BatchNorm1d, x: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Eval-mode BatchNorm with running statistics, channels along ``channel_dim``."""
    shape = [1] * x.dim()
    shape[channel_dim] = -1
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (x - bn.running_mean.view(shape)) * scale.view(shape) + bn.bias.view(shape)
