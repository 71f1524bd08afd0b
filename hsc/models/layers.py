"""Small shared pieces: normalisation with the published epsilon, and the head's weight init."""

from __future__ import annotations

import math

import torch
from torch import nn

EPS = 1e-8  # SCAN/SGRAF add this to every norm before dividing


def l2norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``x / (||x||_2 + EPS)`` along ``dim`` (an all-zero vector stays exactly zero)."""
    return x / (x.norm(dim=dim, keepdim=True) + EPS)


def xavier_linear_(layer: nn.Linear) -> None:
    """Uniform(+-sqrt(6 / (in + out))) weights and zero bias, as SCAN/SGRAF initialise their Linears."""
    bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.zeros_(layer.bias)


def init_head_modules_(module: nn.Module) -> None:
    """Xavier-uniform every Linear and reset every BatchNorm to weight 1, bias 0 under ``module``."""
    for child in module.modules():
        if isinstance(child, nn.Linear):
            xavier_linear_(child)
        elif isinstance(child, nn.BatchNorm1d):
            nn.init.ones_(child.weight)
            nn.init.zeros_(child.bias)
