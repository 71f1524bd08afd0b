"""HGAN, the hierarchical graph alignment network (Guo et al., arXiv 2212.08281), built from its description.

Feature graphs: hsc's region-graph blocks over the regions and text self-attention over the
words (the cross-attention family's encoders). MFAR: each side is aggregated at three
granularities (regions / words; soft region groups / phrases; the whole image / sentence)
and every level goes through one shared projection into one L2-normalised space. The pair's
score is the weighted mean of up to three similarities: words x regions and phrases x groups
(attended cosine), sentence x image (cosine). Every choice the paper leaves open is listed
in docs/models.md.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from hsc.models.base import RetrievalModel
from hsc.models.config import ModelSpec
from hsc.models.cross_attention import CrossAttentionModel
from hsc.models.heads import TextGlobal, VisualGlobal
from hsc.models.image import ImageEncoder
from hsc.models.layers import EPS, l2norm, xavier_linear_
from hsc.models.text import TextEncoder, word_mask

class Levels(NamedTuple):
    """One side's features in the shared space, L2-normalised; None for a level that is off."""

    local: Optional[torch.Tensor]  # (B, R, E) regions or (B, L, E) words
    intermediate: Optional[torch.Tensor]  # (B, G, E) region groups or (B, L, E) phrases
    glob: Optional[torch.Tensor]  # (B, E) image or sentence

    def captions(self, start: int, stop: int) -> Levels:
        return Levels(*(None if level is None else level[start:stop] for level in self))


class RegionGroups(nn.Module):
    """G soft groups of regions: learned queries attend over the regions; a group is their weighted mean."""

    def __init__(self, embed_size: int, groups: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(groups, embed_size))  # unit-scale logits at the start
        self.key = nn.Linear(embed_size, embed_size)
        xavier_linear_(self.key)

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        """(B, R, E) -> (B, G, E)."""
        weights = (self.key(regions) @ self.queries.t()).softmax(dim=1)  # (B, R, G), over the regions
        return weights.transpose(1, 2) @ regions


class WordPhrases(nn.Module):
    """One phrase per word: a width-w convolution centred on it, over the real words (padding reads as zeros)."""

    def __init__(self, embed_size: int, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(embed_size, embed_size, width, padding=width // 2)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, E) -> (B, L, E), zero past each length."""
        mask = word_mask(lengths, words.size(1)).unsqueeze(2).to(words.dtype)
        return self.conv((words * mask).transpose(1, 2)).transpose(1, 2) * mask


def attended_cosine(nodes: torch.Tensor, queries: torch.Tensor, mask: torch.Tensor, lam: float) -> torch.Tensor:
    """Mean over each caption's real queries of cos(query, its attended context of an image's nodes).

    ``nodes`` (Bi, K, E) and ``queries`` (Bc, L, E) are L2-normalised, ``mask`` (Bc, L) marks the
    real queries; the attention is softmax over the K nodes of ``lam`` x cosine (SCAN's
    text-to-image direction). The context is never materialised: context . query is the
    attention-weighted sum of the cosines, and ||context|| comes from the nodes' (K, K) Gram
    matrix, so the cost is (Bi, Bc x L, K) instead of (Bi, Bc x L, E).
    """
    n_captions, length, embed_size = queries.shape
    cos = (nodes @ queries.reshape(-1, embed_size).t()).transpose(1, 2)  # (Bi, Bc x L, K)
    attn = (lam * cos).softmax(dim=2)
    gram = nodes @ nodes.transpose(1, 2)
    norm = ((attn @ gram) * attn).sum(dim=2).clamp_min(0).sqrt()
    sims = ((attn * cos).sum(dim=2) / (norm + EPS)).view(-1, n_captions, length)
    weights = mask.to(sims.dtype)
    return (sims * weights).sum(dim=2) / weights.sum(dim=1)


class HierarchicalGraphAlignment(RetrievalModel):
    """Regions and words from hsc's encoders; groups, phrases and globals built when scoring."""

    # Captions per block keep Bi x block x longest x K attention entries under this (float32: 16 MB).
    block_elements = 2 ** 22
    # The same text encoder as the cross-attention family, so the same caption batching.
    caption_batch = CrossAttentionModel.caption_batch

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        config = spec.config
        levels = config.hgan
        self.on = {"local": levels.local_level, "intermediate": levels.intermediate_level,
                   "global": levels.global_level}
        self.weights = {"local": levels.local_weight, "intermediate": levels.intermediate_weight,
                        "global": levels.global_weight}
        self.attn_lambda = levels.attn_lambda
        embed = config.embed_size
        self.img_enc = ImageEncoder(spec.data.img_dim, embed, config.image)
        self.txt_enc = TextEncoder(spec.data.vocab_size, embed, config.text)
        if self.on["intermediate"]:
            self.img_groups = RegionGroups(embed, levels.groups)
            self.txt_phrases = WordPhrases(embed, levels.phrase_width)
        if self.on["global"]:
            self.img_global = VisualGlobal(embed, spec.data.regions, levels.dropout)
            self.txt_global = TextGlobal(embed, levels.dropout)
        self.shared = nn.Linear(embed, embed)  # MFAR's rearrangement: every level of both sides
        xavier_linear_(self.shared)

    def encode_images(self, feats: torch.Tensor) -> torch.Tensor:
        return self.img_enc(feats)

    def encode_captions(self, tokens: torch.Tensor, lengths: torch.Tensor,
                        phrases: torch.Tensor | None = None) -> torch.Tensor:  # phrases: not read
        return self.txt_enc(tokens, lengths)

    def _space(self, features: torch.Tensor) -> torch.Tensor:
        return l2norm(self.shared(features))

    def image_levels(self, regions: torch.Tensor) -> Levels:
        return Levels(self._space(regions) if self.on["local"] else None,
                      self._space(self.img_groups(regions)) if self.on["intermediate"] else None,
                      self._space(self.img_global(regions)) if self.on["global"] else None)

    def caption_levels(self, words: torch.Tensor, lengths: torch.Tensor) -> Levels:
        return Levels(self._space(words) if self.on["local"] else None,
                      self._space(self.txt_phrases(words, lengths)) if self.on["intermediate"] else None,
                      self._space(self.txt_global(words, lengths)) if self.on["global"] else None)

    def level_similarities(self, img: torch.Tensor, cap: torch.Tensor,
                           lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """(Bi, Bc) similarity of every level that is on, captions scored block by block."""
        image, caption = self.image_levels(img), self.caption_levels(cap, lengths)
        longest = int(lengths.max())
        nodes = max(img.size(1), self.img_groups.queries.size(0) if self.on["intermediate"] else 0)
        size = max(1, self.block_elements // (img.size(0) * longest * nodes))
        blocks = [self._block(image, caption.captions(start, start + size), lengths[start:start + size], longest)
                  for start in range(0, len(lengths), size)]
        return {level: torch.cat([block[level] for block in blocks], dim=1) for level in blocks[0]}

    def _block(self, image: Levels, caption: Levels, lengths: torch.Tensor, longest: int) -> dict[str, torch.Tensor]:
        mask = word_mask(lengths, longest)
        sims = {}
        if self.on["local"]:
            sims["local"] = attended_cosine(image.local, caption.local[:, :longest], mask, self.attn_lambda)
        if self.on["intermediate"]:
            sims["intermediate"] = attended_cosine(image.intermediate, caption.intermediate[:, :longest], mask,
                                                   self.attn_lambda)
        if self.on["global"]:
            sims["global"] = image.glob @ caption.glob.t()
        return sims

    def similarity(self, img: torch.Tensor, cap: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(Bi, R, E) regions x (Bc, L, E) words -> (Bi, Bc) weighted mean of the levels' similarities."""
        sims = self.level_similarities(img, cap, lengths)
        total = sum(self.weights[level] for level in sims)
        return sum(self.weights[level] * sim for level, sim in sims.items()) / total
