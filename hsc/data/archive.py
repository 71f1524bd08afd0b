"""Extracting one dataset's files from SCAN's ``data.zip``, safely and member by member.

The archive holds both datasets (30+ GB); only the chosen dataset's members are read. Every
member name is checked first, so an archive with a path that would escape the target (an
absolute path or ``..``) is rejected as a whole, even when that member is not one we want.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

from hsc.data.datasets import Dataset
from hsc.data.fetch import copy_stream, require_free_space
from hsc.errors import HscError
from hsc.progress import bar

_DRIVE = re.compile(r"^[A-Za-z]:")
_MIRROR_HINT = "delete it and re-run, or set download.mirror (or --mirror) to another copy"


def extract_dataset(archive: Path, source: Dataset, out_dir: Path) -> None:
    """Write ``source.files`` from ``archive`` into ``out_dir`` (flat), with a byte progress bar."""
    with _open_zip(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _reject_escaping(archive, info.filename)
        chosen = choose_members(archive, infos, source)
        total = sum(info.file_size for info in chosen.values())
        require_free_space(out_dir, total, f"extracting {source.name} from {archive}")
        with bar(transfer=True) as progress:
            task = progress.add_task(f"extract {source.name}", total=total)
            for file_name, info in chosen.items():
                try:
                    with zf.open(info) as src, (out_dir / file_name).open("wb") as dst:
                        copy_stream(src, dst, lambda chunk: progress.advance(task, len(chunk)))
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    raise HscError(f"{archive}: member {info.filename} is corrupted ({exc}); "
                                   f"{_MIRROR_HINT}") from None


def choose_members(archive: Path, infos: list[zipfile.ZipInfo], source: Dataset) -> dict[str, zipfile.ZipInfo]:
    """Map each of ``source.files`` to its member: SCAN's ``data/<name>/<file>`` if present,
    else the shallowest ``.../<name>/<file>`` (mirrors re-zip the tree under other roots)."""
    by_path = {info.filename: info for info in infos if not info.is_dir()}
    chosen: dict[str, zipfile.ZipInfo] = {}
    for file_name in source.files:
        exact = source.member(file_name)
        if exact in by_path:
            chosen[file_name] = by_path[exact]
            continue
        suffix = f"{source.name}/{file_name}"
        matches = sorted((p for p in by_path if p == suffix or p.endswith("/" + suffix)), key=len)
        if matches:
            chosen[file_name] = by_path[matches[0]]
    missing = [source.member(name) for name in source.files if name not in chosen]
    if missing:
        raise HscError(f"{archive}: missing {', '.join(missing)}; "
                       f"use a complete copy of SCAN's data.zip (download.mirror or --mirror)")
    return chosen


def _open_zip(archive: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise HscError(f"{archive}: not a readable zip archive ({exc}); {_MIRROR_HINT}") from None


def _reject_escaping(archive: Path, name: str) -> None:
    """Fail on a member whose path is absolute or climbs out with ``..`` (zip slip)."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix) or ".." in posix.split("/"):
        raise HscError(f"{archive}: member '{name}' would escape the target directory; "
                       f"refusing the archive, use a trusted copy (download.mirror or --mirror)")
