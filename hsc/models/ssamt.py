"""SSAMT (Fan et al., ICMR 2022), built from the paper's description: a small multimodal transformer.

Words first attend within their parsed phrases: a word attends to itself and to every word
that shares an entity or a triple with it (the captions' spans, ``prepare.phrases``, reach
``encode_captions`` as a (C, P, L) membership, :mod:`hsc.data.phrase_units`). Then every word
attends over the image's regions (multi-head cross-attention, pair by pair), and a pair's
score is the mean over the caption's words of the cosine between a word and its attended
regions, averaged with the cosine of the mean word and the mean region. Every choice the
paper leaves open is listed in docs/models.md ("ssamt").
"""

from __future__ import annotations

import torch
from torch import nn

from hsc.errors import HscError
from hsc.models.base import RetrievalModel
from hsc.models.config import ModelSpec
from hsc.models.image import ImageEncoder
from hsc.models.layers import l2norm
from hsc.models.text import TextEncoder, word_mask


def phrase_attention_mask(phrases: torch.Tensor) -> torch.Tensor:
    """(B, P, L) memberships -> (B, L, L) bool, True where word i may attend to word j:
    i == j, or some parsed phrase holds both (so padding, in no phrase, attends only to itself
    and is attended by nothing else)."""
    members = phrases.to(torch.float32)
    shared = torch.einsum("bpi,bpj->bij", members, members) > 0
    return shared | torch.eye(phrases.size(2), dtype=torch.bool, device=phrases.device)


class PhraseAttention(nn.Module):
    """A transformer layer whose words attend only within their parsed phrases (residual, LayerNorm)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, words: torch.Tensor, phrases: torch.Tensor) -> torch.Tensor:
        allowed = phrase_attention_mask(phrases)
        # a float mask (not a bool one) keeps PyTorch on the same kernel for every batch and length
        mask = torch.zeros(allowed.shape, dtype=words.dtype, device=words.device).masked_fill(~allowed, float("-inf"))
        attended, _ = self.attn(words, words, words, attn_mask=mask.repeat_interleave(self.heads, dim=0),
                                need_weights=False)
        return self.norm(words + attended)


class SemanticStructureTransformer(RetrievalModel):
    """Regions and words (hsc's encoders), phrase attention over words, word-to-region cross-attention."""

    reads_phrases = True

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        config = spec.config
        dim, layers = config.embed_size, config.ssamt
        self.img_enc = ImageEncoder(spec.data.img_dim, dim, config.image)
        self.txt_enc = TextEncoder(spec.data.vocab_size, dim, config.text)
        self.phrase = PhraseAttention(dim, layers.heads)
        self.heads = layers.heads
        # the per-pair cross-attention runs in a smaller space than the encodings: its cost is per pair
        self.query, self.key, self.value, self.word = (nn.Linear(dim, layers.attn_dim) for _ in range(4))

    def encode_images(self, feats: torch.Tensor) -> torch.Tensor:
        return self.img_enc(feats)

    def encode_captions(self, tokens: torch.Tensor, lengths: torch.Tensor,
                        phrases: torch.Tensor | None = None) -> torch.Tensor:
        if phrases is None:
            raise HscError(f"model '{self.spec.name}' attends within each caption's parsed phrases: "
                           "set prepare.phrases: true in params.yaml and re-run `hsc prepare`")
        if phrases.shape[0] != tokens.shape[0] or phrases.shape[2] != tokens.shape[1]:
            raise HscError(f"phrases {tuple(phrases.shape)} do not fit captions {tuple(tokens.shape)}")
        words = self.phrase(self.txt_enc(tokens, lengths), phrases)
        return words * word_mask(lengths, words.size(1)).unsqueeze(2)

    def similarity(self, img: torch.Tensor, cap: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(Bi, Bc) scores: every caption's words attend over every image's regions, head by head.

        A word's local score is the attention-weighted mean of the cosines between it and each
        region, per head (SCAN's cosine of the attended vector would cost a (N, C, L, A) tensor
        and its norm per pair, most of the work at these sizes), averaged over the heads.
        """
        n_img, n_reg, _ = img.shape
        n_cap, n_words, _ = cap.shape
        heads, attn_dim = self.heads, self.query.out_features
        # (H, C*L, d) and (H, d, N*R): one batched matrix product per head gives every pair's words x regions
        by_head = lambda x: x.reshape(-1, heads, attn_dim // heads).transpose(0, 1)  # noqa: E731
        q, w = by_head(self.query(cap)), by_head(self.word(cap))
        k, v = by_head(self.key(img)).transpose(1, 2), by_head(self.value(img)).transpose(1, 2)
        logits = torch.bmm(q, k).view(heads, n_cap * n_words, n_img, n_reg) / (attn_dim // heads) ** 0.5
        cosines = torch.bmm(l2norm(w), l2norm(v, dim=1)).view(heads, n_cap * n_words, n_img, n_reg)
        local = (logits.softmax(dim=-1) * cosines).sum(-1).mean(0).view(n_cap, n_words, n_img)  # (C, L, N)
        mask = word_mask(lengths, n_words).to(cap.dtype)
        local = (local * mask.unsqueeze(2)).sum(1) / lengths.to(cap.dtype).unsqueeze(1)  # (C, N)
        image, sentence = self.shortlist_vectors(img, cap, lengths)
        return (local.t() + image @ sentence.t()) / 2

    def shortlist_vectors(self, img: torch.Tensor, cap: torch.Tensor,
                          lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The score's global half: the L2-normalised mean region and mean word."""
        mask = word_mask(lengths, cap.size(1)).to(cap.dtype)
        sentence = l2norm((cap * mask.unsqueeze(2)).sum(1) / lengths.to(cap.dtype).unsqueeze(1))
        return l2norm(img.mean(dim=1)), sentence
