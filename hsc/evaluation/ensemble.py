"""Score splits with one checkpoint, or the mean of several (SGRAF's SGR + SAF recipe).

Models are loaded one at a time, so memory holds one model plus the running sum of scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from hsc.checkpoint import load_model
from hsc.errors import HscError
from hsc.evaluation.scoring import encode_split, score_matrix


def check_compatible(checkpoint_path: Path, checkpoint: Mapping[str, Any], reader: Any) -> None:
    """The split must use the checkpoint's vocabulary and feature size."""
    trained, prepared = checkpoint.get("vocab_sha256"), reader.vocab_sha256
    if trained != prepared:
        raise HscError(f"{checkpoint_path}: vocabulary sha256 {str(trained)[:12]}... differs from {reader.path}'s "
                       f"{prepared[:12]}...; evaluate on data prepared with the model's vocabulary")
    config = checkpoint.get("model_config", {})
    for key, have, what in (("img_dim", reader.feat_dim, "features per region"), ("regions", reader.regions, "regions")):
        if key in config and config[key] != have:
            raise HscError(f"{checkpoint_path}: model expects {config[key]} {what} but {reader.path} has {have}; "
                           f"evaluate on the dataset the model was trained on")


def ensemble_scores(checkpoints: Sequence[Path], readers: Mapping[str, Any], *, device: torch.device,
                    batch_size: int, img_block: int, cap_block: int) -> dict[str, np.ndarray]:
    """Per split, the mean over checkpoints of their (N, C) score matrices (each split scored once per model)."""
    totals: dict[str, np.ndarray] = {}
    for path in checkpoints:
        model, checkpoint = load_model(path, device)
        for reader in readers.values():
            check_compatible(path, checkpoint, reader)
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
