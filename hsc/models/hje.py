"""The hierarchical joint embedding family (Sun, Qin, Liu, IDA 2024), built from the paper's description.

Each image and caption gets one fixed vector, ``[L2(local) ; L2(global)]``, so a pair's score
is ``cos(local) + cos(global)`` and a split is scored by one matrix product. The global
space is trained with the hinge loss on the global vectors; the local space by regressing
the local cosine to labels derived from the captions' words (:mod:`hsc.models.local_labels`).
Every choice the paper leaves open is listed in docs/models.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from hsc.data.vocab import Vocabulary
from hsc.loss import ContrastiveLoss
from hsc.models.base import PooledModel
from hsc.models.config import ModelSpec
from hsc.models.heads import TextGlobal, VisualGlobal
from hsc.models.image import ImageEncoder
from hsc.models.layers import l2norm, xavier_linear_
from hsc.models.local_labels import LocalLabels
from hsc.models.text import TextEncoder, masked_max
from hsc.training.distributed import LOCAL, Gather


class HierarchicalJointEmbedding(PooledModel):
    """Regions and words (the cross-attention family's encoders) pooled into a local and a global space."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        config = spec.config
        joint = config.joint
        self.img_enc = ImageEncoder(spec.data.img_dim, config.embed_size, config.image)
        self.txt_enc = TextEncoder(spec.data.vocab_size, config.embed_size, config.text)
        self.img_global = VisualGlobal(config.embed_size, spec.data.regions, joint.head_dropout)
        self.txt_global = TextGlobal(config.embed_size, joint.head_dropout)
        self.local = joint.spaces == "both"
        if self.local:
            self.img_local = nn.Linear(config.embed_size, joint.local_dim)
            self.txt_local = nn.Linear(config.embed_size, joint.local_dim)
            xavier_linear_(self.img_local)
            xavier_linear_(self.txt_local)

    def image_spaces(self, feats: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(local (B, K) or None, global (B, E)), each L2-normalised."""
        regions = self.img_enc(feats)
        local = l2norm(self.img_local(regions).amax(dim=1)) if self.local else None
        return local, self.img_global(regions)

    def caption_spaces(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        words = self.txt_enc(tokens, lengths)
        local = None
        if self.local:
            local = l2norm(masked_max(self.txt_local(words), lengths))
        return local, self.txt_global(words, lengths)

    @staticmethod
    def _join(local: torch.Tensor | None, glob: torch.Tensor) -> torch.Tensor:
        return glob if local is None else torch.cat([local, glob], dim=1)

    def encode_images(self, feats: torch.Tensor) -> torch.Tensor:
        return self._join(*self.image_spaces(feats))

    def encode_captions(self, tokens: torch.Tensor, lengths: torch.Tensor,
                        phrases: torch.Tensor | None = None) -> torch.Tensor:  # phrases: not read
        return self._join(*self.caption_spaces(tokens, lengths))

    def objective(self, ranking: ContrastiveLoss, reader: Any, vocab_path: Path) -> Any:
        weight = self.spec.config.joint.local_weight
        labels = LocalLabels(reader, Vocabulary.load(vocab_path)) if self.local and weight else None
        return HjeObjective(ranking, labels, weight)


class HjeObjective:
    """Hinge loss on the global space plus ``weight`` x the local-label regression.

    The regression is the mean squared error between each image's local cosine with every
    caption of the batch and its label, averaged over the captions and summed over the
    images: a sum over the batch, on the hinge loss's scale.
    """

    def __init__(self, ranking: ContrastiveLoss, labels: LocalLabels | None, weight: float) -> None:
        self.ranking = ranking
        self.labels = labels
        self.weight = weight

    def __call__(self, model: HierarchicalJointEmbedding, batch: Any, gather: Gather = LOCAL) -> torch.Tensor:
        """The global batch's loss; ``gather`` joins the ranks' shares (see :class:`RankingObjective`)."""
        img_local, img_global = model.image_spaces(batch.images)
        cap_local, cap_global = model.caption_spaces(batch.tokens, batch.lengths)
        loss = self.ranking(gather((img_global @ gather(cap_global).t()).float()))
        if self.labels is not None:
            target = self.labels(gather(batch.image_ids), gather(batch.tokens))
            local = gather((img_local @ gather(cap_local).t()).float())
            loss = loss + self.weight * (local - target).square().mean(dim=1).sum()
        return loss
