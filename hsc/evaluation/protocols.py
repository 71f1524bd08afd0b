"""Which evaluation protocols a dataset has, each sliced from one score matrix per split.

Every split is encoded and scored once; the 1K protocols are diagonal blocks of the full
matrix, never a second scoring pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from hsc.data.datasets import Protocol, dataset_for
from hsc.errors import HscError
from hsc.evaluation.ranks import (RecallCurve, curve_from_ranks, five_per_image, fold_ranks, mean_curve, mean_metrics,
                                  metrics_from_ranks, query_ranks)


@dataclass(frozen=True)
class ProtocolResult:
    protocol: Protocol
    metrics: dict[str, float]
    curve: RecallCurve
    extra: dict[str, float] = field(default_factory=dict)  # two-stage figures (hsc/evaluation/rerank.py)


def splits_to_score(dataset: str, data_dir: Path) -> list[str]:
    """The split whose score matrix the dataset's protocols need (the first of its
    ``scored_splits`` that was prepared), checked to exist."""
    spec = dataset_for(dataset, str(data_dir))
    prepared = [split for split in spec.scored_splits if (data_dir / f"{split}.h5").is_file()]
    if not prepared:
        missing = data_dir / f"{spec.scored_splits[-1]}.h5"
        raise HscError(f"{missing}: missing; prepare the {dataset} data into {data_dir} first")
    return prepared[:1]


def protocols_for(dataset: str, split_images: Mapping[str, int]) -> list[Protocol]:
    """The protocols of ``dataset`` given the scored splits and their image counts."""
    return [rule.protocol for rule in dataset_for(dataset).protocols
            if rule.protocol.split in split_images and rule.applies(split_images[rule.protocol.split])]


def run_protocols(protocols: list[Protocol], sims_by_split: Mapping[str, np.ndarray],
                  relevance_by_split: Mapping[str, np.ndarray] | None = None) -> list[ProtocolResult]:
    """Metrics and recall curve of each protocol from its split's score matrix.

    ``relevance_by_split`` maps a split to its caption -> scored-image mapping
    (:func:`scored_relevance`); a split without one has five captions per image, j // 5.
    """
    results = []
    for protocol in protocols:
        sims = sims_by_split[protocol.split]
        relevance = (relevance_by_split or {}).get(protocol.split)
        source = f"{protocol.split} scores"
        if protocol.folds == 1:  # rank once, then derive both the metrics and the curve
            ranks = query_ranks(sims, source, relevance)
            metrics, curve = metrics_from_ranks(ranks), curve_from_ranks(ranks)
        else:
            per_fold = fold_ranks(sims, protocol.folds, source, relevance)
            metrics, curve = mean_metrics(per_fold), mean_curve(per_fold)
        results.append(ProtocolResult(protocol, metrics, curve))
    return results


def repeats_rows(n_images: int, caption_image: np.ndarray) -> bool:
    """SCAN's files that repeat each image's features once per caption (five in a row)."""
    n_captions = len(caption_image)
    return (n_images == n_captions and n_captions % 5 == 0
            and np.array_equal(caption_image, np.arange(n_captions)))


def scored_image_rows(n_images: int, caption_image: np.ndarray, source: str) -> np.ndarray:
    """Rows of ``features`` to score: all of them, or every 5th when there is one row per caption.

    SCAN's files sometimes repeat each image's features once per caption; like SCAN, only
    the first copy of each image is scored and caption j belongs to image j // 5. Otherwise
    any number of captions per image is fine, as long as every image has one.
    """
    caption_image = np.asarray(caption_image)
    if repeats_rows(n_images, caption_image):
        return np.arange(0, n_images, 5)
    counts = np.bincount(caption_image, minlength=n_images) if len(caption_image) else np.zeros(n_images, int)
    if not counts.all():
        raise HscError(f"{source}: image row {int(np.argmin(counts))} has no caption; every scored image needs one")
    return np.arange(n_images)


def scored_relevance(n_images: int, caption_image: np.ndarray) -> np.ndarray:
    """The image, among the rows :func:`scored_image_rows` picks, of each caption."""
    caption_image = np.asarray(caption_image, dtype=np.int64)
    return five_per_image(len(caption_image)) if repeats_rows(n_images, caption_image) else caption_image
