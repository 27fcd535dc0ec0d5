"""A small JPEG of a video's first frame, for the Tasks sidebar.

Only the first frame is decoded, scaled while it is converted. The JPEG is kept in a cache
folder and carries the size and modification time of the video it was made from, so a video
fetched again (a new file renamed into place) gets a new thumbnail. Blocking: call it off the
event loop.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Optional

import av
from PIL import Image

from .errors import DecodeError

MAX_WIDTH = 320
QUALITY = 80


def thumbnail(video: Path, cache_dir: Optional[Path], name: str) -> bytes:
    """JPEG bytes of `video`'s first frame, at most MAX_WIDTH wide; cached as <cache_dir>/<name>.jpg.

    `name` must be safe as a file name (a checked task id). A cache that cannot be written is
    skipped: the thumbnail is still made.
    """
    found = Path(video).stat()
    stamp = f"{found.st_size}:{found.st_mtime_ns}".encode()
    cached = Path(cache_dir) / f"{name}.jpg" if cache_dir is not None else None
    if cached is not None:
        data = _cached(cached, stamp)
        if data is not None:
            return data
    data = _first_frame_jpeg(Path(video), stamp)
    if cached is not None:
        _store(cached, data)
    return data


def _cached(path: Path, stamp: bytes) -> Optional[bytes]:
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            return data if image.info.get("comment") == stamp else None
    except (OSError, ValueError):  # missing, unreadable or not a JPEG: make it again
        return None


def _first_frame_jpeg(video: Path, stamp: bytes) -> bytes:
    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                raise DecodeError(f"{video.name} has no video stream.")
            frame = next(container.decode(video=0), None)
            if frame is None:
                raise DecodeError(f"{video.name} has no frame to show.")
            width, height = frame.width, frame.height
            if width > MAX_WIDTH:
                width, height = MAX_WIDTH, max(1, round(height * MAX_WIDTH / width))
            image = frame.to_image(width=width, height=height)
    except av.FFmpegError as exc:
        raise DecodeError(f"Could not open {video.name} as a video: {exc}") from exc
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=QUALITY, comment=stamp)
    return out.getvalue()


def _store(path: Path, data: bytes) -> None:
    """Write atomically (two requests may make the same thumbnail at once); a failure is no error."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".jpg", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
