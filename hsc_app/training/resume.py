"""Deciding whether an existing ``last`` checkpoint may be resumed.

A run is identified by a fingerprint of everything that shapes its result: the model and
training params, the data, and the code of the ``hsc`` library and of this app (a fix to the
model must not resume weights trained before it). ``epochs`` is left out on purpose: raising it continues a
finished run. Device, AMP, workers and validation frequency are left out too: they change the
numbers only at rounding level, and a run started on one device may go on on another.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import hsc
import hsc_app
from hsc.checkpoint import DamagedCheckpoint, OutdatedCheckpoint, load_checkpoint
from hsc.errors import HscError
from hsc_app.params import Params

# Fields of TrainParams that do not change the trained weights.
_NEUTRAL_TRAIN_FIELDS = {"epochs", "device", "workers", "val_every_steps", "amp"}


def code_digest() -> str:
    """sha256 over the source files of the installed ``hsc`` and ``hsc_app`` packages."""
    digest = hashlib.sha256()
    for package in (hsc, hsc_app):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package.__name__}/{path.relative_to(root)}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def run_fingerprint(params: Params, data_identity: dict[str, Any]) -> str:
    """sha256 of the params, data and code that determine the training trajectory."""
    train = params.train.model_dump(exclude=_NEUTRAL_TRAIN_FIELDS)
    payload = {
        "dataset": params.dataset,
        "model": params.model.model_dump(),
        "train": train,
        "data": data_identity,
        "code": code_digest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def resumable_state(last: Path, fingerprint: str, restart: bool = False) -> dict | None:
    """The checkpoint dict at ``last`` if it belongs to this run, else None.

    A checkpoint from other params (or an older hsc) is never resumed silently: it is named
    in a warning and the run starts afresh (it is overwritten at the end of the first epoch).
    A damaged one stops the run unless ``restart`` (``hsc train --restart``) says to start afresh.
    """
    if not last.exists():
        return None
    if restart:
        print(f"warning: {last} is ignored (--restart); starting afresh")
        return None
    try:
        state = load_checkpoint(last)
    except OutdatedCheckpoint as exc:
        print(f"warning: {exc}; starting afresh")
        return None
    except DamagedCheckpoint as exc:
        raise HscError(f"{exc.path}: {exc.problem}; delete it or pass --restart to start afresh") from None
    if state.get("params_sha256") != fingerprint:
        print(f"warning: {last} was trained with other params, data or code; starting afresh")
        return None
    return state
