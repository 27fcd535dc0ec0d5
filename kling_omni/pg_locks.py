"""Who is alive on a shared journal, told by PostgreSQL advisory locks the server frees when a session ends.

The same questions kling_omni.owners and kling_omni.locks answer with OS file locks on one machine,
asked of the database so that every machine gets the same answer:

- A Submit run holds `pg_advisory_lock(key("run", token))` on a connection of its own from its start
  to its end (`PgOwners`). Another machine asks pg_locks whether it is held: a run whose process or
  machine died is gone as soon as the server notices its connection closed (at once for a killed
  process, within about 25 s for a machine that vanished: the session's TCP keepalives).
- A collection holds `pg_try_advisory_lock(key("task", task_id))` on a connection of its own for as
  long as it waits and downloads (`PgTaskLock`); a second one, on any machine, waits or skips.
- A machine whose background collector runs holds a shared lock on its name (`Presence`): another
  machine's collector leaves that machine's tasks to it while it is there, and collects them once
  it is gone.

A connection that breaks under a lock (the database restarted) loses the lock. A run's is taken
again before its next decision (`keep`); a collection goes on without it (two machines may then
both download one video: free, and each keeps its own copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import secrets
import threading
from typing import Callable, Optional

from .database import Database, key
from .errors import JournalError
from .locks import POLL_SECONDS


class PgOwners:
    """The Submit runs of one shared journal, as this process sees them (kling_omni.owners.Owners' methods)."""

    def __init__(self, db: Database, machine: str):
        self.db = db
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", machine)[:40] or "host"
        self.process = f"{name}/{os.getpid()}/{secrets.token_hex(4)}"
        self._runs = itertools.count(1)
        self._locks: dict = {}  # token -> the connection holding its lock, for this process's live runs
        self._guard = threading.Lock()

    def start_run(self) -> str:
        """A new owner token, alive until end_run. JournalError when the database cannot be reached."""
        token = f"{self.process}#{next(self._runs)}"
        conn = self._lock(token)
        with self._guard:
            self._locks[token] = conn
        return token

    def keep(self, token: str) -> None:
        """Before a decision: if the run's connection broke (a restarted server), lock it again on a new one."""
        with self._guard:
            conn = self._locks.get(token)
        if conn is None or _alive(conn):
            return
        conn.close()
        with contextlib.suppress(JournalError):  # the decision that follows reports the database
            renewed = self._lock(token)
            with self._guard:
                if token in self._locks:
                    self._locks[token] = renewed
                    return
            renewed.close()

    def end_run(self, token: str) -> None:
        with self._guard:
            conn = self._locks.pop(token, None)
        _let_go(conn)

    def alive(self, token: str) -> bool:
        """Is this run still working on its rows? A database that cannot answer counts as yes: the doubt
        never lets a live run's rows be taken."""
        if not token:
            return False
        if token.partition("#")[0] == self.process:
            with self._guard:
                return token in self._locks
        run = key("run", token)
        try:
            return run in self.db.held([run])
        except JournalError:
            return True

    def forget_gone(self, token: str) -> None:
        """Nothing to tidy: the server forgot the lock with its session."""

    def _lock(self, token: str):
        conn = self.db.connect()
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (key("run", token),))  # a new token: nobody holds it
        except Exception as exc:
            conn.close()
            raise self.db.unavailable(exc, "written") from None
        return conn


class PgTaskLock:
    """One collection's hold on a task, on any machine (kling_omni.locks.TaskLock's methods). A database
    that cannot be reached raises ConnectionError (an OSError), as a lock file that cannot be made does."""

    def __init__(self, db: Database, task_id: str):
        self.db = db
        self.task_id = task_id
        self.where = db.where
        self._key = key("task", task_id)
        self._conn = None
        self._held = False

    def try_acquire(self, *, keep_trying: bool = False) -> bool:
        """Take the lock if nobody holds it; never blocks. `keep_trying` keeps the connection for the next try."""
        if self._held:
            raise RuntimeError("PgTaskLock is not reentrant")
        try:
            if self._conn is None or not _alive(self._conn):
                self._conn = self.db.connect()
            self._held = bool(self._conn.execute("SELECT pg_try_advisory_lock(%s) AS got",
                                                 (self._key,)).fetchone()["got"])
        except Exception as exc:  # DatabaseUnavailable, or the driver's own error
            self._close()
            raise ConnectionError(str(exc) if isinstance(exc, JournalError) else self.db.why(exc)) from None
        if not self._held and not keep_trying:
            self._close()
        return self._held

    def still_held(self) -> bool:
        return self._held and self._conn is not None and _alive(self._conn)

    def release(self, *, remove: bool = False) -> None:
        """Let go (`remove` is for file locks: nothing is left behind here)."""
        self._held = False
        self._close()

    async def acquire(self, should_stop: Optional[Callable[[], bool]] = None,
                      on_wait: Optional[Callable[[], None]] = None) -> bool:
        """Wait until the lock is ours; False if should_stop() turned true first."""
        try:
            while not self.try_acquire(keep_trying=True):
                if should_stop is not None and should_stop():
                    return False
                if on_wait is not None:
                    on_wait()
                await asyncio.sleep(POLL_SECONDS)
            return True
        finally:
            if not self._held:
                self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        _let_go(conn)


class Presence:
    """This machine's background collector is there: a shared lock on the machine's name, held while it runs
    (shared: two ComfyUIs of one machine may both hold it)."""

    def __init__(self, db: Database, machine: str):
        self.db = db
        self._key = key("machine", machine)
        self._conn = None
        self._guard = threading.Lock()

    def hold(self, active: bool) -> None:
        """Hold the lock while `active` (taken again if its connection broke), let it go otherwise."""
        with self._guard:
            if not active:
                self._drop()
                return
            if self._conn is not None and _alive(self._conn):
                return
            self._drop()
            with contextlib.suppress(JournalError):  # the collector's own reads report the database
                conn = self.db.connect()
                try:
                    conn.execute("SELECT pg_advisory_lock_shared(%s)", (self._key,))
                except Exception:
                    conn.close()
                    return
                self._conn = conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        _let_go(conn)


def machines_present(db: Database, names) -> set:
    """Which of these machines have a background collector running (a database that cannot say: all of them,
    so that nobody collects a task its own machine may be collecting)."""
    names = {name for name in names if name}
    keys = {key("machine", name): name for name in names}
    try:
        return {keys[k] for k in db.held(keys)}
    except JournalError:
        return names


def _let_go(conn) -> None:
    """Free the session's locks now, then close it. Closing alone frees them too, but only once the server has
    ended the session, a moment later: another machine asking at once would still see them held."""
    if conn is None:
        return
    try:
        if not (conn.closed or conn.broken):
            conn.execute("SELECT pg_advisory_unlock_all()")
    except Exception:
        pass  # a broken session: the server frees them as it ends it
    finally:
        conn.close()


def _alive(conn) -> bool:
    """The connection still reaches the server (one round trip)."""
    if conn.closed or conn.broken:
        return False
    try:
        conn.execute("SELECT 1")
        return True
    except Exception:
        return False
