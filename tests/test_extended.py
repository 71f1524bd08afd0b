"""ECCV Caption and CxC on COCO 5K through the eccv-caption package, with its own COCO test ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hsc.evaluation.extended import extended_metrics, ranked_ids

eccv_caption = pytest.importorskip("eccv_caption")


def test_ranked_ids_are_the_best_columns_first() -> None:
    sims = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]])
    assert ranked_ids(sims, np.array([10, 20, 30]), k=2).tolist() == [[20, 30], [10, 30]]


@pytest.mark.slow
def test_a_matrix_of_the_original_positives_scores_nearly_all_cxc_r1() -> None:
    metric = eccv_caption.Metrics()
    data = Path(eccv_caption.__file__).parent / "data"
    caption_to_image = json.loads((data / "original_caption_to_image.json").read_text())
    caption_ids = metric.coco_ids
    owner = np.array([caption_to_image[str(c)][0] for c in caption_ids])
    image_ids, rows = np.unique(owner, return_inverse=True)
    sims = np.zeros((len(image_ids), len(caption_ids)), dtype=np.int8)
    sims[rows, np.arange(len(caption_ids))] = 1
    got = extended_metrics(metric, sims, image_ids, caption_ids)
    # CxC keeps almost every original pair (a random matrix scores about 0)
    assert got["cxc"]["i2t_r1"] > 99 and got["cxc"]["t2i_r1"] > 99
    assert set(got["eccv_caption"]) == {f"{d}_{m}" for d in ("i2t", "t2i") for m in ("map_at_r", "rprecision", "r1")}
    assert all(0 <= v <= 100 for values in got.values() for v in values.values())
    # a split without all of COCO 5K's captions gets no extended protocols
    assert extended_metrics(metric, sims[:, :-1], image_ids, caption_ids[:-1]) is None
