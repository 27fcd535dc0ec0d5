"""Fetch a finished video to disk: streamed, resumable, proven whole, atomic, durable.

The result URL lives on Kling's CDN, not on CometAPI, so this uses a plain session that
never carries the API key. Any 2xx answer is a body, with or without a length, chunked or
not, in any Content-Encoding (the decoded file is what counts). The file appears at `dest`
only once it is whole (see verify.py) and on disk (fsync); until then it is a `.part` file
of this download's own. A complete body that is not a whole video is moved aside, never
deleted: a paid video is never thrown away on a guess.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

import requests
import urllib3

from . import errors
from .verify import check_video
from .disk import sync_file, sync_folder

EXPIRED_STATUSES = (403, 404, 410)
DEFAULT_TIMEOUT = (10, 30)  # (connect, read between bytes)


@dataclass
class _Transfer:
    """How far one download has come, across its tries."""

    part: Path
    done: int = 0  # bytes of the file in `part`
    total: Optional[int] = None  # the file's size, when a server said it
    received: int = 0  # bytes received over all tries
    resumable: bool = True  # False after an encoded answer: its byte offsets are not the file's


def download_file(url: str, dest, *, on_progress: Optional[Callable[[int, Optional[int]], None]] = None,
                  should_stop: Optional[Callable[[], bool]] = None, session: Optional[requests.Session] = None,
                  chunk_size: int = 1 << 20, attempts: int = 4, timeout=DEFAULT_TIMEOUT,
                  retry_delay: float = 1.0) -> Path:
    """Download `url` to `dest`; resume with Range after a broken connection (up to `attempts` tries).

    on_progress(done_bytes, total_bytes or None) after each chunk, called from this thread.
    A try that brought no new bytes waits retry_delay seconds before the next. Raises UrlExpired on
    403/404/410, DownloadCancelled when should_stop() turns true, BrokenVideo (with the file kept
    aside) when the body is not a whole video, DownloadError otherwise.
    """
    dest = Path(dest)
    where = describe_url(url)
    check_result_url(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    transfer = _Transfer(_new_part(dest))
    own_session = session is None
    session = session or requests.Session()
    try:
        problem, before = "", None
        for attempt in range(max(1, attempts)):
            if transfer.received == before:  # nothing arrived last time: give the host a moment
                time.sleep(retry_delay)
            before = transfer.received
            try:
                _fetch(session, url, transfer, where, on_progress, should_stop, chunk_size, timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    urllib3.exceptions.HTTPError) as exc:
                problem = type(exc).__name__
                if transfer.resumable:  # keep what arrived; the next try resumes from there
                    transfer.done = transfer.part.stat().st_size
                else:
                    transfer.part.write_bytes(b"")
                    transfer.done = 0
                continue
            except requests.RequestException as exc:  # its text would carry the signed URL
                raise errors.DownloadError(f"The video download from {where} failed ({type(exc).__name__}).") \
                    from None
            if transfer.total is None or transfer.done >= transfer.total:
                break  # done > total is reported by the check below
            problem = f"the connection closed after {transfer.done} of {transfer.total} bytes"
        else:
            raise errors.DownloadError(f"The video download from {where} kept breaking off ({problem}; "
                                       f"{transfer.done} of {transfer.total or '?'} bytes after {attempts} tries).")
        sync_file(transfer.part)
        try:
            check_video(transfer.part, expected_size=transfer.total)
        except errors.BrokenVideo as broken:
            kept = set_aside(transfer.part, dest)
            raise errors.BrokenVideo(f"The video from {where}", broken.problem, kept=kept) from None
        os.replace(transfer.part, dest)
        sync_folder(dest.parent)
        return dest
    except BaseException:
        transfer.part.unlink(missing_ok=True)
        raise
    finally:
        if own_session:
            session.close()


def check_result_url(url: str) -> None:
    """Only http(s) URLs with a host are fetched; the message never shows the query string."""
    try:
        parts = urlsplit(url or "")
        fine = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        fine = False
    if not fine:
        raise errors.DownloadError(f"The video URL {describe_url(url)} is not an http(s) address with a host; "
                                   f"the pack downloads only over http(s).")


KEPT_BROKEN = 3  # damaged bodies kept per task: enough to show what the host served, never a full disk


def set_aside(path: Path, like: Path) -> Path:
    """Move `path` next to `like`, as `<like's name>.broken-<UTC time>`; return the new path.

    Not ending in .mp4: it may be an HTML page, and ComfyUI's media lists would offer it as a video.
    Only the KEPT_BROKEN newest of a task are kept: a host that keeps serving broken files, retried
    for days, must not fill the disk.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        kept = like.with_name(f"{like.name}.broken-{stamp}{'' if n == 1 else f'-{n}'}")
        if not kept.exists():
            os.replace(path, kept)
            older = sorted(like.parent.glob(f"{glob.escape(like.name)}.broken-*"), key=lambda f: f.stat().st_mtime_ns)
            for stale in older[:-KEPT_BROKEN]:
                stale.unlink(missing_ok=True)
            return kept
    raise errors.DownloadError(f"Could not find a free name to keep {path} aside.")


def _new_part(dest: Path) -> Path:
    """A temporary file of this download's own: two downloads of one video (two Poll nodes, a
    cancelled one still unwinding) never write into, or delete, each other's bytes. Created with
    mode 0666 less the umask, like any file ComfyUI writes (mkstemp would make it 0600)."""
    while True:
        part = dest.with_name(f"{dest.name}.{secrets.token_hex(4)}.part")
        try:
            os.close(os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666))
            return part
        except FileExistsError:
            continue


def _fetch(session, url, transfer: _Transfer, where, on_progress, should_stop, chunk_size, timeout) -> None:
    """One GET from byte `transfer.done`; appends to the part file and updates `transfer`."""
    # Authorization None removes any session default: the key must never reach the CDN.
    headers = {"Accept-Encoding": "identity", "Authorization": None}
    if transfer.done:
        headers["Range"] = f"bytes={transfer.done}-"
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        if status in EXPIRED_STATUSES:
            raise errors.UrlExpired(f"The video URL at {where} answered HTTP {status}: it has expired "
                                    f"or is not valid.", status=status)
        if not 200 <= status < 300:
            raise errors.DownloadError(f"The video download from {where} failed with HTTP {status}.")
        # Some CDNs compress although asked not to: the decoded body is the file, and the encoded
        # body's length and byte offsets say nothing about it.
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        transfer.resumable = encoding in ("", "identity")
        if status == 206:
            if not transfer.done:
                raise errors.DownloadError(f"{where} answered with a part (HTTP 206) when asked for the whole file.")
            start, size = _content_range(response.headers.get("Content-Range", ""))
            if start != transfer.done:
                raise errors.DownloadError(f"{where} resumed at byte {start}, not {transfer.done} as asked.")
            transfer.total = size
        else:
            if transfer.done:  # the server ignored Range: start over
                transfer.part.write_bytes(b"")
                transfer.done = 0
            length = response.headers.get("Content-Length", "").strip()
            transfer.total = int(length) if length.isdigit() and transfer.resumable else None
        with open(transfer.part, "ab") as out:
            for chunk in _chunks(response, chunk_size):
                if should_stop is not None and should_stop():
                    raise errors.DownloadCancelled(f"Download from {where} cancelled; the partial file was removed.")
                out.write(chunk)
                transfer.done += len(chunk)
                transfer.received += len(chunk)
                if on_progress is not None:
                    on_progress(transfer.done, transfer.total)


def _chunks(response, size: int):
    """Pieces of the body as they arrive. read1 (urllib3 >= 2.3) hands over what came before a
    break instead of losing a partly filled chunk, so a resume starts from the last byte received."""
    raw = response.raw
    if not hasattr(raw, "read1"):
        yield from response.iter_content(size)
        return
    while True:
        data = raw.read1(size, decode_content=True)
        if not data:
            return
        yield data


def _content_range(value: str):
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value)
    if not match:
        raise errors.DownloadError(f"The server sent a partial answer with an unreadable Content-Range {value!r}.")
    size = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), size


def describe_url(url: str) -> str:
    """Scheme, host and path only: signed query strings (and any user:password@) are private."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return "(an unreadable URL)"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
