"""Deciding whether an existing ``last`` checkpoint may be resumed.

A run is identified by a fingerprint of everything that shapes its result (model, training
recipe, data identity). ``epochs`` is left out on purpose: raising it continues a finished
run. Device, workers and validation frequency do not change the weights and are left out too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hsc.params import Params

# Fields of TrainParams that do not change the trained weights.
_NEUTRAL_TRAIN_FIELDS = {"epochs", "device", "workers", "val_every_steps", "amp"}


def run_fingerprint(params: Params, data_identity: dict[str, Any]) -> str:
    """sha256 of the params and data that determine the training trajectory."""
    train = params.train.model_dump(exclude=_NEUTRAL_TRAIN_FIELDS)
    payload = {
        "dataset": params.dataset,
        "model": params.model.model_dump(),
        "train": train,
        "data": data_identity,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def resumable_state(last: Path, fingerprint: str, load) -> dict | None:
    """The checkpoint dict at ``last`` if it belongs to this run, else None.

    A checkpoint from other params is never resumed silently: it is named in a warning and
    the run starts afresh (it is overwritten at the end of the first epoch).
    """
    if not last.exists():
        return None
    state = load(last)
    if state.get("params_sha256") != fingerprint:
        print(f"warning: {last} was trained with other params or data; starting afresh")
        return None
    return state
