"""Image path: region features -> joint space, refined by region-graph reasoning blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hsc.models.config import ImageConfig
from hsc.models.layers import l2norm, xavier_linear_


def head_names(prefix: str, heads: int) -> list[str]:
    """Child names of the affinity heads in the released layout: ``theta, theta1, theta2, ...``."""
    return [prefix] + [f"{prefix}{index}" for index in range(1, heads)]


def pointwise(convs: list[nn.Conv1d], x: torch.Tensor) -> torch.Tensor:
    """The 1x1 convolutions ``convs`` applied channels-last, their outputs concatenated: (B, R, C) -> (B, R, sum out).

    The same maths as the convolutions on (B, C, R) as one matrix product: on a CPU the
    convolution kernels took a quarter of a training step at the paper's sizes.
    """
    weight = torch.cat([conv.weight for conv in convs]).squeeze(2)
    return F.linear(x, weight, torch.cat([conv.bias for conv in convs]))


class RegionGraphBlock(nn.Module):
    """VSRN-style reasoning over regions with a multi-head affinity (LHSC's ``IM_GCN_N``).

    The parameters are the released 1x1 convolutions (so checkpoints map one to one), applied
    channels-last to (B, R, E). The affinity is ``theta . phi^T / R``, dense and unnormalised;
    ``W``'s BatchNorm starts at zero so the block starts as the identity.
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.theta_names = head_names("theta", heads)
        self.phi_names = head_names("phi", heads)
        self.g = nn.Conv1d(channels, channels, 1)
        for name in self.theta_names + self.phi_names:
            self.add_module(name, nn.Conv1d(channels, channels // heads, 1))
        self.fc1 = nn.Linear(channels, channels)
        self.fc2 = nn.Linear(channels, channels)
        self.W = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.BatchNorm1d(channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def _multi_head(self, v: torch.Tensor, names: list[str], fc: nn.Linear) -> torch.Tensor:
        """Concatenate the heads' projections of v (B, R, E) and mix them: (B, R, E)."""
        return fc(pointwise([getattr(self, name) for name in names], v))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        theta = self._multi_head(v, self.theta_names, self.fc1)
        phi = self._multi_head(v, self.phi_names, self.fc2)
        affinity = theta @ phi.transpose(1, 2) / v.size(1)  # (B, R, R)
        y = affinity @ pointwise([self.g], v)  # y[:, r] = sum_s aff[r, s] g[:, s]
        # BatchNorm1d over (B * R, E) rows: the statistics of (B, E, R) channels-first.
        return self.W[1](pointwise([self.W[0]], y).flatten(0, 1)).view_as(v) + v


class ImageEncoder(nn.Module):
    """(B, R, D) region features -> (B, R, E) L2-normalised region embeddings."""

    def __init__(self, img_dim: int, embed_size: int, config: ImageConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(img_dim, embed_size)
        xavier_linear_(self.fc)
        # Named IM_GCN_1.. as in the released LHSC checkpoints, so their keys map one to one.
        self.block_names = [f"IM_GCN_{index}" for index in range(1, config.graph_blocks + 1)]
        for name in self.block_names:
            self.add_module(name, RegionGraphBlock(embed_size, config.graph_heads))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        v = self.fc(feats)
        for name in self.block_names:
            v = getattr(self, name)(v)
        return l2norm(v, dim=-1)
