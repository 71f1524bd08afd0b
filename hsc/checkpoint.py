"""Save and load hsc checkpoints; a model is rebuilt from its checkpoint alone.

Everything stored is safe for ``torch.load(weights_only=True)``: tensors, dicts, lists and
primitives, so loading a checkpoint never runs code from it. A sha256 over everything stored
(``checksum``) is checked on load, and the same contents always give the same file bytes.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import torch

from hsc.atomic import atomic_path
from hsc.errors import HscError, first_line
from hsc.legacy.safe_load import refusal_reason
from hsc.models.base import RetrievalModel
from hsc.models.config import ModelSpec
from hsc.models.registry import build_model

FORMAT = "hsc-checkpoint"
VERSION = 2  # 2: with a checksum
REPAIR = "train again or restore a good copy (`hsc import` again for released weights)"


class DamagedCheckpoint(HscError):
    """A file that is not a whole, unaltered hsc checkpoint: truncated, corrupt, tampered with or foreign."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}; {REPAIR}")


class OutdatedCheckpoint(HscError):
    """An hsc checkpoint in a format version this code does not read."""


def save_checkpoint(path: str | Path, model: RetrievalModel, *, vocab_sha256: str, **state: Any) -> None:
    """Write ``model`` with its config, vocabulary hash and any extra ``state`` (epoch, optimizer...) atomically."""
    checkpoint = {**state, "format": FORMAT, "version": VERSION, "model_config": model.spec.to_dict(),
                  "vocab_sha256": vocab_sha256, "state_dict": model.state_dict()}
    checkpoint["checksum"] = checksum(checkpoint)
    # Serialised in memory: saved to a path, torch names the archive's root folder after the
    # (temporary, per-process) file name, so equal weights would give different bytes.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    with atomic_path(path, needed_bytes=buffer.getbuffer().nbytes) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path``; a missing, damaged or foreign file is one :class:`HscError` line."""
    path = Path(path)
    if not path.is_file():
        raise HscError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's text advises weights_only=False: never quote that
        reason = refusal_reason(str(exc))
        if "Unsupported global" not in str(exc):  # bytes that are no pickle at all, not a refused object
            raise DamagedCheckpoint(path, f"not a readable hsc checkpoint, truncated or corrupt ({reason})") from None
        raise DamagedCheckpoint(path, f"refused to load: {reason}; hsc checkpoints hold only tensors and plain "
                                      "values, so this file was not written by hsc") from None
    except Exception as exc:  # any failure to parse the bytes: truncated, corrupt or not torch's format
        raise DamagedCheckpoint(path, f"not a readable hsc checkpoint, truncated or corrupt ({first_line(exc)})"
                                ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise HscError(f"{path}: not an hsc checkpoint (no format '{FORMAT}'); "
                       "import released LHSC/SGRAF weights with `hsc import`")
    version = checkpoint.get("version")
    if version != VERSION:
        raise OutdatedCheckpoint(
            f"{path}: hsc checkpoint version {version!r}, this code reads version {VERSION}; " + (
                "it was made by an older hsc: train again, or run `hsc import` again for released weights"
                if isinstance(version, int) and version < VERSION else "update hsc to read it"))
    if checkpoint.get("checksum") != checksum(checkpoint):
        raise DamagedCheckpoint(path, "is damaged (checksum mismatch)")
    return checkpoint


def checksum(checkpoint: dict[str, Any]) -> str:
    """sha256 over every stored value but ``checksum`` itself: tensors by dtype, shape and bytes."""
    digest = hashlib.sha256()
    _digest(digest, {key: value for key, value in checkpoint.items() if key != "checksum"})
    return digest.hexdigest()


def _digest(digest: Any, value: Any) -> None:
    # Each value is tagged with its type and delimited, so different structures never hash alike.
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(f"tensor {value.dtype} {tuple(value.shape)}:".encode())
        digest.update(data.numpy())
    elif isinstance(value, dict):
        digest.update(b"{")
        for key, item in value.items():
            _digest(digest, key)
            _digest(digest, item)
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[" if isinstance(value, list) else b"(")
        for item in value:
            _digest(digest, item)
        digest.update(b"]")
    else:  # str, int, float, bool, None: repr is exact and tagged by the type's name
        digest.update(f"{type(value).__name__} {value!r};".encode())


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

