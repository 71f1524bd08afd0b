"""Choosing the torch device from a params value (``auto``, ``cpu`` or ``cuda``)."""

from __future__ import annotations

import torch

from hsc.errors import HscError


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when present, else CPU. Asking for ``cuda`` without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HscError("device 'cuda' was asked for but torch sees no CUDA GPU; set device: auto or cpu")
    return torch.device(name)
