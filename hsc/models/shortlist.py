"""Shortlist vectors of their own for a token-level model: each token through an MLP, then max-pooled.

The published head's attention-pooled global vectors are also inputs of its scores, so a
contrastive term training them to shortlist pulls against the head. These vectors are built
apart from the head: every region or word encoding goes through a small MLP (Linear to 4E,
GELU, Linear back to E), the maximum over an item's tokens is taken per dimension, and the
result is L2-normalised. Transforming before pooling lets a dimension fire on one token's
conjunction ("suede" and "stallion" in the same region) rather than on features pooled from
different objects, which is where a mean or max of the raw encodings loses captions that name
one object of a crowded image. The term (``train.shortlist_loss``) trains the MLPs and, through
them, the shared encoders.
"""

from __future__ import annotations

import torch
from torch import nn

from hsc.models.layers import l2norm, xavier_linear_
from hsc.models.text import masked_max


class TokenMaxPool(nn.Module):
    """(B, T, E) tokens -> (B, E) unit vectors: a per-token MLP through ``width``, then the maximum over tokens."""

    def __init__(self, embed_size: int, width: int) -> None:
        super().__init__()
        self.expand = nn.Linear(embed_size, width)
        self.reduce = nn.Linear(width, embed_size)
        xavier_linear_(self.expand)
        xavier_linear_(self.reduce)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return l2norm(masked_max(self.reduce(nn.functional.gelu(self.expand(tokens))), lengths))


class ShortlistProjection(nn.Module):
    """(N, R, E) regions and (C, L, E) words -> (N, E) and (C, E) unit vectors."""

    def __init__(self, embed_size: int) -> None:
        super().__init__()
        self.image = TokenMaxPool(embed_size, 4 * embed_size)
        self.text = TokenMaxPool(embed_size, 4 * embed_size)

    def forward(self, img: torch.Tensor, cap: torch.Tensor,
                lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(img), self.text(cap, lengths)
