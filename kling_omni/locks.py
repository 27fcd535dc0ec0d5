"""One collection of a task at a time: across Poll nodes, event loops, threads and processes.

A Poll node, the background collector and `python -m kling_omni collect` may all want the
same task. Each collection holds an exclusive OS file lock on `<folder>/<task_id>.lock`
for as long as it waits and downloads; whoever comes second either waits (and then finds
the video on disk) or, like the background collector, skips the task.

flock (POSIX) and msvcrt.locking (Windows) both conflict between two opens of one file
even within one process, so threads and event loops are covered by the same mechanism.
A lock file is removed when its task is done with; `_acquire` checks that the file it
locked is still the one at the path, which closes the unlink race.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Callable, Optional

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

POLL_SECONDS = 0.1  # how often a waiting collection tries again
HOLD_POLL_SECONDS = 0.002  # how often a short critical section (a settings save) tries again


class TaskLock:
    def __init__(self, folder: Path, task_id: str):
        self.path = Path(folder) / f"{task_id}.lock"
        self._fd: Optional[int] = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never blocks."""
        if self._fd is not None:
            raise RuntimeError("TaskLock is not reentrant")
        _owner_only_folder(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not _lock(fd):
                os.close(fd)
                return False
            if not _same_file(fd, self.path):  # removed by its last holder: lock the new one
                _unlock(fd)
                os.close(fd)
                return self.try_acquire()
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    @property
    def where(self) -> str:
        """Where the lock is kept, for messages."""
        return str(self.path.parent)

    def still_held(self) -> bool:
        """True while the lock taken is on the file at the path (not removed or replaced since)."""
        return self._fd is not None and _same_file(self._fd, self.path)

    def release(self, *, remove: bool = False) -> None:
        """Let go; `remove` deletes the lock file too (the task needs no more collecting)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if remove:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)  # while still locked: a waiter then sees a stale file
            _unlock(fd)
        finally:
            os.close(fd)

    async def acquire(self, should_stop: Optional[Callable[[], bool]] = None,
                      on_wait: Optional[Callable[[], None]] = None) -> bool:
        """Wait until the lock is ours; False if should_stop() turned true first."""
        return await wait_until_taken(self.try_acquire, should_stop, on_wait)


async def wait_until_taken(try_acquire: Callable[[], bool], should_stop: Optional[Callable[[], bool]] = None,
                           on_wait: Optional[Callable[[], None]] = None) -> bool:
    """Try a lock every POLL_SECONDS until it is taken (True) or should_stop() turns true (False): every
    kind of task lock waits so (this file's, kling_omni.pg_locks')."""
    while not try_acquire():
        if should_stop is not None and should_stop():
            return False
        if on_wait is not None:
            on_wait()
        await asyncio.sleep(POLL_SECONDS)
    return True


@contextlib.contextmanager
def held(folder: Path, name: str, timeout: float = 10.0):
    """Hold `<folder>/<name>.lock` for a short critical section, waiting in this thread (up to
    `timeout` seconds, then TimeoutError naming the file). The same lock as TaskLock, so it also
    excludes other threads and other processes."""
    lock = TaskLock(folder, name)
    deadline = time.monotonic() + timeout
    while not lock.try_acquire():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{lock.path} stayed locked for {timeout:g} s")
        time.sleep(HOLD_POLL_SECONDS)
    try:
        yield
    finally:
        lock.release()


def _owner_only_folder(folder: Path) -> None:
    """Make `folder` and any missing parents owner-only (the data folder holds the key and the
    journal); mkdir's own `parents` would give them the umask's mode."""
    if folder.is_dir():
        return
    _owner_only_folder(folder.parent)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        return
    with contextlib.suppress(OSError):  # e.g. a filesystem without POSIX modes
        os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask


def is_held(folder: Path, task_id: str) -> bool:
    """True while some collection holds this task's lock. Creates nothing: no lock file, no folder.

    The probe locks for an instant; whoever tries at that very instant sees the lock as held
    and tries again (a waiter) or skips the task for a round (the background collector).
    """
    return _probe(Path(folder) / f"{task_id}.lock", unknown=False)


def held_or_unknown(folder: Path, name: str) -> bool:
    """Like is_held, but a lock file that exists and cannot be probed (permissions, no file handles
    left) counts as held: for questions where a wrong "free" costs money. Only a missing file is free."""
    return _probe(Path(folder) / f"{name}.lock", unknown=True)


def _probe(path: Path, *, unknown: bool) -> bool:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:  # no lock file: nobody holds it
        return False
    except OSError:  # there, but it cannot be opened (its folder unreadable, no file handles left)
        return unknown
    try:
        if not _lock(fd):
            return True
        _unlock(fd)
        return False
    finally:
        os.close(fd)


def _lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # held by someone else (EWOULDBLOCK / EACCES)
        return False
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)
