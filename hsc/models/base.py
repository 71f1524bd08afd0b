"""The interface every model family implements, so nothing outside the registry knows a model's name.

A family encodes at one of two granularities (``spec.config.granularity``):

- ``token``: ``encode_images`` -> (N, R, E) regions, ``encode_captions`` -> (C, L, E) words
  (zero past each length); ``similarity`` scores every image x caption pair with a head.
- ``pooled``: ``encode_images`` -> (N, E), ``encode_captions`` -> (C, E); ``similarity`` is
  their matrix product, so scoring a split is a blocked GEMM.

Captions may come with their parsed phrases: ``phrases`` (C, P, L) bool, the tokens of each
caption's entities and triples (:mod:`hsc.data.phrase_units`), present when the split was
prepared with ``prepare.phrases``. A family whose attention reads them sets ``reads_phrases``
(and fails without them); the others ignore them. A family whose shortlist vectors have weights
of their own sets ``shortlist_needs_term``: training refuses ``train.shortlist_loss: 0`` for it.

Training asks the model for its ``objective`` (the hinge loss on ``forward``'s batch scores, plus
whatever terms the family adds); scoring, validation, evaluation, ensembles and checkpoints
use only the methods below.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hsc.errors import HscError
from hsc.loss import ContrastiveLoss, RankingObjective
from hsc.models.config import ModelSpec
from hsc.training.distributed import LOCAL, Gather


class RetrievalModel(nn.Module, abc.ABC):
    """Base of every family: built from a :class:`ModelSpec`, which its checkpoint stores."""

    reads_phrases = False  # True: encode_captions needs the captions' parsed phrases
    shortlist_needs_term = False  # True: the shortlist vectors have weights that only train.shortlist_loss trains

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec

    @property
    def granularity(self) -> str:
        return self.spec.config.granularity

    @abc.abstractmethod
    def encode_images(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, R, D) float features -> (B, R, E) regions or (B, E) vectors."""

    @abc.abstractmethod
    def encode_captions(self, tokens: torch.Tensor, lengths: torch.Tensor,
                        phrases: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) int64 ids, (B,) lengths and optional (B, P, L) phrase memberships -> (B, L, E)
        words (zero past each length) or (B, E) vectors."""

    @abc.abstractmethod
    def similarity(self, img: torch.Tensor, cap: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encoded images x encoded captions -> (Bi, Bc) scores."""

    def forward(self, feats: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                gather: Gather = LOCAL, phrases: torch.Tensor | None = None) -> torch.Tensor:
        """(B, B) scores of a batch of pairs: rows images, columns captions, positives on the diagonal.

        Under torchrun, this rank's images x every rank's captions (``gather`` joins the shares).
        """
        return self.similarity(self.encode_images(feats), gather(self.encode_captions(tokens, lengths, phrases)),
                               gather(lengths))

    def shortlist_vectors(self, img: torch.Tensor, cap: torch.Tensor,
                          lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair-independent (N, E') and (C, E') vectors of encoded images and captions, for a
        dot-product shortlist (``hsc.evaluation.rerank``). A pooled family's are its own vectors."""
        raise HscError(f"model '{self.spec.name}' has no pair-independent vectors to shortlist with; "
                       "name a pooled model in evaluate.shortlist_checkpoint")

    def caption_batch(self, requested: int) -> int:
        """Captions encoded at once when scoring; a family whose encodings depend on the batch fixes it."""
        return requested

    def objective(self, ranking: ContrastiveLoss, reader: Any, vocab_path: Path) -> Any:
        """The training loss ``objective(model, batch, gather) -> scalar`` for ``reader``'s split (vocabulary at ``vocab_path``).

        ``gather`` (default: identity) joins the ranks' shares of a global batch along dim 0; the
        objective must return the *global* batch's loss on every rank (:mod:`hsc.training.distributed`).
        """
        return RankingObjective(ranking)


class PooledModel(RetrievalModel):
    """A family with one vector per image and per caption: scores are dot products."""

    def similarity(self, img: torch.Tensor, cap: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return img @ cap.t()

    def shortlist_vectors(self, img: torch.Tensor, cap: torch.Tensor,
                          lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return img, cap
