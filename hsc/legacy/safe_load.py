"""Read a released SCAN/SGRAF/LHSC ``model_best.pth.tar`` without running code from it.

The file is unpickled by torch's weights-only unpickler, which builds tensors, state dicts
and plain values only; the one class added to its allow-list is ``argparse.Namespace`` (the
training options). Both serialisation formats load: torch's zip format and the legacy
format that Python 2.7 / torch 0.4 wrote, whose byte strings decode as latin-1.
"""

from __future__ import annotations

import argparse
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from hsc.errors import HscError, first_line

PARTS = ("img_enc", "txt_enc", "sim_enc")
# Forks that wrapped an encoder in DataParallel saved its keys with this prefix.
DATA_PARALLEL_PREFIX = "module."


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """The parts of a released checkpoint that an import needs."""

    path: Path
    parts: dict[str, dict[str, torch.Tensor]]  # img_enc / txt_enc / sim_enc -> state dict
    opt: dict[str, Any]  # the training options (empty when the file has none)
    epoch: int | None
    best_rsum: float | None


def load_released(path: Path) -> ReleasedCheckpoint:
    """Load ``path`` safely and check its layout: ``model`` = three state dicts, ``opt`` = options."""
    raw = _unpickle(path)
    if not isinstance(raw, dict) or "model" not in raw:
        raise HscError(f"{path}: not a released SCAN/SGRAF/LHSC checkpoint (no 'model' entry)")
    states = raw["model"]
    if not isinstance(states, (list, tuple)) or len(states) != len(PARTS):
        raise HscError(f"{path}: key 'model' should be a list of {len(PARTS)} state dicts "
                       f"({', '.join(PARTS)})")
    parts = {name: _state_dict(path, name, state) for name, state in zip(PARTS, states)}
    opt = raw.get("opt")
    if opt is not None and not isinstance(opt, argparse.Namespace):
        raise HscError(f"{path}: key 'opt' should be the training options (argparse.Namespace), "
                       f"not {type(opt).__name__}")
    return ReleasedCheckpoint(path=path, parts=parts, opt=dict(vars(opt)) if opt is not None else {},
                              epoch=raw.get("epoch"), best_rsum=raw.get("best_rsum"))


def _unpickle(path: Path) -> Any:
    if not path.is_file():
        raise HscError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():
            # torch warns that pickle arguments are ignored with weights_only; the encoding is not.
            warnings.filterwarnings("ignore", message="pickle_load_args only works")
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(path, map_location="cpu", weights_only=True, encoding="latin1")
    except pickle.UnpicklingError as exc:
        raise HscError(f"{path}: refused to load: {refusal_reason(str(exc))}; "
                       "only tensors, state dicts and training options are read from released checkpoints"
                       ) from None
    except Exception as exc:  # any failure to parse untrusted bytes means the file is not a checkpoint
        raise HscError(f"{path}: not a readable torch checkpoint ({first_line(exc)})") from None


def refusal_reason(message: str) -> str:
    """One line from torch's multi-line weights-only error: the object that was refused."""
    found = re.search(r"GLOBAL (\S+)", message)
    if found:
        return f"it holds {found.group(1)}, which is not allowed"
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    return (detail.group(1) if detail else message.strip().splitlines()[-1]).strip()


def _state_dict(path: Path, part: str, state: object) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping):
        raise HscError(f"{path}: the {part} entry of 'model' should be a state dict, not {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise HscError(f"{path}: {part} key {key!r} should map a name to a tensor")
    return _without_data_parallel_prefix(path, part, dict(state))


def _without_data_parallel_prefix(path: Path, part: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of a DataParallel-wrapped part under the plain module's keys."""
    prefixed = [key.startswith(DATA_PARALLEL_PREFIX) for key in state]
    if not any(prefixed):
        return state
    if not all(prefixed):
        plain = next(key for key, wrapped in zip(state, prefixed) if not wrapped)
        raise HscError(f"{path}: {part} mixes keys with and without the DataParallel prefix "
                       f"'{DATA_PARALLEL_PREFIX}' (e.g. {plain!r}); cannot tell which module each belongs to")
    return {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state.items()}
