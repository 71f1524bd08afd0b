"""Score splits with one checkpoint, or the mean of several (SGRAF's SGR + SAF recipe).

Models are loaded one at a time, so memory holds one model plus the running sum of scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from hsc.checkpoint import check_fits, load_model
from hsc.evaluation.scoring import encode_split, score_matrix


def ensemble_scores(checkpoints: Sequence[Path], readers: Mapping[str, Any], *, device: torch.device,
                    batch_size: int, img_block: int, cap_block: int) -> dict[str, np.ndarray]:
    """Per split, the mean over checkpoints of their (N, C) score matrices (each split scored once per model)."""
    totals: dict[str, np.ndarray] = {}
    for path in checkpoints:
        model, checkpoint = load_model(path, device)
        for reader in readers.values():
            check_fits(path, checkpoint, reader)
        for split, reader in readers.items():
            emb = encode_split(model, reader, batch_size=batch_size, device=device)
            sims = score_matrix(model, emb, img_block=img_block, cap_block=cap_block, device=device)
            del emb  # a COCO 5K split's caption embeddings take GBs
            if split in totals:
                totals[split] += sims
            else:
                totals[split] = sims
        del model
    for total in totals.values():
        total /= len(checkpoints)
    return totals
