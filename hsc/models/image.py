"""Image path: region features -> joint space, refined by region-graph reasoning blocks."""

from __future__ import annotations

import torch
from torch import nn

from hsc.models.config import ImageConfig
from hsc.models.layers import l2norm, xavier_linear_


def head_names(prefix: str, heads: int) -> list[str]:
    """Child names of the affinity heads in the released layout: ``theta, theta1, theta2, ...``."""
    return [prefix] + [f"{prefix}{index}" for index in range(1, heads)]


class RegionGraphBlock(nn.Module):
    """VSRN-style reasoning over regions with a multi-head affinity (LHSC's ``IM_GCN_N``).

    Works channels-first, (B, E, R), as the released 1x1 convolutions do. The affinity is
    ``theta . phi^T / R``, dense and unnormalised; ``W``'s BatchNorm starts at zero so the
    block starts as the identity.
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
        """Concatenate the heads' projections of v (B, E, R) and mix them: (B, R, E)."""
        heads = torch.cat([getattr(self, name)(v) for name in names], dim=1)
        return fc(heads.transpose(1, 2))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        theta = self._multi_head(v, self.theta_names, self.fc1)
        phi = self._multi_head(v, self.phi_names, self.fc2)
        affinity = theta @ phi.transpose(1, 2) / v.size(2)  # (B, R, R)
        y = self.g(v) @ affinity.transpose(1, 2)  # (B, E, R): y[:, :, r] = sum_s aff[r, s] g[:, :, s]
        return self.W(y) + v


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
        v = self.fc(feats).transpose(1, 2)
        for name in self.block_names:
            v = getattr(self, name)(v)
        return l2norm(v.transpose(1, 2), dim=-1)
