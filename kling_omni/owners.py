"""Who is working on a journal row: a run of Submit, in this process or another, alive or gone.

Every Submit run journals the intents it works on under its own owner token,
`<host>/<pid>/<process nonce>#<run>`. A row is left to its owner while the owner lives: another
run of the same intent follows it (and adopts the task it creates) instead of sending it too.
A run hands its rows back (owner '') when it ends, so what it left (an uncertain creation) is
anyone's to resolve later.

Whether a run lives is told by a lock the OS frees when its process dies, not by a clock: each
run holds an exclusive file lock on `<journal folder>/owners/<token>.lock` (kling_omni.locks,
flock / msvcrt) from its start to its end, when the file is removed. A run whose lock can be
taken, or whose file is gone, has ended, even if it could not hand its rows back: they may be
taken over. A run whose lock file was deleted under it (the data folder removed while ComfyUI
runs) makes a new one at its next decision (`keep`). This holds for processes of one machine
(and of one filesystem that honours the locks); the studio-scale journal on PostgreSQL uses
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

from .locks import TaskLock, held_or_unknown

OWNERS_FOLDER = "owners"  # beside the journal, like the collection locks


class Owners:
    """The runs working on one journal folder, as this process sees them."""

    def __init__(self, folder: Path):
        self.folder = Path(folder) / OWNERS_FOLDER
        host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:40] or "host"
        self.process = f"{host}/{os.getpid()}/{secrets.token_hex(4)}"
        self._runs = itertools.count(1)
        self._locks: dict = {}  # token -> TaskLock, for this process's runs that have not ended
        self._guard = threading.Lock()

    def start_run(self) -> str:
        """A new owner token for one Submit run, alive until end_run. OSError if its lock cannot be made."""
        token = f"{self.process}#{next(self._runs)}"
        lock = TaskLock(self.folder, _file_name(token))
        if not lock.try_acquire():  # a new random token: nobody else can hold it
            raise OSError(f"the owner lock {lock.path} is held by another process")
        with self._guard:
            self._locks[token] = lock
        return token

    def keep(self, token: str) -> None:
        """Before a decision: if this run's lock file was removed under it, lock a new one, so other
        processes keep seeing the run alive."""
        with self._guard:
            lock = self._locks.get(token)
            if lock is None or lock.still_held():
                return
            lock.release()
            renewed = TaskLock(self.folder, _file_name(token))
            if renewed.try_acquire():
                self._locks[token] = renewed

    def end_run(self, token: str) -> None:
        with self._guard:
            lock = self._locks.pop(token, None)
        if lock is not None:
            lock.release(remove=True)

    def alive(self, token: str) -> bool:
        """Is this run still working on its rows? '' (handed back, or a row from before owners) is nobody."""
        if not token:
            return False
        if token.partition("#")[0] == self.process:
            with self._guard:
                return token in self._locks
        # Another process's run: its lock tells. A lock file that cannot be probed (permissions,
        # no file handles left) is taken as held: the doubt never lets a live run's rows be taken.
        return held_or_unknown(self.folder, _file_name(token))

    def forget_gone(self, token: str) -> None:
        """Remove the lock file of a run found gone (tidiness only: a stale file means 'gone' too)."""
        if token and token.partition("#")[0] != self.process and not held_or_unknown(self.folder, _file_name(token)):
            with contextlib.suppress(OSError):
                (self.folder / f"{_file_name(token)}.lock").unlink()


def _file_name(token: str) -> str:
    return token.replace("/", "_").replace("#", "_run")


_registry: dict = {}
_registry_guard = threading.Lock()


def owners_of(journal_path: Path) -> Owners:
    """This process's Owners for the journal at `journal_path` (one per folder)."""
    folder = Path(journal_path).absolute().parent
    with _registry_guard:
        if folder not in _registry:
            _registry[folder] = Owners(folder)
        return _registry[folder]
