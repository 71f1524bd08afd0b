"""sha256 of files, streamed behind a byte progress bar (raw archives are tens of GB)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

from hsc.progress import bar

_BLOCK_BYTES = 4 << 20


def sha256_files(paths: Sequence[Path], description: str = "hashing") -> dict[str, str]:
    """File name -> sha256 hex digest, reading each file in blocks."""
    digests = {}
    with bar(transfer=True) as progress:
        task = progress.add_task(description, total=sum(path.stat().st_size for path in paths))
        for path in paths:
            digests[path.name] = _fed(path, lambda n: progress.advance(task, n)).hexdigest()
    return digests


def sha256_state(path: Path, description: str = "hashing") -> "hashlib._Hash":
    """A sha256 fed with the whole of ``path``, ready for the bytes that follow (a resumed download)."""
    with bar(transfer=True) as progress:
        task = progress.add_task(description, total=path.stat().st_size)
        return _fed(path, lambda n: progress.advance(task, n))


def sha256_file(path: Path, description: str = "hashing") -> str:
    """The sha256 hex digest of one file."""
    return sha256_state(path, description).hexdigest()


def _fed(path: Path, on_block: Callable[[int], None]) -> "hashlib._Hash":
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK_BYTES):
            digest.update(block)
            on_block(len(block))
    return digest
