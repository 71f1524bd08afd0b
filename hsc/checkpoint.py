"""Save and load hsc checkpoints; a model is rebuilt from its checkpoint alone.

Everything stored is safe for ``torch.load(weights_only=True)``: tensors, dicts, lists and
primitives, so loading a checkpoint never runs code from it.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from hsc.atomic import atomic_path
from hsc.errors import HscError, first_line
from hsc.models.base import RetrievalModel
from hsc.models.config import ModelSpec
from hsc.models.registry import build_model

FORMAT = "hsc-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, model: RetrievalModel, *, vocab_sha256: str, **state: Any) -> None:
    """Write ``model`` with its config, vocabulary hash and any extra ``state`` (epoch, optimizer...) atomically."""
    checkpoint = {**state, "format": FORMAT, "version": VERSION, "model_config": model.spec.to_dict(),
                  "vocab_sha256": vocab_sha256, "state_dict": model.state_dict()}
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path``; a missing, corrupt or foreign file is one :class:`HscError` line."""
    path = Path(path)
    if not path.is_file():
        raise HscError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as exc:
        raise HscError(f"{path}: not a readable hsc checkpoint ({first_line(exc)})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise HscError(f"{path}: not an hsc checkpoint (no format '{FORMAT}'); "
                       "import released LHSC/SGRAF weights with `hsc import`")
    if checkpoint.get("version") != VERSION:
        raise HscError(f"{path}: hsc checkpoint version {checkpoint.get('version')!r}, "
                       f"this code reads version {VERSION}")
    return checkpoint


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[RetrievalModel, dict[str, Any]]:
    """(model in eval mode on ``device``, checkpoint dict) rebuilt from the checkpoint alone."""
    checkpoint = load_checkpoint(path, map_location=device)
    if "model_config" not in checkpoint or "state_dict" not in checkpoint:
        raise HscError(f"{path}: an hsc checkpoint without model_config or state_dict; save it again")
    try:
        model = build_model(ModelSpec.from_dict(checkpoint["model_config"]))
    except HscError as exc:
        raise HscError(f"{path}: {exc}") from None
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise HscError(f"{path}: its weights do not fit its model_config ({first_line(exc)})") from None
    return model.to(device).eval(), checkpoint


def check_fits(path: Path, checkpoint: dict[str, Any], reader: Any) -> None:
    """A checkpoint only scores data prepared with its vocabulary and feature size."""
    trained, prepared = checkpoint.get("vocab_sha256"), reader.vocab_sha256
    if trained != prepared:
        raise HscError(f"{path}: vocabulary sha256 {str(trained)[:12]}... differs from {reader.path}'s "
                       f"{prepared[:12]}...; prepare the data with the model's vocabulary (prepare.vocab)")
    shape = checkpoint["model_config"]["data"]
    for key, have, what in (("img_dim", reader.feat_dim, "features per region"), ("regions", reader.regions, "regions")):
        if shape[key] != have:
            raise HscError(f"{path}: model expects {shape[key]} {what} but {reader.path} has {have}; "
                           f"use the dataset the model was made for")

