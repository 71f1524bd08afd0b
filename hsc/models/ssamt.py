"""SSAMT (Fan et al., ICMR 2022), built from the paper's description: a small multimodal transformer.

Words first attend within their phrase, then every word attends over the image's regions
(multi-head cross-attention, pair by pair), and a pair's score is the mean over the
caption's words of the cosine between a word and its attended regions, averaged with the
cosine of the mean word and the mean region. The interface hands a model only word ids, so
the phrase is a window of ``ssamt.phrase_window`` words on either side; the parsed phrases
(entities and triples) reach the model through ``train.phrase_loss``. Every choice the paper
leaves open is listed in docs/models.md ("ssamt").
"""

from __future__ import annotations

import torch
from torch import nn

from hsc.models.base import RetrievalModel
from hsc.models.config import ModelSpec
from hsc.models.image import ImageEncoder
from hsc.models.layers import l2norm
from hsc.models.text import TextEncoder, word_mask


class PhraseAttention(nn.Module):
    """A transformer layer whose words attend only to the words within ``window`` of them (their phrase)."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(words.size(1), device=words.device)
        outside = (positions.view(-1, 1) - positions.view(1, -1)).abs() > self.window  # (L, L) True: masked
        padded = ~word_mask(lengths, words.size(1))
        # a float mask (not a bool one) keeps PyTorch on the same kernel for every batch and length
        mask = torch.zeros(outside.shape, device=words.device).masked_fill(outside, float("-inf"))
        attended, _ = self.attn(words, words, words, attn_mask=mask,
                                key_padding_mask=torch.zeros(padded.shape, device=words.device).masked_fill(padded, float("-inf")),
                                need_weights=False)
        return self.norm(words + attended)


class SemanticStructureTransformer(RetrievalModel):
    """Regions and words (hsc's encoders), phrase attention over words, word-to-region cross-attention."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        config = spec.config
        dim, layers = config.embed_size, config.ssamt
        self.img_enc = ImageEncoder(spec.data.img_dim, dim, config.image)
        self.txt_enc = TextEncoder(spec.data.vocab_size, dim, config.text)
        self.phrase = PhraseAttention(dim, layers.heads, layers.phrase_window)
        self.heads = layers.heads
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def encode_images(self, feats: torch.Tensor) -> torch.Tensor:
        return self.img_enc(feats)

    def encode_captions(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        words = self.phrase(self.txt_enc(tokens, lengths), lengths)
        return words * word_mask(lengths, words.size(1)).unsqueeze(2)

    def similarity(self, img: torch.Tensor, cap: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(Bi, Bc) scores: every caption's words attend over every image's regions, head by head."""
        n_img, n_reg, dim = img.shape
        n_cap, n_words, _ = cap.shape
        split = lambda x: x.view(*x.shape[:-1], self.heads, dim // self.heads)  # noqa: E731
        q, k, v = split(self.query(cap)), split(self.key(img)), split(self.value(img))  # (C, L, H, d), (N, R, H, d)
        logits = torch.einsum("clhd,nrhd->nchlr", q, k) / (dim // self.heads) ** 0.5
        context = torch.einsum("nchlr,nrhd->nclhd", logits.softmax(dim=-1), v).reshape(n_img, n_cap, n_words, dim)
        mask = word_mask(lengths, n_words).to(cap.dtype)  # (C, L)
        local = (l2norm(self.out(context)) * l2norm(cap).unsqueeze(0)).sum(-1)  # (N, C, L) cosines
        local = (local * mask).sum(-1) / lengths.to(cap.dtype)
        sentence = l2norm((cap * mask.unsqueeze(2)).sum(1) / lengths.to(cap.dtype).unsqueeze(1))
        image = l2norm(img.mean(dim=1))
        return (local + image @ sentence.t()) / 2
