"""Hinge ranking loss on a (B, B) score matrix with positives on the diagonal (VSE++ / SCAN)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hsc.errors import HscError
from hsc.training.distributed import LOCAL, Gather

if TYPE_CHECKING:
    from hsc.data.batches import PairBatch


class ContrastiveLoss(nn.Module):
    """``sum_i [m - s_ii + s_ij]_+ + [m - s_jj + s_ij]_+`` over negatives, or only the hardest ones.

    Rows are images and columns captions: each row's negatives are the other captions
    (image -> text), each column's the other images (text -> image).
    """

    def __init__(self, margin: float = 0.2, max_violation: bool = True) -> None:
        super().__init__()
        self.margin = margin
        self.max_violation = max_violation

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        positives = scores.diagonal()
        positive = torch.eye(scores.size(0), dtype=torch.bool, device=scores.device)
        cost_caption = (self.margin + scores - positives.unsqueeze(1)).clamp(min=0).masked_fill(positive, 0)
        cost_image = (self.margin + scores - positives.unsqueeze(0)).clamp(min=0).masked_fill(positive, 0)
        if self.max_violation:
            return cost_caption.max(dim=1).values.sum() + cost_image.max(dim=0).values.sum()
        return cost_caption.sum() + cost_image.sum()

    def constant_floor(self, batch: int) -> float:
        """The loss when every score of a (batch, batch) matrix is equal: each negative costs the margin."""
        negatives_per_query = 1 if self.max_violation else batch - 1
        return 2 * self.margin * batch * negatives_per_query


def hardest_negatives(max_violation: bool, warmup_epochs: int, epoch: int) -> bool:
    """Whether epoch ``epoch`` (from 0) uses hardest negatives: after the sum-loss warm-up, if at all.

    VSE-infinity's warm-up: from a random start the hardest negatives can pull every score to
    one value; the sum over negatives for the first epochs spreads them first.
    """
    return max_violation and epoch >= warmup_epochs


class RankingObjective:
    """The hinge loss on a model's (B, B) batch scores: the whole objective of a family with no other terms.

    ``gather`` concatenates the ranks' shares of the global batch (identity in one process): this
    rank's images are scored against every caption and the score rows gathered, so every rank
    takes the hardest negatives over the global batch (:mod:`hsc.training.distributed`).
    """

    def __init__(self, ranking: ContrastiveLoss) -> None:
        self.ranking = ranking

    def __call__(self, model: nn.Module, batch: "PairBatch", gather: Gather = LOCAL) -> torch.Tensor:
        scores = gather(model(batch.images, batch.tokens, batch.lengths, gather, batch.phrases))  # rows of every rank
        return self.ranking(scores.float())  # margins in float32


class InfoNCELoss(nn.Module):
    """Symmetric cross-entropy over a (B, B) cosine matrix at ``temperature``, summed over queries (CLIP's InfoNCE).

    Unlike the hinge, every negative keeps a gradient however far below the positive it lies, so the
    whole ranking is trained, not only its top (``train.shortlist_objective: infonce``; on the
    synthetic default it shortlisted worse than the hinge, README "Two-stage evaluation").
    """

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        logits = scores / self.temperature
        targets = torch.arange(scores.size(0), device=scores.device)
        return (nn.functional.cross_entropy(logits, targets, reduction="sum")
                + nn.functional.cross_entropy(logits.t(), targets, reduction="sum"))


class ShortlistObjective:
    """``objective`` plus ``weight`` x ``ranking`` (hinge or InfoNCE) on the (B, B) cosines of the model's shortlist vectors.

    Trains the pair-independent vectors that shortlist candidates for re-ranking
    (``train.shortlist_loss``). The batch is encoded once more for this term: the wrapped
    objective stays whatever the family defines.
    """

    def __init__(self, objective: Any, ranking: nn.Module, weight: float) -> None:
        self.objective = objective
        self.ranking = ranking
        self.weight = weight

    def __call__(self, model: Any, batch: "PairBatch", gather: Gather = LOCAL) -> torch.Tensor:
        img = model.encode_images(batch.images)
        cap = model.encode_captions(batch.tokens, batch.lengths, batch.phrases)
        img_vec, cap_vec = model.shortlist_vectors(img, cap, batch.lengths)
        scores = gather(img_vec @ gather(cap_vec).t())  # this rank's images x every caption, rows of every rank
        return self.objective(model, batch, gather) + self.weight * self.ranking(scores.float())


def shortlist_objective(objective: Any, model: Any, ranking: nn.Module, weight: float) -> Any:
    """``objective`` with the shortlist term added when ``weight`` > 0 (``train.shortlist_loss``), else unchanged.

    A model whose shortlist vectors have weights of their own (``model.shortlist: projection``)
    needs the term: nothing else trains them.
    """
    if weight > 0:
        return ShortlistObjective(objective, ranking, weight)
    if model.shortlist_needs_term:
        raise HscError("model.shortlist: projection is trained only by the shortlist term; set train.shortlist_loss "
                       "above 0 (e.g. 1) or model.shortlist: global")
    return objective
