"""Which evaluation protocols a dataset has, each sliced from one score matrix per split.

Every split is encoded and scored once; the 1K protocols are diagonal blocks of the full
matrix, never a second scoring pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from hsc.errors import HscError
from hsc.evaluation.ranks import (CAPTIONS_PER_IMAGE, RecallCurve, curve_from_ranks, fold_ranks, mean_curve, mean_metrics,
                                  metrics_from_ranks, query_ranks)
from hsc.params import DATASETS


@dataclass(frozen=True)
class Protocol:
    """A named protocol: the whole ``split`` when ``folds`` is 1, else the mean over folds."""

    name: str
    split: str
    folds: int = 1


@dataclass(frozen=True)
class ProtocolResult:
    protocol: Protocol
    metrics: dict[str, float]
    curve: RecallCurve
    extra: dict[str, float] = field(default_factory=dict)  # two-stage figures (hsc/evaluation/rerank.py)


def splits_to_score(dataset: str, data_dir: Path) -> list[str]:
    """The splits whose score matrices the dataset's protocols need, checked to exist."""
    if dataset == "coco_precomp" and (data_dir / "testall.h5").is_file():
        splits = ["testall"]
    elif dataset in DATASETS:
        splits = ["test"]
    else:
        raise HscError(f"{data_dir}: unknown dataset '{dataset}' (expected one of: {', '.join(DATASETS)})")
    for split in splits:
        if not (data_dir / f"{split}.h5").is_file():
            raise HscError(f"{data_dir / f'{split}.h5'}: missing; run `dvc repro prepare` first")
    return splits


def protocols_for(dataset: str, split_images: Mapping[str, int]) -> list[Protocol]:
    """The protocols of ``dataset`` given the scored splits and their image counts."""
    if dataset == "f30k_precomp":
        return [Protocol("f30k_1k", "test")]
    if dataset == "coco_precomp":
        if "testall" in split_images:
            return [Protocol("coco_5k", "testall"), Protocol("coco_1k", "testall", folds=5)]
        return [Protocol("coco_1k", "test")]
    if dataset == "synthetic":
        protocols = [Protocol("synthetic_full", "test")]
        if split_images["test"] % 5 == 0:
            protocols.append(Protocol("synthetic_5fold", "test", folds=5))
        return protocols
    raise HscError(f"unknown dataset '{dataset}' (expected one of: {', '.join(DATASETS)})")


def run_protocols(protocols: list[Protocol], sims_by_split: Mapping[str, np.ndarray]) -> list[ProtocolResult]:
    """Metrics and recall curve of each protocol from its split's score matrix."""
    results = []
    for protocol in protocols:
        sims = sims_by_split[protocol.split]
        source = f"{protocol.split} scores"
        if protocol.folds == 1:  # rank once, then derive both the metrics and the curve
            ranks = query_ranks(sims, source)
            metrics, curve = metrics_from_ranks(ranks), curve_from_ranks(ranks)
        else:
            per_fold = fold_ranks(sims, protocol.folds, source)
            metrics, curve = mean_metrics(per_fold), mean_curve(per_fold)
        results.append(ProtocolResult(protocol, metrics, curve))
    return results


def scored_image_rows(n_images: int, caption_image: np.ndarray, source: str) -> np.ndarray:
    """Rows of ``features`` to score: all of them, or every 5th when there is one row per caption.

    SCAN's files sometimes repeat each image's features once per caption; like SCAN, only
    the first copy of each image is scored so caption j still belongs to image j // 5.
    """
    n_captions = len(caption_image)
    rows = np.asarray(caption_image[::CAPTIONS_PER_IMAGE]) if n_images == n_captions else np.arange(n_images)
    if n_captions != CAPTIONS_PER_IMAGE * len(rows):
        raise HscError(f"{source}: {n_captions} captions for {len(rows)} images; expected 5 captions per image")
    if n_images != n_captions and not np.array_equal(caption_image, np.arange(n_captions) // CAPTIONS_PER_IMAGE):
        raise HscError(f"{source}: caption_image is not j // 5; the protocol needs captions in image order")
    return rows
