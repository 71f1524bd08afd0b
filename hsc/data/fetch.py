"""Getting raw bytes onto disk: HTTP downloads into a persistent cache, and local copies.

A download streams into ``<archive>.part``, resumes it with a Range request after an
interruption (guarded by If-Range with the first response's ETag or Last-Modified, kept in
``<archive>.part.json``, so a source changed in between is fetched again from byte 0 rather
than spliced; a part with neither is not resumed), retries with exponential backoff, and is renamed to ``<archive>`` only when it
reaches the size the server announced (Content-Length, or a 206's Content-Range total) or,
without either, the size the manifest recorded. A size other than the manifest's fails before
any transfer. A part that already holds every byte (the server answers 416 naming that size)
is renamed without transferring again. ``<cache>/manifest.json`` records each URL's size and
sha256 once it has been received whole and opens as a zip, and a later run checks the cached
archive against it instead of downloading.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable
from urllib.parse import urlparse

from hsc.atomic import write_json
from hsc.errors import HscError
from hsc.hashing import sha256_file, sha256_state
from hsc.progress import bar

CHUNK_BYTES = 1 << 20
BACKOFF_S = 1.0  # first retry delay; doubles with each consecutive failure
USER_AGENT = "hsc-download/0.1"
MANIFEST_NAME = "manifest.json"

# What a flaky or absent network raises; all of these are worth another attempt.
NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)


class FetchError(HscError):
    """A URL could not be fetched; callers add where else the data can come from."""


class _Transient(Exception):
    """A failed attempt that a retry may fix (a 5xx answer, a short body, a restarted range)."""


def require_free_space(directory: Path, needed: int, what: str) -> None:
    """Fail before writing ``needed`` bytes under ``directory`` when the disk cannot hold them."""
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise HscError(f"{directory}: {what} needs {needed:,} bytes but only {free:,} are free; "
                       f"free some space or use another directory")


def copy_stream(source: BinaryIO, sink: BinaryIO, on_chunk: Callable[[bytes], None]) -> int:
    """Copy ``source`` to ``sink`` in chunks, calling ``on_chunk`` after each; return the byte count."""
    copied = 0
    while chunk := source.read(CHUNK_BYTES):
        sink.write(chunk)
        on_chunk(chunk)
        copied += len(chunk)
    return copied


def link_or_copy(pairs: list[tuple[Path, Path]]) -> None:
    """Hard-link each ``(source, target)``; copy (with a byte bar) where linking fails.

    Linking is free on the same filesystem; across filesystems ``os.link`` fails with EXDEV.
    """
    to_copy = []
    for source, target in pairs:
        try:
            os.link(source, target)
        except OSError:
            to_copy.append((source, target))
    if not to_copy:
        return
    total = sum(source.stat().st_size for source, _ in to_copy)
    require_free_space(to_copy[0][1].parent, total, f"copying {len(to_copy)} files")
    with bar(transfer=True) as progress:
        task = progress.add_task("copy", total=total)
        for source, target in to_copy:
            with source.open("rb") as src, target.open("wb") as dst:
                copy_stream(src, dst, lambda chunk: progress.advance(task, len(chunk)))


def archive_name(url: str) -> str:
    """The cache file name for ``url``: its base name tagged with a hash of the whole URL,
    so two mirrors that both serve ``data.zip`` never share (and corrupt) one cache entry."""
    name = PurePosixPath(urlparse(url).path).name or "archive.zip"
    tag = hashlib.sha256(url.encode()).hexdigest()[:8]
    stem, dot, suffix = name.partition(".")
    return f"{stem}-{tag}{dot}{suffix}"


def partial_path(path: Path) -> Path:
    """Where an unfinished download of ``path`` lives (named as partial, kept for resuming)."""
    return path.with_name(path.name + ".part")


def validator_path(part: Path) -> Path:
    """Where the If-Range validator of ``part`` is kept (the first response's ETag or Last-Modified)."""
    return part.with_name(part.name + ".json")


def cached_archive(url: str, cache: Path, *, timeout_s: float, retries: int,
                   backoff_s: float = BACKOFF_S) -> Path:
    """The archive at ``url`` in ``cache``: checked against the manifest if cached, else downloaded."""
    path = cache / archive_name(url)
    manifest_path = cache / MANIFEST_NAME
    manifest = _read_manifest(manifest_path)
    if path.exists():
        entry = _verified_entry(path, manifest.get(url), manifest_path)
    else:
        recorded = manifest.get(url)
        digest = download(url, path, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s,
                          expected_size=recorded["size"] if recorded else None)
        _require_zip(url, path)
        entry = {"size": path.stat().st_size, "sha256": digest}
        if recorded is not None and recorded != entry:  # the server now sends other bytes
            raise HscError(f"{path}: downloaded again, but its sha256 {digest[:12]}... differs from the "
                           f"{recorded['sha256'][:12]}... recorded in {manifest_path}; if the source changed on "
                           f"purpose, delete {path} and its entry in {manifest_path}")
    if manifest.get(url) != entry:
        manifest[url] = entry
        write_json(manifest_path, manifest)
    return path


def download(url: str, dest: Path, *, timeout_s: float, retries: int, backoff_s: float = BACKOFF_S,
             expected_size: int | None = None) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and return its sha256.

    ``retries`` counts consecutive attempts that brought no new bytes: an attempt that made
    progress resets it, since a tens-of-GB transfer over a flaky link may need many resumes.
    ``expected_size`` (the manifest's record) refuses a source whose size changed before any
    transfer, and catches a body cut short when the server announces no size.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    failures = attempts = 0
    while True:
        size_before = _size(part)
        attempts += 1
        try:
            digest = _transfer(url, part, timeout_s, expected_size)
            break
        except (_Transient, *NETWORK_ERRORS) as exc:
            failures = 0 if _size(part) > size_before else failures + 1
            if failures > retries:
                raise FetchError(f"cannot download {url}: {_reason(exc)} "
                                 f"({attempts} attempt{'s' * (attempts > 1)})") from None
            if failures:
                time.sleep(backoff_s * 2 ** (failures - 1))
    os.replace(part, dest)
    validator_path(part).unlink(missing_ok=True)
    return digest


def _transfer(url: str, part: Path, timeout_s: float, expected_size: int | None) -> str:
    """One attempt: append the rest of ``url`` to ``part`` (or restart it); return the sha256."""
    have = _size(part)
    headers = {"User-Agent": USER_AGENT}
    if have:
        if_range = _recorded_if_range(part)
        if if_range is None:  # nothing proves the source unchanged: resuming could splice two files
            print(f"warning: {part}: no ETag or Last-Modified recorded to check that the source is unchanged; "
                  f"restarting the download from byte 0", file=sys.stderr)
            part.unlink()
            have = 0
        else:  # a server whose file changed answers 200 with the whole new file instead of 206
            headers["Range"] = f"bytes={have}-"
            headers["If-Range"] = if_range
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            return _complete_or_restart(exc, part, have)
        if exc.code == 429 or exc.code >= 500:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        raise FetchError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    with response:
        start = _resume_offset(response, part, have)
        total, known_from = _expected_total(response, start, expected_size)
        if expected_size is not None and total != expected_size:  # before hours of transfer, not after
            raise FetchError(f"{url}: serves {total:,} bytes ({known_from}) but {part.parent / MANIFEST_NAME} "
                             f"recorded {expected_size:,}; if the source changed on purpose, delete that entry "
                             f"and {part}, else use another mirror")
        if total is not None:
            require_free_space(part.parent, total - start, f"downloading {url}")
        if not start:
            write_json(validator_path(part), {"if_range": _if_range(response)})
        digest = sha256_state(part, f"hash {part.name}") if start else hashlib.sha256()  # the bytes kept
        try:
            with part.open("ab" if start else "wb") as sink, bar(transfer=True) as progress:
                task = progress.add_task(f"download {part.stem}", total=total, completed=start, resumed_from=start)

                def on_chunk(chunk: bytes) -> None:
                    digest.update(chunk)
                    progress.advance(task, len(chunk))

                received = start + copy_stream(response, sink, on_chunk)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise _disk_full(part, total) from None
    # Only short is retried: http.client never reads past Content-Length, and a body longer than
    # the manifest's size means the source changed, which cached_archive reports.
    if total is not None and received < total:
        raise _Transient(f"got {received:,} of {total:,} bytes ({known_from})")
    return digest.hexdigest()


def _disk_full(part: Path, total: int | None) -> HscError:
    """The one line for a disk that filled up mid-transfer (the free-space check cannot run
    without an announced size, and other writers may fill the disk meanwhile). The part is a
    prefix of the file, so it is kept for the re-run to resume."""
    written = _size(part)
    if total is None:
        needed = f"the size was not announced, so it needs more than the {written:,} bytes written so far"
    else:
        needed = f"it needs {total - written:,} more bytes ({total:,} in all)"
    return HscError(f"{part}: disk full after {written:,} bytes; {needed}; free some space (or pass another "
                    f"--cache) and re-run to resume")


def _complete_or_restart(error: urllib.error.HTTPError, part: Path, have: int) -> str:
    """Answer a 416 to ``bytes={have}-``: return the part's sha256 when the server's
    ``Content-Range: bytes */SIZE`` says it is already whole (killed after the last byte,
    before the rename), else throw it away, since it no longer fits what is served."""
    content_range = error.headers.get("Content-Range")
    match = re.fullmatch(r"bytes \*/(\d+)", (content_range or "").strip())
    if have and match is not None and int(match.group(1)) == have:
        return sha256_file(part, f"verify {part.name}")
    part.unlink(missing_ok=True)
    served = f"Content-Range '{content_range}'" if content_range else "no Content-Range"
    raise _Transient(f"HTTP 416 to bytes={have}- ({served}); deleted {part} to restart from byte 0") from None


def _if_range(response: http.client.HTTPResponse) -> str | None:
    """The validator to resume this body with: a strong ETag (If-Range refuses weak ones),
    else Last-Modified, else None."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")


def _recorded_if_range(part: Path) -> str | None:
    """The validator recorded when ``part`` was started, or None (absent, unreadable, or none sent)."""
    try:
        value = json.loads(validator_path(part).read_text(encoding="utf-8")).get("if_range")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _expected_total(response: http.client.HTTPResponse, start: int,
                    expected_size: int | None) -> tuple[int | None, str]:
    """The size the file should reach, and what says so: Content-Length, else the total of a
    206's Content-Range, else the manifest's size. Without any of them (a chunked or
    close-delimited 200) a body that ends early goes unnoticed here: http.client notices a cut
    only inside a chunked body (IncompleteRead), and cached_archive's zip check catches the rest."""
    length = response.headers.get("Content-Length")
    if length is not None:
        return start + int(length), "Content-Length"
    whole = re.fullmatch(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", "").strip())
    if response.status == 206 and whole is not None:
        return int(whole.group(1)), "Content-Range"
    return expected_size, f"size recorded in {MANIFEST_NAME}"


def _resume_offset(response: http.client.HTTPResponse, part: Path, have: int) -> int:
    """Where the body starts: ``have`` when the server honoured our Range, else 0 (restart)."""
    if response.status != 206:
        return 0  # a server that ignores Range sends the whole file: rewrite the part from 0
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    if match is None or int(match.group(1)) != have:
        part.unlink(missing_ok=True)
        raise _Transient(f"server answered Range bytes={have}- with "
                         f"'{response.headers.get('Content-Range')}', restarting the download")
    return have


def _require_zip(url: str, path: Path) -> None:
    """Delete a download that is not a zip before the manifest vouches for it: a mirror that
    answers with an HTML sign-in or quota page, or a body cut short without a Content-Length."""
    if zipfile.is_zipfile(path):
        return
    with path.open("rb") as f:
        head = f.read(256).lstrip().lower()
    what = "an HTML page, not the file" if head.startswith((b"<!doctype html", b"<html")) else "cut short or not a zip"
    size = path.stat().st_size
    path.unlink()
    raise FetchError(f"{url}: the {size:,} bytes received are {what}, so they were deleted; check that the URL "
                     f"downloads data.zip itself, then re-run")


def _verified_entry(path: Path, expected: dict | None, manifest_path: Path) -> dict:
    """The manifest entry of a cached archive, after checking the file still matches it."""
    size = path.stat().st_size
    if expected is not None and size != expected["size"]:
        raise HscError(f"{path}: cached archive has {size:,} bytes but {manifest_path} recorded "
                       f"{expected['size']:,}; delete {path} and re-run")
    digest = sha256_file(path, f"verify {path.name}")
    if expected is not None and digest != expected["sha256"]:
        raise HscError(f"{path}: cached archive's sha256 {digest[:12]}... differs from "
                       f"{expected['sha256'][:12]}... in {manifest_path}; delete {path} and re-run")
    return {"size": size, "sha256": digest}


def _read_manifest(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HscError(f"{path}: not a valid download manifest ({exc}); delete it and re-run") from None
    if not isinstance(manifest, dict):
        raise HscError(f"{path}: not a valid download manifest (expected a JSON object); delete it and re-run")
    return manifest


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
