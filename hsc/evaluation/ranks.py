"""Rank metrics of an image x caption similarity matrix (SCAN's protocol, vectorised).

The relevance is data: ``caption_image[j]`` is the image (row) of caption j, with any number
of captions per image (SCAN's files: five, j // 5, the default when none is given). Ranks
count from 0 and are PESSIMISTIC under ties: the rank of a ground truth is the number of
wrong candidates that score higher than OR EQUAL to it, so a tied wrong candidate always
ranks above it and a constant matrix gets the worst ranks, never a perfect score. An image
query's rank is the best over its own captions: the wrong captions scoring >= its
best-scoring own caption (its other own captions, tied or not, never push it down). Without
ties this is the usual strict count. Rows are processed in blocks so memory stays bounded
by one block, not by the (N, C) comparison.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

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

    i2t: np.ndarray  # (N,): best rank among image i's own captions
    t2i: np.ndarray  # (C,): rank of image caption_image[j] for caption j


class RecallCurve(NamedTuple):
    """R@K for K = 1..k_max in both directions (percent)."""

    k: np.ndarray
    i2t: np.ndarray
    t2i: np.ndarray


def five_per_image(n_captions: int) -> np.ndarray:
    """SCAN's relevance: caption j belongs to image j // 5."""
    return np.arange(n_captions, dtype=np.int64) // 5


def check_sims(sims: np.ndarray, source: str = "similarity matrix",
               caption_image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``sims`` as a finite (N, C) array and its relevance, checked against each other.

    Without ``caption_image`` the matrix must be (N, 5N) and caption j belongs to image j // 5.
    Every image needs at least one caption: an image query without one has no rank.
    """
    sims = np.asarray(sims)
    expected = "(N images, C captions)" if caption_image is not None else "(N images, 5N captions)"
    if sims.ndim != 2 or sims.shape[0] == 0 or (caption_image is None and sims.shape[1] != 5 * sims.shape[0]):
        raise HscError(f"{source}: shape {sims.shape} is not {expected}")
    if caption_image is None:
        caption_image = five_per_image(sims.shape[1])
    caption_image = np.asarray(caption_image)
    if caption_image.shape != (sims.shape[1],) or not np.issubdtype(caption_image.dtype, np.integer):
        raise HscError(f"{source}: shape {sims.shape} does not match {caption_image.shape} caption -> image "
                       f"entries (one integer per caption column)")
    if caption_image.min() < 0 or caption_image.max() >= sims.shape[0]:
        raise HscError(f"{source}: the caption -> image mapping points outside the {sims.shape[0]} image rows")
    counts = np.bincount(caption_image, minlength=sims.shape[0])
    if not counts.all():
        raise HscError(f"{source}: image row {int(np.argmin(counts))} has no caption; every image needs one")
    if not np.issubdtype(sims.dtype, np.floating) and not np.issubdtype(sims.dtype, np.integer):
        raise HscError(f"{source}: dtype {sims.dtype} is not numeric")
    rows = max(1, BLOCK_ELEMENTS // sims.shape[1])
    if not all(np.isfinite(sims[i:i + rows]).all() for i in range(0, len(sims), rows)):
        raise HscError(f"{source}: contains NaN or infinite scores; re-score with a healthy model")
    return sims, caption_image.astype(np.int64, copy=False)


def query_ranks(sims: np.ndarray, source: str = "similarity matrix",
                caption_image: np.ndarray | None = None) -> QueryRanks:
    """Rank of the ground truth for each image query and each caption query."""
    sims, caption_image = check_sims(sims, source, caption_image)
    n_images, n_captions = sims.shape
    t2i_truth = sims[caption_image, np.arange(n_captions)]
    i2t = np.empty(n_images, dtype=np.int64)
    t2i = np.zeros(n_captions, dtype=np.int64)
    rows = max(1, BLOCK_ELEMENTS // n_captions)
    for start in range(0, n_images, rows):
        block = sims[start:start + rows]
        own = caption_image[None, :] == np.arange(start, start + len(block))[:, None]
        # Best ground truth = fewest wrong scores >= it = compare the wrong ones with the max of the own.
        best_own = np.where(own, block, -np.inf).max(axis=1, keepdims=True)
        i2t[start:start + len(block)] = ((block >= best_own) & ~own).sum(axis=1)
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


def rank_metrics(sims: np.ndarray, source: str = "similarity matrix",
                 caption_image: np.ndarray | None = None) -> dict[str, float]:
    """The 11 metrics (``METRIC_KEYS``) of a (N, C) similarity matrix (see :func:`check_sims`)."""
    return metrics_from_ranks(query_ranks(sims, source, caption_image))


def curve_from_ranks(ranks: QueryRanks, max_k: int = 100) -> RecallCurve:
    """R@K for K = 1..min(max_k, number of images)."""
    ks = np.arange(1, min(max_k, len(ranks.i2t)) + 1)

    def recall_at(r: np.ndarray) -> np.ndarray:
        # Queries with rank < K = insertion point of K in the sorted ranks.
        return 100.0 * np.searchsorted(np.sort(r), ks, side="left") / len(r)

    return RecallCurve(k=ks, i2t=recall_at(ranks.i2t), t2i=recall_at(ranks.t2i))


def recall_curve(sims: np.ndarray, max_k: int = 100, source: str = "similarity matrix",
                 caption_image: np.ndarray | None = None) -> RecallCurve:
    """R@K for K = 1..min(max_k, N) of a (N, C) similarity matrix."""
    return curve_from_ranks(query_ranks(sims, source, caption_image), max_k)


def fold_slices(sims: np.ndarray, folds: int, source: str = "similarity matrix",
                caption_image: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fold i = images [n i, n(i+1)) with the captions that belong to them, and their relevance.

    Captions stored in image order make each fold a diagonal block (a view); otherwise the
    fold's captions are gathered by the mapping.
    """
    sims, caption_image = check_sims(sims, source, caption_image)
    n_images = sims.shape[0]
    if folds < 1 or n_images % folds:
        raise HscError(f"{source}: {n_images} images do not split into {folds} equal folds")
    n = n_images // folds
    out = []
    for i in range(folds):
        columns = np.flatnonzero((caption_image >= n * i) & (caption_image < n * (i + 1)))
        contiguous = columns[-1] - columns[0] + 1 == len(columns)
        block = sims[n * i:n * (i + 1), columns[0]:columns[-1] + 1] if contiguous else sims[n * i:n * (i + 1), columns]
        out.append((block, caption_image[columns] - n * i))
    return out


def fold_ranks(sims: np.ndarray, folds: int, source: str = "similarity matrix",
               caption_image: np.ndarray | None = None) -> list[QueryRanks]:
    """The query ranks of each fold (see :func:`fold_slices`)."""
    return [query_ranks(block, source, relevance) for block, relevance in fold_slices(sims, folds, source, caption_image)]


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


def fold_metrics(sims: np.ndarray, folds: int = 5, source: str = "similarity matrix",
                 caption_image: np.ndarray | None = None) -> dict[str, float]:
    """The mean of each metric over ``folds`` folds (see :func:`fold_slices`, :func:`mean_metrics`)."""
    return mean_metrics(fold_ranks(sims, folds, source, caption_image))


def fold_curve(sims: np.ndarray, folds: int = 5, max_k: int = 100, source: str = "similarity matrix",
               caption_image: np.ndarray | None = None) -> RecallCurve:
    """The mean recall curve over ``folds`` folds, K capped at a fold's image count."""
    return mean_curve(fold_ranks(sims, folds, source, caption_image), max_k)
