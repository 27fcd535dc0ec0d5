"""Who is alive on a shared journal, told by PostgreSQL advisory locks the server frees when a session ends.

The same questions kling_omni.owners and kling_omni.locks answer with OS file locks on one machine,
asked of the database so that every machine gets the same answer:

- A Submit run holds `pg_advisory_lock(key("run", token))` on a connection of its own from its start
  to its end (`PgOwners`). Another machine asks pg_locks whether it is held: a run whose process or
  machine died is gone as soon as the server notices its connection closed (at once for a killed
  process, within about 25 s for a machine that vanished: the session's TCP keepalives).
- A collection holds `pg_try_advisory_lock(key("task", task_id))` on a connection of its own for as
  long as it waits and downloads (`PgTaskLock`); a second one, on any machine, waits or skips.
- A machine whose background collector runs with a key holds shared locks on its name with that key's
  id, and with its base URL (`Presence`): another machine's collector leaves to it the tasks it made
  with that key while it is there, and collects them once it is gone, or once it has no key or another
  one (it would not collect them).

A connection that breaks under a lock (the database restarted) loses the lock. A run's is taken
again before its next decision (`keep`); a collection goes on without it (two machines may then
both download one video: free, and each keeps its own copy).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import threading
from typing import Callable, Optional

from .database import Database, key
from .errors import JournalError
from .locks import wait_until_taken


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
        try:  # the connection is kept between tries
            return await wait_until_taken(lambda: self.try_acquire(keep_trying=True), should_stop, on_wait)
        finally:
            if not self._held:
                self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        _let_go(conn)


class Presence:
    """This machine's background collector is there for the tasks it would collect: shared locks, held while it
    runs with a key, on (machine, the key's id) and (machine, the base URL: for rows that do not say which key
    made them). Another machine leaves a task to this one only while this one would collect it: a collector with
    no key, or with another key than the task's, claims nothing. (Shared: two ComfyUIs of one machine may both
    hold them.)"""

    def __init__(self, db: Database, machine: str):
        self.db = db
        self.machine = machine
        self._conn = None
        self._for: Optional[tuple] = None  # (key id, base URL) the locks held are for
        self._guard = threading.Lock()

    def hold(self, key_id: str, base_url: str) -> None:
        """Hold the locks for this key id and base URL (taken again if their connection broke, or for a new key);
        let them go when `key_id` is ''."""
        wanted = (key_id, base_url.rstrip("/")) if key_id else None
        with self._guard:
            if wanted is None:
                self._drop()
                return
            if self._for == wanted and self._conn is not None and _alive(self._conn):
                return
            self._drop()
            with contextlib.suppress(JournalError):  # the collector's own reads report the database
                conn = self.db.connect()
                try:
                    for lock in presence_keys(self.machine, *wanted):
                        conn.execute("SELECT pg_advisory_lock_shared(%s)", (lock,))
                except Exception:
                    _let_go(conn)
                    return
                self._conn, self._for = conn, wanted

    def _drop(self) -> None:
        conn, self._conn, self._for = self._conn, None, None
        _let_go(conn)


def presence_keys(machine: str, key_id: str, base_url: str) -> tuple:
    """The locks a machine's collector holds: one for the tasks of its key, one for keyless rows sent to its host."""
    return key("collector-key", f"{machine}\n{key_id}"), key("collector-host", f"{machine}\n{base_url.rstrip('/')}")


def collected_there(db: Database, jobs) -> set:
    """The task ids of `jobs` whose own machine has a collector running that collects them: made with the key it
    holds (or, for a row without a key id, sent to its base URL). A database that cannot say: all of them, so that
    nobody collects a task its own machine may be collecting."""
    wanted = {}
    for job in jobs:
        if job.machine and job.task_id:
            key_id_lock, host_lock = presence_keys(job.machine, job.key_id, job.base_url)
            wanted.setdefault(key_id_lock if job.key_id else host_lock, []).append(job.task_id)
    try:
        held = db.held(wanted)
    except JournalError:
        held = set(wanted)
    return {task_id for lock in held for task_id in wanted[lock]}


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
