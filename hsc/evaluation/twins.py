"""Recall on near-twin pairs: how often a caption's own image outscores its near-twin.

The synthetic data's near-twins differ in one attribute or in one relation's direction
(docs/synthetic.md): exactly what a bag of words cannot tell apart and phrase-level
supervision targets. For every twin pair (a, b) and every caption j of a (and of b), the
right twin wins when ``sims[a, j] > sims[b, j]``; a tie is a loss, as in the rank metrics.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def twin_recall(sims: np.ndarray, caption_image: np.ndarray, twin_of: np.ndarray,
                kinds: Sequence[str | None]) -> dict[str, float]:
    """Percent of twin captions whose own image scores above the twin, per kind and over all.

    ``twin_of[i]`` is the image ``i`` is a near-twin of (-1 for none) and ``kinds[i]`` what
    tells the pair apart ("attribute" or "relation"); captions are columns of ``sims``.
    """
    caption_image = np.asarray(caption_image)
    wins: dict[str, list[bool]] = {}
    for image, partner in enumerate(np.asarray(twin_of).tolist()):
        if partner < 0:
            continue
        for own, other in ((image, partner), (partner, image)):
            captions = np.flatnonzero(caption_image == own)
            outcome = (sims[own, captions] > sims[other, captions]).tolist()
            wins.setdefault(str(kinds[image]), []).extend(outcome)
            wins.setdefault("all", []).extend(outcome)
    return {kind: 100.0 * float(np.mean(values)) for kind, values in sorted(wins.items())}
