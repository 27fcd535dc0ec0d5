"""Writes that survive a power cut: a file's bytes, then the folder entry that names it."""

from __future__ import annotations

import os
from pathlib import Path


def sync_file(path: Path) -> None:
    """The bytes reach the disk (before the file is renamed into place and recorded)."""
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def sync_folder(folder: Path) -> None:
    """A rename into `folder` reaches the disk (POSIX). Windows cannot open a folder for this: skipped there."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
