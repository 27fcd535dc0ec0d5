"""Who is working on a journal row: a run of Submit, in this process or another, alive or gone.

Every Submit run journals the intents it works on under its own owner token,
`<host>/<pid>/<process nonce>#<run>`. A row is left to its owner while the owner lives: another
run of the same intent follows it (and adopts the task it creates) instead of sending it too.
A run hands its rows back (owner '') when it ends, so what it left (an uncertain creation) is
anyone's to resolve later.

Whether another process lives is told by a lock the OS frees when the process dies, not by a
clock: each process holds an exclusive file lock on `<journal folder>/owners/<process>.lock`
from its first run to its end (kling_omni.locks, flock / msvcrt). A process whose lock can be
taken is gone, and its rows may be taken over. This holds for processes of one machine (and of
one filesystem that honours the locks); the studio-scale journal on PostgreSQL uses its
session-level advisory locks the same way.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import socket
import threading
from pathlib import Path

from .locks import TaskLock, is_held

OWNERS_FOLDER = "owners"  # beside the journal, like the collection locks


class Owners:
    """The owners of one journal folder, as this process sees them."""

    def __init__(self, folder: Path):
        self.folder = Path(folder) / OWNERS_FOLDER
        host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:40] or "host"
        self.process = f"{host}/{os.getpid()}/{secrets.token_hex(4)}"
        self._runs = itertools.count(1)
        self._active: set = set()
        self._guard = threading.Lock()
        self._lock = None  # this process's lock, taken at its first run and held until it ends

    def start_run(self) -> str:
        """A new owner token for one Submit run, alive until end_run."""
        with self._guard:
            if self._lock is None:
                lock = TaskLock(self.folder, _file_name(self.process))
                if not lock.try_acquire():  # a new random nonce: nobody else can hold it
                    raise RuntimeError(f"the owner lock {lock.path} is held by another process")
                self._lock = lock
            token = f"{self.process}#{next(self._runs)}"
            self._active.add(token)
            return token

    def end_run(self, token: str) -> None:
        with self._guard:
            self._active.discard(token)

    def alive(self, token: str) -> bool:
        """Is this owner still working on its rows? '' (handed back, or a row from before owners) is nobody."""
        if not token:
            return False
        process, _, _ = token.partition("#")
        if process == self.process:
            with self._guard:
                return token in self._active
        # Another process's runs hand their rows back when they end: its rows are live while it lives.
        return is_held(self.folder, _file_name(process))

    def forget_gone(self, token: str) -> None:
        """Remove the lock file of an owner found gone (tidiness only: a stale file means 'gone' too)."""
        process = token.partition("#")[0]
        if process != self.process and not is_held(self.folder, _file_name(process)):
            with contextlib.suppress(OSError):
                (self.folder / f"{_file_name(process)}.lock").unlink()


def _file_name(process: str) -> str:
    return process.replace("/", "_")


_registry: dict = {}
_registry_guard = threading.Lock()


def owners_of(journal_path: Path) -> Owners:
    """This process's Owners for the journal at `journal_path` (one per folder)."""
    folder = Path(journal_path).absolute().parent
    with _registry_guard:
        if folder not in _registry:
            _registry[folder] = Owners(folder)
        return _registry[folder]
