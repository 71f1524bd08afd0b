"""Near-twin recall: the caption's own image must strictly outscore its twin."""

from __future__ import annotations

import numpy as np
import pytest

from hsc.evaluation.twins import twin_recall


def test_own_image_must_beat_its_twin_and_ties_lose() -> None:
    # Images 0 and 1 are twins (relation), image 2 has none; two captions per image.
    caption_image = np.array([0, 0, 1, 1, 2, 2])
    sims = np.array([
        [0.9, 0.5, 0.4, 0.3, 0.0, 0.0],
        [0.1, 0.5, 0.8, 0.6, 0.0, 0.0],
        [0.9, 0.9, 0.9, 0.9, 0.9, 0.9],
    ])
    twin_of = np.array([-1, 0, -1])
    kinds = [None, "relation", None]
    # Captions of 0: 0.9 > 0.1 wins, 0.5 = 0.5 loses; captions of 1: 0.8 > 0.4 and 0.6 > 0.3 win.
    assert twin_recall(sims, caption_image, twin_of, kinds) == {"all": 75.0, "relation": 75.0}


def test_kinds_are_reported_apart() -> None:
    caption_image = np.repeat(np.arange(4), 1)
    sims = np.eye(4)
    sims[1, 0] = 2.0  # image 1 beats image 0 on caption 0: the attribute pair loses once
    result = twin_recall(sims, caption_image, np.array([-1, 0, -1, 2]), [None, "attribute", None, "relation"])
    assert result == {"all": pytest.approx(75.0), "attribute": 50.0, "relation": 100.0}
