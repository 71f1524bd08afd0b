"""The whole retrieval model: image encoder, caption encoder and similarity head."""

from __future__ import annotations

import torch
from torch import nn

from hsc.models.config import ModelConfig
from hsc.models.heads import SimilarityEncoder
from hsc.models.image import ImageEncoder
from hsc.models.text import TextEncoder


class RetrievalModel(nn.Module):
    """Scores image-caption pairs; children ``img_enc``, ``txt_enc``, ``sim_enc`` as in LHSC checkpoints."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.img_enc = ImageEncoder(config.img_dim, config.embed_size, config.graph_blocks, config.graph_heads)
        self.txt_enc = TextEncoder(config.vocab_size, config.word_dim, config.embed_size, config.text_attn_layers,
                                   config.text_attn_padding, config.bi_gru, config.embed_dropout)
        self.sim_enc = SimilarityEncoder(config.embed_size, config.sim_dim, config.regions, config.head,
                                         config.sgr_steps, config.head_dropout, config.attn_lambda)

    def encode_images(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, R, D) float features -> (B, R, E) L2-normalised regions."""
        return self.img_enc(feats)

    def encode_captions(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L) int64 ids and (B,) lengths -> (B, L, E) L2-normalised words, exactly 0 past each length."""
        return self.txt_enc(tokens, lengths)

    def similarity(self, img: torch.Tensor, cap: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(Bi, R, E) encoded images x (Bc, L, E) encoded captions -> (Bi, Bc) scores in [0, 1]."""
        return self.sim_enc(img, cap, lengths)

    def forward(self, feats: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, B) scores of a batch of pairs: rows images, columns captions, positives on the diagonal."""
        return self.similarity(self.encode_images(feats), self.encode_captions(tokens, lengths), lengths)
