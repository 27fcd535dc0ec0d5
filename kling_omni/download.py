"""Fetch a finished video to disk: streamed, resumable, length-checked, atomic.

The result URL lives on Kling's CDN, not on CometAPI, so this uses a plain session that
never carries the API key. The file appears at `dest` only when complete; until then it
is `dest.part`.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

import requests
import urllib3

from . import errors

EXPIRED_STATUSES = (403, 404, 410)
DEFAULT_TIMEOUT = (10, 30)  # (connect, read between bytes)


def download_file(url: str, dest, *, on_progress: Optional[Callable[[int, Optional[int]], None]] = None,
                  should_stop: Optional[Callable[[], bool]] = None, session: Optional[requests.Session] = None,
                  chunk_size: int = 1 << 20, attempts: int = 4, timeout=DEFAULT_TIMEOUT,
                  retry_delay: float = 1.0) -> Path:
    """Download `url` to `dest`; resume with Range after a broken connection (up to `attempts` tries).

    on_progress(done_bytes, total_bytes or None) after each chunk, called from this thread.
    A try that brought no new bytes waits retry_delay seconds before the next. Raises UrlExpired on
    403/404/410, DownloadCancelled when should_stop() turns true, DownloadError otherwise.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file of this download's own: two downloads of one video (two Poll nodes, a
    # cancelled one still unwinding) never write into, or delete, each other's bytes.
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    os.close(fd)
    part = Path(name)
    own_session = session is None
    session = session or requests.Session()
    where = _describe(url)
    try:
        done, total = 0, None
        problem = ""
        for attempt in range(max(1, attempts)):
            if attempt and done == before:  # nothing arrived last time: give the host a moment
                time.sleep(retry_delay)
            before = done
            try:
                done, total = _fetch(session, url, part, done, total, where, on_progress, should_stop,
                                     chunk_size, timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    urllib3.exceptions.HTTPError) as exc:
                problem = type(exc).__name__
                done = part.stat().st_size  # keep what arrived; the next try resumes from here
                continue
            if total is None or done >= total:
                break  # done > total is reported below
            problem = f"the connection closed after {done} of {total} bytes"
        else:
            raise errors.DownloadError(f"The video download from {where} kept breaking off "
                                       f"({problem}; {done} of {total or '?'} bytes after {attempts} tries).")
        if total is not None and done != total:
            raise errors.DownloadError(f"The video from {where} has {done} bytes; the server announced {total}.")
        os.replace(part, dest)
        return dest
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        if own_session:
            session.close()


def _fetch(session, url, part: Path, done: int, total, where, on_progress, should_stop, chunk_size, timeout):
    """One GET from byte `done`; appends to `part`; returns (bytes now in part, total size or None)."""
    # Authorization None removes any session default: the key must never reach the CDN.
    headers = {"Accept-Encoding": "identity", "Authorization": None}
    if done:
        headers["Range"] = f"bytes={done}-"
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        if status in EXPIRED_STATUSES:
            raise errors.UrlExpired(f"The video URL at {where} answered HTTP {status}: it has expired "
                                    f"or is not valid.", status=status)
        if status == 206:
            start, size = _content_range(response.headers.get("Content-Range", ""))
            if start != done:
                raise errors.DownloadError(f"{where} resumed at byte {start}, not {done} as asked.")
            total = size
        elif status == 200:
            if done:  # the server ignored Range: start over
                part.write_bytes(b"")
                done = 0
            length = response.headers.get("Content-Length")
            encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
            # a compressed body's length says nothing about the file's (we ask for identity anyway)
            total = int(length) if length and length.isdigit() and not encoded else None
        else:
            raise errors.DownloadError(f"The video download from {where} failed with HTTP {status}.")
        with open(part, "ab") as out:
            for chunk in _chunks(response, chunk_size):
                if should_stop is not None and should_stop():
                    raise errors.DownloadCancelled(f"Download from {where} cancelled; the partial file was removed.")
                out.write(chunk)
                done += len(chunk)
                if on_progress is not None:
                    on_progress(done, total)
    return done, total


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


def _describe(url: str) -> str:
    """Host and path only: signed query strings are long and private."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
