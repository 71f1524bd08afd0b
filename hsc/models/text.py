"""Text path: word embeddings -> self-attention layers -> GRU -> L2-normalised word embeddings."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hsc.models.config import TextConfig
from hsc.models.layers import init_head_modules_, l2norm


def branch(dim: int) -> nn.Sequential:
    """Linear + Tanh + Dropout(0): one of a text attention layer's three branches (released layout)."""
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Dropout(0.0))


def word_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, L) bool: True where position < the caption's length."""
    return torch.arange(max_len, device=lengths.device) < lengths.unsqueeze(1)


def masked_max(tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, D) tokens, the first ``lengths[b]`` of row b real (all when None) -> (B, D) maximum over the real ones."""
    if lengths is not None:
        tokens = tokens.masked_fill(~word_mask(lengths, tokens.size(1)).unsqueeze(2), float("-inf"))
    return tokens.amax(1)


class TextSelfAttention(nn.Module):
    """``y = (l . k^T / n) . v + x`` (no softmax), LHSC's ``W_attN``.

    ``masked``: each caption attends over its own words and n is its length. ``faithful``:
    as published, n is the batch's padded length and padded positions take part, so a
    caption's output depends on its batch's padding (needed to reproduce released weights).
    """

    def __init__(self, dim: int, padding: str) -> None:
        super().__init__()
        self.padding = padding
        self.embedding_local = branch(dim)  # l
        self.embedding_global = branch(dim)  # k
        self.embedding_v = branch(dim)  # v
        init_head_modules_(self)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        local, key, value = self.embedding_local(x), self.embedding_global(x), self.embedding_v(x)
        if self.padding == "faithful":
            return (local @ key.transpose(1, 2)) @ value / x.size(1) + x
        mask = word_mask(lengths, x.size(1)).unsqueeze(2).to(x.dtype)
        attended = (local @ (key * mask).transpose(1, 2)) @ value
        return attended / lengths.to(x.dtype).view(-1, 1, 1) + x


class TextEncoder(nn.Module):
    """(B, L) token ids + lengths -> (B, L, E) L2-normalised word embeddings, zero past each length."""

    def __init__(self, vocab_size: int, embed_size: int, config: TextConfig) -> None:
        super().__init__()
        self.embed_size = embed_size
        self.bi_gru = config.bi_gru
        self.embed = nn.Embedding(vocab_size, config.word_dim)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        self.dropout = nn.Dropout(config.dropout)
        # Named W_att1.. as in the released LHSC checkpoints.
        self.attn_names = [f"W_att{index}" for index in range(1, config.attn_layers + 1)]
        for name in self.attn_names:
            self.add_module(name, TextSelfAttention(config.word_dim, config.attn_padding))
        self.cap_rnn = nn.GRU(config.word_dim, embed_size, num_layers=1, batch_first=True,
                              bidirectional=config.bi_gru)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embed(tokens))
        for name in self.attn_names:
            x = getattr(self, name)(x, lengths)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.cap_rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.size(1))
        if self.bi_gru:
            out = (out[..., :self.embed_size] + out[..., self.embed_size:]) / 2
        return l2norm(out, dim=-1)
