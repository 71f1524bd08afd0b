"""Protocols per dataset, sliced from one score matrix, and the rows scored per split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsc.data.datasets import DATASETS, Protocol
from hsc.errors import HscError
from hsc.evaluation.protocols import (protocols_for, run_protocols, scored_image_rows, scored_relevance,
                                     splits_to_score)
from hsc.evaluation.ranks import fold_metrics, rank_metrics


def touch_splits(tmp_path: Path, *splits: str) -> Path:
    for split in splits:
        (tmp_path / f"{split}.h5").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("dataset, files, split, images, protocols", [
    ("coco_precomp", ("test", "testall"), "testall", 5000,
     [Protocol("coco_5k", "testall"), Protocol("coco_1k", "testall", folds=5)]),
    ("coco_precomp", ("test",), "test", 1000, [Protocol("coco_1k", "test")]),
    ("f30k_precomp", ("test",), "test", 1000, [Protocol("f30k_1k", "test")]),
], ids=["coco with testall: 5k and the folds of 1k", "coco without testall: 1k on test", "f30k: 1k"])
def test_real_datasets_score_one_split_for_their_protocols(tmp_path: Path, dataset: str, files: tuple[str, ...],
                                                           split: str, images: int, protocols: list[Protocol]) -> None:
    data = touch_splits(tmp_path, *files)
    assert splits_to_score(dataset, data) == [split]
    assert protocols_for(dataset, {split: images}) == protocols


def test_synthetic_adds_the_5fold_protocol_when_the_images_divide_by_5() -> None:
    assert [p.name for p in protocols_for("synthetic", {"test": 250})] == ["synthetic_full", "synthetic_5fold"]
    assert [p.name for p in protocols_for("synthetic", {"test": 251})] == ["synthetic_full"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_scores_its_test_split_with_some_protocol(tmp_path: Path, dataset: str) -> None:
    assert splits_to_score(dataset, touch_splits(tmp_path, "test")) == ["test"]
    assert protocols_for(dataset, {"test": 1000})


def test_missing_split_and_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(HscError, match=r"test\.h5: missing"):
        splits_to_score("f30k_precomp", tmp_path)
    with pytest.raises(HscError, match="unknown dataset 'flickr'"):
        splits_to_score("flickr", tmp_path)


def test_run_protocols_slices_one_matrix() -> None:
    rng = np.random.default_rng(0)
    sims = rng.standard_normal((10, 50)).astype(np.float32)
    sims[np.arange(50) // 5, np.arange(50)] += 1.0
    results = run_protocols(protocols_for("coco_precomp", {"testall": 10}), {"testall": sims})
    five_k, one_k = results
    assert five_k.metrics == rank_metrics(sims)
    assert one_k.metrics == fold_metrics(sims, folds=5)
    assert five_k.curve.k.tolist() == list(range(1, 11)) and one_k.curve.k.tolist() == [1, 2]


def test_scored_rows() -> None:
    per_image = np.arange(15) // 5
    assert scored_image_rows(3, per_image, "s").tolist() == [0, 1, 2]
    per_caption = np.arange(15)
    assert scored_image_rows(15, per_caption, "s").tolist() == [0, 5, 10]
    # any number of captions per image, in any order: every image is scored
    assert scored_image_rows(3, per_image[:14], "s").tolist() == [0, 1, 2]
    assert scored_image_rows(3, per_image[::-1].copy(), "s").tolist() == [0, 1, 2]
    with pytest.raises(HscError, match="s: image row 1 has no caption"):
        scored_image_rows(3, np.array([0, 0, 2, 2]), "s")
    assert scored_relevance(15, per_caption).tolist() == per_image.tolist()
    assert scored_relevance(3, per_image[:14]).tolist() == per_image[:14].tolist()
