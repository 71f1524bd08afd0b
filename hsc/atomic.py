"""Write files under a temporary name and rename when complete.

A crash mid-write then never leaves a half-written file that looks complete, and a full
disk is one :class:`DiskFull` line naming the file and the space it needs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from hsc.errors import HscError


class DiskFull(HscError):
    """The disk filled up while writing ``path``; the partial output has been removed."""

    def __init__(self, path: Path, needed_bytes: int | None) -> None:
        self.path, self.needed_bytes = path, needed_bytes
        need = f"it needs about {_megabytes(needed_bytes)}, " if needed_bytes else ""
        super().__init__(f"{path}: no space left on device ({need}{_megabytes(_free_bytes(path))} free there); "
                         f"free some space or write elsewhere, then run again (nothing partial was kept)")


def is_disk_full(exc: BaseException) -> bool:
    """True for the error of a write to a full disk or quota (h5py sets errno too)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _free_bytes(path: Path) -> int:
    existing = next(parent for parent in path.parents if parent.exists())
    return shutil.disk_usage(existing).free


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def temp_path_for(path: Path) -> Path:
    """The temporary sibling of ``path`` (same directory, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path, needed_bytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``path`` only if the block succeeds.

    A full disk becomes :class:`DiskFull` quoting ``needed_bytes`` (the expected size, if known).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        remove(tmp)  # before DiskFull measures the free space
        raise DiskFull(path, needed_bytes) from None
    finally:
        remove(tmp)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty hidden sibling directory to fill; it replaces ``path`` only if the block succeeds.

    Staging directories left by killed runs are removed first; an existing ``path`` is kept
    until the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        remove(stale)
    staging = temp_path_for(path)
    staging.mkdir()
    try:
        yield staging
        if path.exists() or path.is_symlink():
            old = path.with_name(f".{path.name}.{os.getpid()}.old.tmp")
            os.replace(path, old)
            os.replace(staging, path)
            remove(old)
        else:
            os.replace(staging, path)
    except DiskFull as exc:
        remove(staging)  # before DiskFull measures the free space
        inside = exc.path.relative_to(staging) if exc.path.is_relative_to(staging) else None
        raise (DiskFull(path / inside, exc.needed_bytes) if inside else exc) from None  # the name it would have had
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        remove(staging)
        raise DiskFull(path, None) from None
    finally:
        remove(staging)


def remove(path: Path) -> None:
    """Delete a file, link or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def save_npy(path: str | Path, array: Any) -> None:
    """``numpy.save`` atomically (through a handle: np.save would append .npy to the temporary name)."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
