"""Choosing the torch device from a params value (``auto``, ``cpu`` or ``cuda``)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from hsc.errors import HscError


EVALUATE_MEMORY_ADVICE = "lower evaluate.encode_batch, evaluate.img_block or evaluate.cap_block"


def resolve_device(name: str, key: str = "device") -> torch.device:
    """``auto``: CUDA when present, else CPU. Asking for ``cuda`` without one is an error naming ``key``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HscError(f"{key} is 'cuda' but torch sees no CUDA GPU; set {key} to auto or cpu")
    return torch.device(name)


@contextlib.contextmanager
def out_of_memory_advice(advice: str) -> Iterator[None]:
    """Turn a CUDA out-of-memory error inside the block into one line saying what to lower."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise HscError(f"CUDA out of memory; {advice}") from None
