"""The download stage: registry, HTTP fetch (resume, retries, manifest), extraction, mirrors
and the stage command, against a real HTTP server on 127.0.0.1 serving a small SCAN-layout zip."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hsc.data.datasets import SCAN_DATA_URL, dataset_for
from hsc.data.download import acquire
from hsc.data.fetch import MANIFEST_NAME, archive_name, partial_path, validator_path
from hsc.errors import HscError
from hsc_app.params import Params, parse_params
from hsc_app.stages.download import app

F30K_FILES = {f"{split}_{kind}" for split in ("train", "dev", "test") for kind in ("ims.npy", "caps.txt")}
TINY_BACKOFF_S = 0.001


def scan_files(dataset: str, splits: tuple[str, ...], seed: int = 0) -> dict[str, bytes]:
    """Tiny SCAN-layout files: (2, 3, 4) float32 features and 10 captions per split."""
    rng = np.random.default_rng(seed)
    files = {}
    for split in splits:
        buffer = io.BytesIO()
        np.save(buffer, rng.standard_normal((2, 3, 4)).astype(np.float32))
        files[f"{split}_ims.npy"] = buffer.getvalue()
        files[f"{split}_caps.txt"] = "".join(f"a {dataset} photo {i} of {split}\n" for i in range(10)).encode()
    return files


def write_scan_zip(path: Path, skip: tuple[str, ...] = (), extra: Optional[dict[str, bytes]] = None,
                   compression: int = zipfile.ZIP_DEFLATED, seed: int = 0) -> dict[str, bytes]:
    """SCAN's data.zip in miniature (both datasets); return the f30k files it holds, by flat name.
    Stored (not deflated), zips of any ``seed`` have one size: only the feature values differ."""
    f30k = scan_files("f30k_precomp", ("train", "dev", "test"), seed=seed)
    coco = scan_files("coco_precomp", ("train", "dev", "test", "testall"), seed=seed + 1)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        zf.writestr("data/readme.txt", b"precomputed features\n")
        for dataset, files in (("f30k_precomp", f30k), ("coco_precomp", coco)):
            for name, data in files.items():
                if name not in skip:
                    zf.writestr(f"data/{dataset}/{name}", data)
        for name, data in (extra or {}).items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return {name: data for name, data in f30k.items() if name not in skip}


@dataclass
class ServerState:
    """What the test server serves and the faults it injects; records each request's Range."""

    payload: bytes
    cut_after: Optional[int] = None  # send this many body bytes once, then drop the connection
    ignore_range: bool = False  # answer every request with 200 and the whole body
    stall_s: float = 0.0  # wait this long before answering
    status: int = 200
    framing: str = "length"  # how the body's end is shown: Content-Length, "chunked", or "close" (neither)
    range_416: bool = True  # a Range past the end gets 416 with Content-Range "bytes */SIZE"; False omits it
    send_etag: bool = True  # ETag: a hash of the payload
    last_modified: Optional[str] = "Mon, 02 Nov 2026 10:00:00 GMT"  # None: no Last-Modified
    swap_after_cut: Optional[tuple[bytes, str]] = None  # (payload, Last-Modified) served after the cut
    ranges: list[Optional[str]] = field(default_factory=list)
    if_ranges: list[Optional[str]] = field(default_factory=list)

    @property
    def etag(self) -> Optional[str]:
        return f'"{hashlib.sha256(self.payload).hexdigest()[:16]}"' if self.send_etag else None

    def range_applies(self, if_range: Optional[str]) -> bool:
        """If-Range as servers evaluate it: the Range counts only if the validator is current."""
        return if_range is None or if_range in (self.etag, self.last_modified)


class ArchiveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked bodies need it; urllib asks to close after each request

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        requested, if_range = self.headers.get("Range"), self.headers.get("If-Range")
        state.ranges.append(requested)
        state.if_ranges.append(if_range)
        time.sleep(state.stall_s)
        if state.status != 200:
            self.send_error(state.status)
            return
        start = 0
        if requested and not state.ignore_range and state.range_applies(if_range):
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= len(state.payload):  # what real servers answer for a range past the end
                self.send_response(416)
                if state.range_416:
                    self.send_header("Content-Range", f"bytes */{len(state.payload)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(state.payload) - 1}/{len(state.payload)}")
        else:
            self.send_response(200)
        for name, value in (("ETag", state.etag), ("Last-Modified", state.last_modified)):
            if value is not None:
                self.send_header(name, value)
        body = state.payload[start:]
        cut = state.cut_after is not None
        sent = body[:state.cut_after] if cut else body
        state.cut_after = None
        if cut and state.swap_after_cut is not None:  # the file is replaced before the client resumes
            (state.payload, state.last_modified), state.swap_after_cut = state.swap_after_cut, None
        if state.framing == "chunked":  # one chunk announced whole; a cut ends the stream inside it
            self.send_header("Transfer-Encoding", "chunked")
            sent = f"{len(body):x}\r\n".encode() + sent + (b"" if cut else b"\r\n0\r\n\r\n")
        elif state.framing == "length":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.close_connection = cut or state.framing == "close"
        self.wfile.write(sent)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that timed out leaves a broken pipe here; that is the test's point."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, ServerState, dict[str, bytes]]]:
    """(URL of data.zip, its fault switches, the f30k files it holds)."""
    files = write_scan_zip(tmp_path / "served.zip")
    state = ServerState(payload=(tmp_path / "served.zip").read_bytes())
    httpd = QuietServer(("127.0.0.1", 0), ArchiveHandler)
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/scan-data/data.zip", state, files
    httpd.shutdown()
    httpd.server_close()


def params_for(dataset: str = "f30k_precomp", mirror: Optional[str] = None, retries: int = 2,
               timeout_s: float = 5.0) -> Params:
    return parse_params({"dataset": dataset,
                         "download": {"mirror": mirror, "retries": retries, "timeout_s": timeout_s}})


def fetch_into(tmp_path: Path, params: Params, mirror: Optional[str] = None) -> Path:
    out = tmp_path / "raw" / params.dataset
    acquire(params, out, cache=tmp_path / "downloads", mirror=mirror, backoff_s=TINY_BACKOFF_S)
    return out


def assert_holds(out: Path, files: dict[str, bytes]) -> None:
    assert {p.name for p in out.iterdir()} == set(files)
    for name, data in files.items():
        assert (out / name).read_bytes() == data, name


def assert_nothing_built(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*"))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/data.zip"


# --- registry -------------------------------------------------------------------------------


def test_registry_lists_scan_files_per_dataset() -> None:
    f30k, coco = dataset_for("f30k_precomp"), dataset_for("coco_precomp")
    assert f30k.url == coco.url == SCAN_DATA_URL
    assert set(f30k.files) == F30K_FILES
    assert set(coco.files) == F30K_FILES | {"testall_ims.npy", "testall_caps.txt"}
    assert coco.member("testall_caps.txt") == "data/coco_precomp/testall_caps.txt"
    assert dataset_for("synthetic").url is None
    with pytest.raises(HscError, match="unknown"):
        dataset_for("imagenet")


# --- HTTP -----------------------------------------------------------------------------------


def test_download_extracts_only_the_chosen_dataset_and_records_manifest(tmp_path, server) -> None:
    url, state, files = server
    out = fetch_into(tmp_path, params_for(mirror=url))
    assert_holds(out, files)
    assert not list((tmp_path / "raw").glob(".f30k_precomp.*"))
    manifest = json.loads((tmp_path / "downloads" / MANIFEST_NAME).read_text())
    assert manifest == {url: {"size": len(state.payload), "sha256": hashlib.sha256(state.payload).hexdigest()}}


def test_rerun_uses_the_cached_archive(tmp_path, server) -> None:
    url, state, files = server
    fetch_into(tmp_path, params_for(mirror=url))
    out = fetch_into(tmp_path, params_for(mirror=url))
    assert state.ranges == [None]
    assert_holds(out, files)


def test_cut_connection_resumes_with_a_range_request(tmp_path, server) -> None:
    url, state, files = server
    half = len(state.payload) // 2
    state.cut_after = half
    out = fetch_into(tmp_path, params_for(mirror=url))
    assert state.ranges == [None, f"bytes={half}-"]
    assert state.if_ranges == [None, state.etag]
    archive, part = cached_and_part(tmp_path, url)
    assert archive.read_bytes() == state.payload
    assert not validator_path(part).exists()
    assert_holds(out, files)


@pytest.mark.parametrize("validator", ["etag", "last-modified"])
def test_source_swapped_before_the_resume_is_fetched_whole_not_spliced(tmp_path, server, validator) -> None:
    url, state, _ = server
    write_scan_zip(tmp_path / "old.zip", compression=zipfile.ZIP_STORED)
    state.payload = (tmp_path / "old.zip").read_bytes()
    new_files = write_scan_zip(tmp_path / "new.zip", compression=zipfile.ZIP_STORED, seed=7)
    new = (tmp_path / "new.zip").read_bytes()
    assert len(new) == len(state.payload) and new != state.payload
    state.send_etag = validator == "etag"
    old_validator = state.etag or state.last_modified
    half = len(state.payload) // 2
    state.cut_after, state.swap_after_cut = half, (new, "Tue, 03 Nov 2026 10:00:00 GMT")
    out = fetch_into(tmp_path, params_for(mirror=url))
    assert state.ranges == [None, f"bytes={half}-"] and state.if_ranges == [None, old_validator]
    archive, _ = cached_and_part(tmp_path, url)
    assert archive.read_bytes() == new  # the server answered 200 and the new file replaced the part
    manifest = json.loads((tmp_path / "downloads" / MANIFEST_NAME).read_text())
    assert manifest[url]["sha256"] == hashlib.sha256(new).hexdigest()
    assert_holds(out, new_files)


def test_part_without_a_validator_is_restarted_not_resumed(tmp_path, server, capsys) -> None:
    url, state, files = server
    state.send_etag, state.last_modified = False, None
    half = len(state.payload) // 2
    state.cut_after = half
    out = fetch_into(tmp_path, params_for(mirror=url))
    assert state.ranges == [None, None]  # the cut part was thrown away, never resumed blindly
    assert (tmp_path / "downloads" / archive_name(url)).read_bytes() == state.payload
    assert "no ETag or Last-Modified recorded" in capsys.readouterr().err
    assert_holds(out, files)


def cached_and_part(tmp_path: Path, url: str) -> tuple[Path, Path]:
    archive = tmp_path / "downloads" / archive_name(url)
    return archive, partial_path(archive)


def leave_part(tmp_path: Path, url: str, data: bytes, if_range: Optional[str]) -> Path:
    """A part left by an earlier, interrupted run, with the validator its first response gave."""
    _, part = cached_and_part(tmp_path, url)
    part.parent.mkdir(parents=True)
    part.write_bytes(data)
    validator_path(part).write_text(json.dumps({"if_range": if_range}))
    return part


def test_part_killed_after_its_last_byte_is_completed_without_a_new_transfer(tmp_path, server) -> None:
    url, state, files = server
    archive, _ = cached_and_part(tmp_path, url)
    part = leave_part(tmp_path, url, state.payload, state.etag)  # every byte arrived; the rename did not happen
    out = fetch_into(tmp_path, params_for(mirror=url, retries=0))
    assert state.ranges == [f"bytes={len(state.payload)}-"]  # answered 416 "bytes */SIZE", nothing re-sent
    assert archive.read_bytes() == state.payload and not part.exists()
    manifest = json.loads((tmp_path / "downloads" / MANIFEST_NAME).read_text())
    assert manifest[url]["sha256"] == hashlib.sha256(state.payload).hexdigest()
    assert_holds(out, files)


@pytest.mark.parametrize("range_416", [True, False], ids=["other-size", "no-content-range"])
def test_416_that_does_not_confirm_the_part_restarts_from_zero(tmp_path, server, range_416) -> None:
    url, state, files = server
    state.range_416 = range_416
    archive, _ = cached_and_part(tmp_path, url)
    leave_part(tmp_path, url, state.payload + b"stale tail", state.etag)  # longer than what is served now
    out = fetch_into(tmp_path, params_for(mirror=url))
    assert state.ranges == [f"bytes={len(state.payload) + 10}-", None]
    assert archive.read_bytes() == state.payload
    assert_holds(out, files)


def test_416_restart_is_named_when_retries_run_out(tmp_path, server) -> None:
    url, state, _ = server
    state.range_416 = False
    part = leave_part(tmp_path, url, state.payload, state.etag)
    expected = rf"HTTP 416 to bytes={len(state.payload)}- \(no Content-Range\); deleted .*\.part to restart"
    with pytest.raises(HscError, match=expected):
        fetch_into(tmp_path, params_for(mirror=url, retries=0))
    assert not part.exists()  # the next run starts from zero


def test_cut_chunked_body_fails_the_attempt_instead_of_caching_a_short_archive(tmp_path, server) -> None:
    url, state, _ = server
    state.framing, state.cut_after = "chunked", len(state.payload) // 2  # http.client: IncompleteRead
    with pytest.raises(HscError, match=rf"cannot download {re.escape(url)}: IncompleteRead.*1 attempt"):
        fetch_into(tmp_path, params_for(mirror=url, retries=0))
    assert not (tmp_path / "downloads" / archive_name(url)).exists()
    assert not (tmp_path / "downloads" / MANIFEST_NAME).exists()


def test_cut_chunked_body_is_retried(tmp_path, server) -> None:
    url, state, files = server
    state.framing, state.cut_after = "chunked", len(state.payload) // 2
    assert_holds(fetch_into(tmp_path, params_for(mirror=url, retries=1)), files)
    assert (tmp_path / "downloads" / archive_name(url)).read_bytes() == state.payload


def test_body_without_length_is_checked_against_the_manifest_size(tmp_path, server) -> None:
    url, state, files = server
    fetch_into(tmp_path, params_for(mirror=url))
    archive, _ = cached_and_part(tmp_path, url)
    archive.unlink()  # e.g. deleted to free space; the manifest keeps its size and sha256
    half = len(state.payload) // 2
    state.framing, state.cut_after = "close", half  # the early close looks like a normal end
    out = fetch_into(tmp_path, params_for(mirror=url))
    assert state.ranges == [None, None, f"bytes={half}-"]  # the short body was resumed, not accepted
    assert archive.read_bytes() == state.payload
    assert_holds(out, files)


def test_body_cut_without_length_or_manifest_is_deleted_not_recorded(tmp_path, server) -> None:
    url, state, files = server
    state.framing, state.cut_after = "close", len(state.payload) // 2
    with pytest.raises(HscError, match=rf"^{re.escape(url)}: the [\d,]+ bytes received are cut short or not a zip"):
        fetch_into(tmp_path, params_for(mirror=url))
    assert list((tmp_path / "downloads").iterdir()) == []  # no archive, no manifest vouching for it
    assert_nothing_built(tmp_path / "raw" / "f30k_precomp")
    assert_holds(fetch_into(tmp_path, params_for(mirror=url)), files)  # a re-run gets it whole


def test_html_page_instead_of_the_archive_is_named_as_such(tmp_path, server) -> None:
    url, state, _ = server
    state.payload = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
    with pytest.raises(HscError, match=r"are an HTML page, not the file.*set download.mirror"):
        fetch_into(tmp_path, params_for(mirror=url))
    assert list((tmp_path / "downloads").iterdir()) == []


def test_resumed_body_without_length_is_checked_against_its_content_range(tmp_path, server) -> None:
    url, state, files = server
    archive, _ = cached_and_part(tmp_path, url)
    third = len(state.payload) // 3
    leave_part(tmp_path, url, state.payload[:third], state.etag)
    state.framing, state.cut_after = "close", 100
    out = fetch_into(tmp_path, params_for(mirror=url))
    assert state.ranges == [f"bytes={third}-", f"bytes={third + 100}-"]  # the cut 206 was resumed
    assert archive.read_bytes() == state.payload
    assert_holds(out, files)


def test_size_other_than_the_manifest_records_fails_before_the_transfer(tmp_path, server) -> None:
    url, state, _ = server
    fetch_into(tmp_path, params_for(mirror=url))
    archive, part = cached_and_part(tmp_path, url)
    archive.unlink()
    state.payload += b"changed"
    with pytest.raises(HscError, match=rf"serves {len(state.payload):,} bytes \(Content-Length\) but .*manifest"):
        fetch_into(tmp_path, params_for(mirror=url))
    assert len(state.ranges) == 2 and not part.exists()


def test_server_ignoring_range_restarts_cleanly(tmp_path, server) -> None:
    url, state, files = server
    state.cut_after, state.ignore_range = len(state.payload) // 3, True
    out = fetch_into(tmp_path, params_for(mirror=url))
    assert state.ranges[1] is not None  # it asked to resume and got the whole file instead
    assert (tmp_path / "downloads" / archive_name(url)).read_bytes() == state.payload
    assert_holds(out, files)


def test_no_network_is_one_line_naming_the_url_and_the_mirror_options(tmp_path) -> None:
    url = closed_port_url()
    out = tmp_path / "raw" / "f30k_precomp"
    with pytest.raises(HscError) as caught:
        fetch_into(tmp_path, params_for(mirror=url, retries=1))
    message = str(caught.value)
    assert "\n" not in message
    assert url in message and "download.mirror" in message and "--mirror" in message
    assert message.endswith(f"or a directory outside {out} holding data/f30k_precomp/ "
                            f"(files placed there by hand are linked in)")  # not into out, which DVC deletes
    assert "2 attempts" in message
    assert_nothing_built(out)
    assert not (tmp_path / "downloads" / archive_name(url)).exists()


def test_stalled_server_times_out_after_retries(tmp_path, server) -> None:
    url, state, _ = server
    state.stall_s = 0.5
    with pytest.raises(HscError, match=r"timed out.*2 attempts.*download\.mirror"):
        fetch_into(tmp_path, params_for(mirror=url, retries=1, timeout_s=0.1))


def test_http_client_error_is_not_retried(tmp_path, server) -> None:
    url, state, _ = server
    state.status = 404
    with pytest.raises(HscError, match=r"HTTP 404.*download\.mirror"):
        fetch_into(tmp_path, params_for(mirror=url, retries=3))
    assert state.ranges == [None]


def test_tampered_cached_archive_is_caught_by_the_manifest(tmp_path, server) -> None:
    url, _, _ = server
    fetch_into(tmp_path, params_for(mirror=url))
    cached = tmp_path / "downloads" / archive_name(url)
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    with pytest.raises(HscError, match=rf"sha256.*delete {re.escape(str(cached))} and re-run"):
        fetch_into(tmp_path, params_for(mirror=url))


def test_download_checks_free_disk_before_writing(tmp_path, server, monkeypatch) -> None:
    url, state, _ = server
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(100, 90, 10))
    with pytest.raises(HscError, match=rf"needs {len(state.payload):,} bytes but only 10 are free"):
        fetch_into(tmp_path, params_for(mirror=url))
    assert not partial_path(tmp_path / "downloads" / archive_name(url)).exists()


@pytest.mark.parametrize("framing", ["close", "length"])
def test_disk_full_mid_transfer_is_one_line_naming_the_part_and_the_space(tmp_path, server, monkeypatch,
                                                                           framing) -> None:
    url, state, _ = server
    state.framing = framing

    def fill_the_disk(source, sink, on_chunk) -> int:  # 1,000 bytes fit, then the disk is full
        sink.write(source.read(1000))
        sink.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("hsc.data.fetch.copy_stream", fill_the_disk)
    archive, part = cached_and_part(tmp_path, url)
    with pytest.raises(HscError) as caught:
        fetch_into(tmp_path, params_for(mirror=url))
    needed = ("the size was not announced, so it needs more than the 1,000 bytes written so far" if framing == "close"
              else f"it needs {len(state.payload) - 1000:,} more bytes ({len(state.payload):,} in all)")
    assert str(caught.value) == (f"{part}: disk full after 1,000 bytes; {needed}; free some space "
                                 f"(or pass another --cache) and re-run to resume")
    assert not archive.exists() and not (tmp_path / "downloads" / MANIFEST_NAME).exists()
    assert_nothing_built(tmp_path / "raw" / "f30k_precomp")
    monkeypatch.undo()
    fetch_into(tmp_path, params_for(mirror=url))  # space freed: the kept part resumes
    assert state.ranges[-1] == "bytes=1000-" and archive.read_bytes() == state.payload


def test_disk_full_on_a_tiny_tmpfs_exits_2_with_one_line(tmp_path, server) -> None:
    """The real thing, where a user and mount namespace may mount a 16 KiB tmpfs as the cache."""
    url, state, _ = server
    write_scan_zip(tmp_path / "big.zip", extra={"data/padding.bin": np.random.default_rng(0).bytes(100_000)})
    state.payload, state.framing = (tmp_path / "big.zip").read_bytes(), "close"
    cache = tmp_path / "cache"
    cache.mkdir()
    mount = f"mount -t tmpfs -o size=16k none {cache}"
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "sh", "-c", mount],
                                                         capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs unshare and user namespaces)")
    params = write_params(tmp_path / "params.yaml", url)
    out = tmp_path / "raw"
    hsc = shlex.join([sys.executable, "-m", "hsc_app.cli", "download", "--params", str(params), "--out", str(out),
                      "--cache", str(cache)])
    result = subprocess.run(["unshare", "-rm", "sh", "-c", f"{mount} && {hsc}; rc=$?; ls -A {cache}; exit $rc"],
                            cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert re.fullmatch(rf"error: {re.escape(str(cache))}/data-\w+\.zip\.part: disk full after [\d,]+ bytes; "
                        r"the size was not announced.*re-run to resume", errors[0])
    assert not out.exists() and MANIFEST_NAME not in result.stdout.split()  # nothing that looks complete
    assert f"{archive_name(url)}\n" not in result.stdout


# --- archives -------------------------------------------------------------------------------


def test_extraction_checks_free_disk(tmp_path, monkeypatch) -> None:
    files = write_scan_zip(tmp_path / "data.zip")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(100, 90, 10))
    needed = sum(len(data) for data in files.values())
    with pytest.raises(HscError, match=rf"extracting f30k_precomp.*needs {needed:,} bytes but only 10"):
        fetch_into(tmp_path, params_for(mirror=str(tmp_path / "data.zip")))


def test_file_that_is_not_a_zip_is_reported(tmp_path) -> None:
    archive = tmp_path / "data.zip"
    archive.write_bytes(b"<html>the link is dead</html>")
    with pytest.raises(HscError, match=rf"{re.escape(str(archive))}: not a readable zip.*delete it"):
        fetch_into(tmp_path, params_for(mirror=str(archive)))
    assert_nothing_built(tmp_path / "raw" / "f30k_precomp")


def test_bad_crc_names_the_archive_and_member(tmp_path) -> None:
    archive = tmp_path / "data.zip"
    write_scan_zip(archive, compression=zipfile.ZIP_STORED)
    data = archive.read_bytes()
    at = data.index(b"a f30k_precomp photo 3 of test")
    archive.write_bytes(data[:at] + b"A" + data[at + 1:])
    with pytest.raises(HscError, match=r"member data/f30k_precomp/test_caps.txt is corrupted.*delete it"):
        fetch_into(tmp_path, params_for(mirror=str(archive)))
    assert_nothing_built(tmp_path / "raw" / "f30k_precomp")


@pytest.mark.parametrize("evil", ["../../evil.txt", "/etc/evil.txt", "C:/evil.txt", "data/../../evil.txt"])
def test_escaping_member_is_rejected_even_if_unwanted(tmp_path, evil) -> None:
    archive = tmp_path / "data.zip"
    write_scan_zip(archive, extra={evil: b"pwned"})
    with pytest.raises(HscError, match=rf"member '{re.escape(evil)}' would escape"):
        fetch_into(tmp_path, params_for(mirror=str(archive)))
    assert_nothing_built(tmp_path / "raw" / "f30k_precomp")


def test_missing_members_are_listed(tmp_path) -> None:
    archive = tmp_path / "data.zip"
    write_scan_zip(archive, skip=("test_caps.txt", "dev_ims.npy"))
    with pytest.raises(HscError, match=r"missing data/f30k_precomp/dev_ims.npy, data/f30k_precomp/test_caps.txt"):
        fetch_into(tmp_path, params_for(mirror=str(archive)))


def test_coco_gets_testall_too(tmp_path) -> None:
    write_scan_zip(tmp_path / "data.zip")
    out = fetch_into(tmp_path, params_for("coco_precomp", mirror=str(tmp_path / "data.zip")))
    assert_holds(out, scan_files("coco_precomp", ("train", "dev", "test", "testall"), seed=1))


def test_members_under_another_root_are_found(tmp_path) -> None:
    files = scan_files("f30k_precomp", ("train", "dev", "test"))
    with zipfile.ZipFile(tmp_path / "mirror.zip", "w") as zf:
        for name, data in files.items():
            zf.writestr(f"scan-features/f30k_precomp/{name}", data)
    assert_holds(fetch_into(tmp_path, params_for(mirror=str(tmp_path / "mirror.zip"))), files)


# --- mirrors --------------------------------------------------------------------------------


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_mirror_local_zip(tmp_path, as_url) -> None:
    files = write_scan_zip(tmp_path / "data.zip")
    mirror = (tmp_path / "data.zip").as_uri() if as_url else str(tmp_path / "data.zip")
    assert_holds(fetch_into(tmp_path, params_for(mirror=mirror)), files)
    assert not (tmp_path / "downloads").exists()


def scan_directory(root: Path) -> dict[str, bytes]:
    files = scan_files("f30k_precomp", ("train", "dev", "test"))
    (root / "data" / "f30k_precomp").mkdir(parents=True)
    for name, data in files.items():
        (root / "data" / "f30k_precomp" / name).write_bytes(data)
    return files


@pytest.mark.parametrize("given", ["root", "root/data", "root/data/f30k_precomp"])
def test_mirror_directory_is_hard_linked(tmp_path, given) -> None:
    files = scan_directory(tmp_path / "root")
    out = fetch_into(tmp_path, params_for(mirror=str(tmp_path / given)))
    assert_holds(out, files)
    source = tmp_path / "root" / "data" / "f30k_precomp" / "train_ims.npy"
    assert (out / "train_ims.npy").stat().st_ino == source.stat().st_ino


def test_mirror_directory_is_copied_where_links_fail(tmp_path, monkeypatch) -> None:
    files = scan_directory(tmp_path / "root")

    def cross_device(source: Path, target: Path) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("hsc.data.fetch.os.link", cross_device)
    out = fetch_into(tmp_path, params_for(mirror=(tmp_path / "root").as_uri()))
    assert_holds(out, files)
    assert (out / "dev_caps.txt").stat().st_ino != (tmp_path / "root/data/f30k_precomp/dev_caps.txt").stat().st_ino


def test_mirror_directory_missing_files_are_listed(tmp_path) -> None:
    scan_directory(tmp_path / "root")
    (tmp_path / "root/data/f30k_precomp/dev_caps.txt").unlink()
    with pytest.raises(HscError, match=r"f30k_precomp: missing dev_caps.txt of f30k_precomp"):
        fetch_into(tmp_path, params_for(mirror=str(tmp_path / "root")))


def test_mirror_that_does_not_exist(tmp_path) -> None:
    with pytest.raises(HscError, match=r"mirror '.*nowhere' \(download.mirror or --mirror\): no such file"):
        fetch_into(tmp_path, params_for(mirror=str(tmp_path / "nowhere")))


def test_mirror_option_wins_over_the_param(tmp_path) -> None:
    files = write_scan_zip(tmp_path / "data.zip")
    out = fetch_into(tmp_path, params_for(mirror=closed_port_url()), mirror=str(tmp_path / "data.zip"))
    assert_holds(out, files)


# --- output directory -----------------------------------------------------------------------


def test_failure_keeps_the_old_output_and_success_replaces_it(tmp_path) -> None:
    out = tmp_path / "raw" / "f30k_precomp"
    out.mkdir(parents=True)
    (out / "stale.txt").write_text("old")
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(HscError):
        fetch_into(tmp_path, params_for(mirror=str(tmp_path / "broken.zip")))
    assert (out / "stale.txt").read_text() == "old"
    files = write_scan_zip(tmp_path / "data.zip")
    assert_holds(fetch_into(tmp_path, params_for(mirror=str(tmp_path / "data.zip"))), files)


def fake_generator(monkeypatch, splits: tuple[str, ...]) -> list:
    """Replace the synthetic generator with one that writes ``splits``; return its call log."""
    calls = []

    def generate(cfg, out_dir: Path) -> None:
        calls.append((cfg, out_dir))
        for name, data in scan_files("synthetic", splits).items():
            (out_dir / name).write_bytes(data)

    monkeypatch.setattr("hsc.data.synthetic.generate", generate)
    return calls


def test_synthetic_is_generated_into_the_output(tmp_path, monkeypatch) -> None:
    calls = fake_generator(monkeypatch, ("train", "dev", "test"))
    params = params_for("synthetic", mirror=closed_port_url())  # the mirror does not apply
    out = fetch_into(tmp_path, params)
    assert_holds(out, scan_files("synthetic", ("train", "dev", "test")))
    assert calls[0][0] == params.synthetic


def test_synthetic_generator_output_is_checked(tmp_path, monkeypatch) -> None:
    fake_generator(monkeypatch, ("train", "dev"))
    with pytest.raises(HscError, match=r"did not write test_ims.npy, test_caps.txt"):
        fetch_into(tmp_path, params_for("synthetic"))
    assert_nothing_built(tmp_path / "raw" / "synthetic")


# --- stage command --------------------------------------------------------------------------


def write_params(path: Path, mirror: str) -> Path:
    path.write_text(yaml.safe_dump({"dataset": "f30k_precomp", "download": {"mirror": mirror, "retries": 0}}))
    return path


def test_stage_extracts_from_the_mirror_in_params(tmp_path) -> None:
    files = write_scan_zip(tmp_path / "data.zip")
    params = write_params(tmp_path / "params.yaml", str(tmp_path / "data.zip"))
    out = tmp_path / "raw"
    result = CliRunner().invoke(app, ["--params", str(params), "--out", str(out), "--cache", str(tmp_path / "dl")])
    assert result.exit_code == 0, result.output
    assert f"f30k_precomp: 6 files in {out}" in result.output
    assert_holds(out, files)


def test_stage_mirror_option_overrides_params(tmp_path) -> None:
    files = write_scan_zip(tmp_path / "data.zip")
    params = write_params(tmp_path / "params.yaml", closed_port_url())
    out = tmp_path / "raw"
    result = CliRunner().invoke(app, ["--params", str(params), "--out", str(out),
                                      "--mirror", (tmp_path / "data.zip").as_uri()])
    assert result.exit_code == 0, result.output
    assert_holds(out, files)


def test_stage_without_network_fails_with_one_line(tmp_path) -> None:
    url = closed_port_url()
    params = write_params(tmp_path / "params.yaml", url)
    out = tmp_path / "raw"
    result = CliRunner().invoke(app, ["--params", str(params), "--out", str(out), "--cache", str(tmp_path / "dl")])
    assert result.exit_code != 0
    assert isinstance(result.exception, HscError)
    message = str(result.exception)
    assert "\n" not in message and url in message and "--mirror" in message
    assert not out.exists()


def test_stage_help_lists_every_option() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for option in ("--params", "--out", "--cache", "--mirror"):
        assert option in result.output
