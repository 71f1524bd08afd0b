"""The download stage's work: fill ``<out>`` with one dataset's raw SCAN-layout files.

For ``coco_format`` the user's own files are converted into that layout instead
(:mod:`hsc.data.coco_format`).

``<out>`` receives ``{split}_ims.npy`` and ``{split}_caps.txt`` for the dataset's splits. It is
built in a hidden sibling directory and renamed onto ``<out>`` only when complete, so a crash
never leaves a half-filled ``<out>`` that looks complete.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from hsc.atomic import atomic_directory
from hsc.data.archive import extract_dataset
from hsc.data.config import RawDataParams
from hsc.data.datasets import Dataset, dataset_for
from hsc.data.fetch import BACKOFF_S, FetchError, cached_archive, link_or_copy
from hsc.errors import HscError


def acquire(params: RawDataParams, out: Path, cache: Path, mirror: Optional[str] = None,
            backoff_s: float = BACKOFF_S) -> None:
    """Build ``out`` for ``params.dataset``: generate it, or get it from ``mirror`` (which wins),
    ``params.download.mirror`` or the registered URL, downloading into ``cache`` if needed."""
    source = dataset_for(params.dataset)
    with atomic_directory(out) as build_dir:
        if source.name == "coco_format":
            from hsc.data.coco_format import convert  # pycocotools is only needed for this source

            convert(params.coco_format, build_dir)
            return
        if source.url is None:
            _generate(params, source, build_dir)
            return
        location = mirror or params.download.mirror or source.url
        if location.startswith(("http://", "https://")):
            try:
                archive = cached_archive(location, cache, timeout_s=params.download.timeout_s,
                                         retries=params.download.retries, backoff_s=backoff_s)
            except FetchError as exc:
                raise HscError(f"{exc}; {_where_else(source, out)}") from None
            extract_dataset(archive, source, build_dir)
            return
        path = _local_path(location)
        if path.is_dir():
            _link_from_directory(path, source, build_dir)
        elif path.is_file():
            extract_dataset(path, source, build_dir)
        else:
            raise HscError(f"mirror '{location}' (download.mirror or --mirror): no such file or directory; "
                           f"give an http(s):// or file:// URL of SCAN's data.zip, a local zip, "
                           f"or a directory holding data/{source.name}/")


def find_dataset_dir(root: Path, source: Dataset) -> Path:
    """The directory under ``root`` that holds the dataset's files: ``root/data/<name>``
    (root holds ``data/``), ``root/<name>`` (root is ``data/``), or ``root`` itself."""
    for candidate in (root / "data" / source.name, root / source.name):
        if candidate.is_dir():
            return candidate
    if any((root / name).is_file() for name in source.files):
        return root
    raise HscError(f"{root}: no files of {source.name} (looked in data/{source.name}/, "
                   f"{source.name}/ and the directory itself); point download.mirror or --mirror "
                   f"at a directory laid out like SCAN's data/")


def _link_from_directory(root: Path, source: Dataset, build_dir: Path) -> None:
    found = find_dataset_dir(root, source)
    missing = source.missing_in(found)
    if missing:
        raise HscError(f"{found}: missing {', '.join(missing)} of {source.name}; "
                       f"complete the directory or use SCAN's data.zip")
    link_or_copy([(found / name, build_dir / name) for name in source.files])


def _generate(params: RawDataParams, source: Dataset, build_dir: Path) -> None:
    from hsc.data.synthetic import generate  # the generator pulls in numpy; only this branch needs it

    generate(params.synthetic, build_dir)
    missing = source.missing_in(build_dir)
    if missing:
        raise HscError(f"{build_dir}: the synthetic generator did not write {', '.join(missing)}")


def _local_path(location: str) -> Path:
    if location.startswith("file://"):
        return Path(urllib.request.url2pathname(urlparse(location).path))
    return Path(location).expanduser()


def _where_else(source: Dataset, out: Path) -> str:
    # Never suggest filling ``out`` by hand: it is the stage's output, which DVC deletes before the stage runs.
    return (f"set download.mirror in params.yaml (or --mirror) to a mirror URL, a local zip, or a directory "
            f"outside {out} holding data/{source.name}/ (files placed there by hand are linked in)")
