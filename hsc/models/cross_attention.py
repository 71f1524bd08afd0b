"""The cross-attention family: token-level encoders and a head scoring every pair (HSC, SAF, SGR)."""

from __future__ import annotations

import torch

from hsc.models.base import RetrievalModel
from hsc.models.config import ModelSpec
from hsc.models.heads import SimilarityEncoder
from hsc.models.image import ImageEncoder
from hsc.models.shortlist import ShortlistProjection
from hsc.models.text import TextEncoder

# LHSC's test loader encodes captions in batches of 100, in file order, whatever batch size its
# evaluation is given. With faithful text-attention padding a caption's embedding depends on its
# batch, so only this batching reproduces the published scores (any other moves them by up to 6e-4).
PUBLISHED_CAPTION_BATCH = 100


class CrossAttentionModel(RetrievalModel):
    """Children ``img_enc``, ``txt_enc``, ``sim_enc`` as in LHSC checkpoints."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        config = spec.config
        self.img_enc = ImageEncoder(spec.data.img_dim, config.embed_size, config.image)
        self.txt_enc = TextEncoder(spec.data.vocab_size, config.embed_size, config.text)
        self.sim_enc = SimilarityEncoder(config.embed_size, spec.data.regions, config.head)
        # Built last, so the other modules' initial weights do not depend on it.
        self.shortlist = ShortlistProjection(config.embed_size) if config.shortlist == "projection" else None

    @property
    def shortlist_needs_term(self) -> bool:
        return self.shortlist is not None

    def encode_images(self, feats: torch.Tensor) -> torch.Tensor:
        return self.img_enc(feats)

    def encode_captions(self, tokens: torch.Tensor, lengths: torch.Tensor,
                        phrases: torch.Tensor | None = None) -> torch.Tensor:  # phrases: not read
        return self.txt_enc(tokens, lengths)

    def similarity(self, img: torch.Tensor, cap: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(Bi, R, E) regions x (Bc, L, E) words -> (Bi, Bc) scores in [0, 1]."""
        return self.sim_enc(img, cap, lengths)

    def shortlist_vectors(self, img: torch.Tensor, cap: torch.Tensor,
                          lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's attention-pooled global vectors, or the projection's (``model.shortlist``); L2-normalised,
        each depends on one item alone."""
        if self.shortlist is not None:
            return self.shortlist(img, cap, lengths)
        return self.sim_enc.v_global_w(img), self.sim_enc.t_global_w(cap, lengths)

    def caption_batch(self, requested: int) -> int:
        # Faithful text attention divides by the batch's padded length: only the published
        # batching reproduces the published scores.
        text = self.spec.config.text
        return PUBLISHED_CAPTION_BATCH if text.attn_padding == "faithful" and text.attn_layers else requested
