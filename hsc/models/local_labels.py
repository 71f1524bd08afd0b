"""Local similarity labels from the captions' own words (the hierarchical joint embedding's supervision).

For an image i and a caption j, the label is the share of caption j's content words that
some caption of image i uses: 1 for an image's own captions, a fraction for an image that
shows part of what the caption says, 0 for an unrelated one. Content words are vocabulary
words with a letter or digit that are not in :data:`FUNCTION_WORDS`. No annotation beyond
the captions is used (docs/models.md, "hje").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hsc.data.vocab import Vocabulary

# English function words: articles, pronouns, prepositions, conjunctions, auxiliaries and
# quantifiers, written here because NLTK's stop-word list needs a download.
FUNCTION_WORDS = frozenset("""
a an the this that these those there here some any each every all both few many much more most other another
such no nor not only own same so than too very just also i me my we our you your he him his she her it its
they them their what which who whom whose where when why how of in on at by for with about against between
into through during before after above below to from up down out off over under again further then once
and but or if while because as until is am are was were be been being have has had having do does did doing
can could will would shall should may might must one two while near next behind front top side onto toward
towards upon across along around beside inside outside via per
""".split())


def content_mask(vocab: Vocabulary) -> np.ndarray:
    """(V,) bool: which ids are content words (specials, punctuation and function words are not)."""
    words = [vocab.word_of(index) for index in range(len(vocab))]
    return np.array([not word.startswith("<") and any(ch.isalnum() for ch in word) and word not in FUNCTION_WORDS
                     for word in words])


class LocalLabels:
    """The content words of every image's captions in a split, and the (B, B) labels of a batch."""

    def __init__(self, reader: Any, vocab: Vocabulary) -> None:
        content = content_mask(vocab)
        words_of: list[set[int]] = [set() for _ in range(reader.n_images)]
        for j, image in enumerate(np.asarray(reader.caption_image).tolist()):
            ids = reader.caption(j)
            words_of[image].update(ids[content[ids]].tolist())
        counts = np.array([len(words) for words in words_of], dtype=np.int64)
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]))
        self.words = torch.tensor([w for words in words_of for w in sorted(words)], dtype=torch.int64)
        self.content = torch.from_numpy(content)
        self.vocab_size = len(vocab)

    def __call__(self, image_ids: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(B, B) labels: rows the batch's images (by split index), columns its captions (ids (B, L))."""
        device = tokens.device
        image_ids = image_ids.cpu()
        starts, stops = self.offsets[image_ids], self.offsets[image_ids + 1]
        rows = torch.repeat_interleave(torch.arange(len(image_ids)), stops - starts)
        cols = self.words[torch.cat([torch.arange(a, b) for a, b in zip(starts.tolist(), stops.tolist())])]
        image_hot = torch.zeros(len(image_ids), self.vocab_size, device=device)
        image_hot[rows.to(device), cols.to(device)] = 1.0
        caption_hot = torch.zeros(len(tokens), self.vocab_size, device=device)
        caption_hot.scatter_(1, tokens, 1.0)
        caption_hot *= self.content.to(device)
        return (image_hot @ caption_hot.t()) / caption_hot.sum(dim=1).clamp_min(1.0)
