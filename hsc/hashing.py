"""sha256 of files, streamed behind a byte progress bar (raw archives are tens of GB)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from hsc.progress import bar

_BLOCK_BYTES = 4 << 20


def sha256_files(paths: Sequence[Path], description: str = "hashing") -> dict[str, str]:
    """File name -> sha256 hex digest, reading each file in blocks."""
    digests = {}
    with bar(transfer=True) as progress:
        task = progress.add_task(description, total=sum(path.stat().st_size for path in paths))
        for path in paths:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                while block := handle.read(_BLOCK_BYTES):
                    digest.update(block)
                    progress.advance(task, len(block))
            digests[path.name] = digest.hexdigest()
    return digests


def sha256_file(path: Path, description: str = "hashing") -> str:
    """The sha256 hex digest of one file."""
    return sha256_files([path], description)[path.name]
