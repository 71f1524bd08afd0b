"""How many CPU threads torch uses: ``threads`` in params.yaml, overridden by ``$HSC_THREADS``.

Every stage applies it right after reading its params, before any heavy work, since torch
fixes its inter-op pool at the first parallel operation. 0 leaves torch's default (one thread
per physical core, or ``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Mapping, Optional

from hsc.errors import HscError

ENV = "HSC_THREADS"


def resolve_threads(param: int, environ: Mapping[str, str] = os.environ) -> tuple[int, str]:
    """The thread count to use and where it came from (``$HSC_THREADS`` wins over the param)."""
    raw = environ.get(ENV, "").strip()
    if not raw:
        return param, "params key threads"
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise HscError(f"environment variable {ENV}={raw!r}: expected a whole number of threads, 0 or more "
                       f"(0: torch's default); fix or unset it")
    return value, ENV


def apply_threads(param: int, environ: Mapping[str, str] = os.environ) -> Optional[int]:
    """Set torch's intra-op (and, while still allowed, inter-op) threads; the count set, or None for 0."""
    count, origin = resolve_threads(param, environ)
    if not count:
        return None
    import torch

    torch.set_num_threads(count)
    # torch allows this once, before its first inter-op work; the intra-op count is what matters
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(count)
    print(f"threads: {count} (from {origin})")
    return count
