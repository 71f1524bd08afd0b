"""Rank metrics of an image x caption similarity matrix (SCAN's protocol, vectorised).

Caption j belongs to image j // 5. Ranks count from 0 and are PESSIMISTIC under ties: the
rank of a ground truth is the number of wrong candidates that score higher than OR EQUAL to
it, so a tied wrong candidate always ranks above it and a constant matrix gets the worst
ranks, never a perfect score. An image query's rank is the best over its 5 captions: the
wrong captions scoring >= its best-scoring own caption (its other own captions, tied or
not, never push it down). Without ties this is the usual strict count. Rows are processed
in blocks so memory stays bounded by one block, not by the (N, 5N) comparison.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hsc.data.precomp import CAPTIONS_PER_IMAGE
from hsc.errors import HscError

RECALL_KS = (1, 5, 10)
RECALL_KEYS = tuple(f"{d}_r{k}" for d in ("i2t", "t2i") for k in RECALL_KS)
METRIC_KEYS = (
    "i2t_r1", "i2t_r5", "i2t_r10", "i2t_medr", "i2t_meanr",
    "t2i_r1", "t2i_r5", "t2i_r10", "t2i_medr", "t2i_meanr",
    "rsum",
)
# Elements compared at once; 4M booleans + a float block keeps a pass under ~50 MB.
BLOCK_ELEMENTS = 1 << 22


class QueryRanks(NamedTuple):
    """0-based rank of the ground truth for every query."""

    i2t: np.ndarray  # (N,): best rank among image i's 5 captions
    t2i: np.ndarray  # (5N,): rank of image j // 5 for caption j


class RecallCurve(NamedTuple):
    """R@K for K = 1..k_max in both directions (percent)."""

    k: np.ndarray
    i2t: np.ndarray
    t2i: np.ndarray


def check_sims(sims: np.ndarray, source: str = "similarity matrix") -> np.ndarray:
    """Return ``sims`` as an array after checking it is a finite (N, 5N) matrix."""
    sims = np.asarray(sims)
    if sims.ndim != 2 or sims.shape[0] == 0 or sims.shape[1] != CAPTIONS_PER_IMAGE * sims.shape[0]:
        raise HscError(f"{source}: shape {sims.shape} is not (N images, 5N captions)")
    if not np.issubdtype(sims.dtype, np.floating) and not np.issubdtype(sims.dtype, np.integer):
        raise HscError(f"{source}: dtype {sims.dtype} is not numeric")
    rows = max(1, BLOCK_ELEMENTS // sims.shape[1])
    if not all(np.isfinite(sims[i:i + rows]).all() for i in range(0, len(sims), rows)):
        raise HscError(f"{source}: contains NaN or infinite scores; re-score with a healthy model")
    return sims


def query_ranks(sims: np.ndarray, source: str = "similarity matrix") -> QueryRanks:
    """Rank of the ground truth for each image query and each caption query."""
    sims = check_sims(sims, source)
    n_images, n_captions = sims.shape
    captions = np.arange(n_captions)
    t2i_truth = sims[captions // CAPTIONS_PER_IMAGE, captions]
    i2t = np.empty(n_images, dtype=np.int64)
    t2i = np.zeros(n_captions, dtype=np.int64)
    rows = max(1, BLOCK_ELEMENTS // n_captions)
    for start in range(0, n_images, rows):
        block = sims[start:start + rows]
        # Best of the 5 ground truths = fewest wrong scores >= it = compare with their max;
        # the count over the whole row includes the own captions >= that max, taken back out.
        own = block.reshape(len(block), n_images, CAPTIONS_PER_IMAGE)[np.arange(len(block)), np.arange(start, start + len(block))]
        best_own = own.max(axis=1, keepdims=True)
        i2t[start:start + len(block)] = (block >= best_own).sum(axis=1) - (own >= best_own).sum(axis=1)
        t2i += (block >= t2i_truth).sum(axis=0)
    t2i -= 1  # each caption's own image scored >= itself
    return QueryRanks(i2t=i2t, t2i=t2i)


def metrics_from_ranks(ranks: QueryRanks) -> dict[str, float]:
    """R@1/5/10, median and mean rank (1-based) per direction, and their true rsum."""
    out: dict[str, float] = {}
    for direction, r in (("i2t", ranks.i2t), ("t2i", ranks.t2i)):
        for k in RECALL_KS:
            out[f"{direction}_r{k}"] = 100.0 * float(np.mean(r < k))
        out[f"{direction}_medr"] = float(np.floor(np.median(r)) + 1)
        out[f"{direction}_meanr"] = float(np.mean(r) + 1)
    out["rsum"] = sum(out[key] for key in RECALL_KEYS)
    return {key: out[key] for key in METRIC_KEYS}


def rank_metrics(sims: np.ndarray, source: str = "similarity matrix") -> dict[str, float]:
    """The 11 metrics (``METRIC_KEYS``) of a (N, 5N) similarity matrix."""
    return metrics_from_ranks(query_ranks(sims, source))


def curve_from_ranks(ranks: QueryRanks, max_k: int = 100) -> RecallCurve:
    """R@K for K = 1..min(max_k, number of images)."""
    ks = np.arange(1, min(max_k, len(ranks.i2t)) + 1)

    def recall_at(r: np.ndarray) -> np.ndarray:
        # Queries with rank < K = insertion point of K in the sorted ranks.
        return 100.0 * np.searchsorted(np.sort(r), ks, side="left") / len(r)

    return RecallCurve(k=ks, i2t=recall_at(ranks.i2t), t2i=recall_at(ranks.t2i))


def recall_curve(sims: np.ndarray, max_k: int = 100, source: str = "similarity matrix") -> RecallCurve:
    """R@K for K = 1..min(max_k, N) of a (N, 5N) similarity matrix."""
    return curve_from_ranks(query_ranks(sims, source), max_k)


def fold_slices(sims: np.ndarray, folds: int, source: str = "similarity matrix") -> list[np.ndarray]:
    """Fold i = images [n i, n(i+1)) with their captions [5n i, 5n(i+1)) (diagonal blocks)."""
    sims = check_sims(sims, source)
    n_images = sims.shape[0]
    if folds < 1 or n_images % folds:
        raise HscError(f"{source}: {n_images} images do not split into {folds} equal folds")
    n = n_images // folds
    step = CAPTIONS_PER_IMAGE * n
    return [sims[n * i:n * (i + 1), step * i:step * (i + 1)] for i in range(folds)]


def fold_ranks(sims: np.ndarray, folds: int, source: str = "similarity matrix") -> list[QueryRanks]:
    """The query ranks of each diagonal fold (see :func:`fold_slices`)."""
    return [query_ranks(block, source) for block in fold_slices(sims, folds, source)]


def mean_metrics(per_fold: list[QueryRanks]) -> dict[str, float]:
    """The mean of each metric over the folds (COCO 1K protocol).

    rsum is the sum of the six MEAN recalls. The original SCAN/SGRAF scripts print as
    "rsum" six times the mean image->text recall average instead; that slip is not copied.
    """
    metrics = [metrics_from_ranks(ranks) for ranks in per_fold]
    mean = {key: float(np.mean([m[key] for m in metrics])) for key in METRIC_KEYS}
    mean["rsum"] = sum(mean[key] for key in RECALL_KEYS)
    return mean


def mean_curve(per_fold: list[QueryRanks], max_k: int = 100) -> RecallCurve:
    """The mean recall curve over the folds, K capped at a fold's image count."""
    curves = [curve_from_ranks(ranks, max_k) for ranks in per_fold]
    return RecallCurve(
        k=curves[0].k,
        i2t=np.mean([c.i2t for c in curves], axis=0),
        t2i=np.mean([c.t2i for c in curves], axis=0),
    )


def fold_metrics(sims: np.ndarray, folds: int = 5, source: str = "similarity matrix") -> dict[str, float]:
    """The mean of each metric over ``folds`` diagonal folds (see :func:`mean_metrics`)."""
    return mean_metrics(fold_ranks(sims, folds, source))


def fold_curve(sims: np.ndarray, folds: int = 5, max_k: int = 100, source: str = "similarity matrix") -> RecallCurve:
    """The mean recall curve over ``folds`` diagonal folds, K capped at a fold's image count."""
    return mean_curve(fold_ranks(sims, folds, source), max_k)
