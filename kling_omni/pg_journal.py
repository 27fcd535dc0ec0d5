"""The journal on PostgreSQL: one ledger for several machines on one CometAPI account.

The same rows and the same steps as the SQLite journal (kling_omni.journal.BaseJournal holds them);
what differs is how each is kept across machines:

- A money decision (`decide`) is one transaction that first takes one advisory lock for the whole
  ledger, `pg_advisory_xact_lock(LEDGER_KEY)`: the decisions of every machine run one at a time, as
  BEGIN IMMEDIATE makes SQLite's, so the daily limit and the tasks in flight are the account's.
- Who works on a row, whether a collection holds a task and whether a machine is there are
  session-level advisory locks (kling_omni.pg_locks), freed by the server when a process or a
  machine dies.
- The limit learned from the account's 429 answers is kept in the database (`SharedPace`), so one
  machine's refusal spares the others theirs.
- "Today", for the daily limit and the totals, is one day for every machine: it begins at midnight
  in the database's time zone (its TimeZone setting; `ALTER DATABASE … SET timezone TO …` sets it),
  whatever each machine's own clock says. A machine whose UTC offset differs says so once in its log.
- Each row records the machine that journalled it, and the machine whose disk holds its video.
- Every change is announced with NOTIFY, carrying the sending process and the task id only; each process LISTENs and tells
  its own listeners (the Tasks sidebar's events), so a change on one machine shows on every one.
- Notes (what a collection learns on the way, kling_omni.journal) that the database cannot take
  are kept in memory, in order, and written when it answers again: a Poll whose database went away
  still brings its video to the graph and the disk, and the journal learns of it later. (If the
  process ends first, they are lost as on a read-only journal: the task is then found again by its
  external id, or collected by the background collector.)
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Optional

from .database import DECISION_LOCK_SECONDS, LEDGER_KEY, Database, key
from .errors import DatabaseUnavailable, JournalError, SchemaTooNew
from .journal import NOTHING_SENT, QUEUE_AGAIN, BaseJournal, Tx
from .pg_locks import PgOwners, PgTaskLock, Presence, collected_there

log = logging.getLogger("cometapi_omni")
CHANNEL = "cometapi_omni_tasks"  # NOTIFY payload: "<sender process>|<task id or nothing>"
MAX_PENDING_NOTES = 10_000  # kept while the database is away; beyond that the oldest go
TERMINAL_STATES = "('succeeded', 'failed', 'ended')"  # a task's own end is never undone by a late note
# When today began in the session's time zone (the database's), its UTC offset then, the zone and the database.
DAY_SQL = ("SELECT EXTRACT(EPOCH FROM date_trunc('day', to_timestamp(?)))::float8 AS start, EXTRACT(TIMEZONE FROM"
           " to_timestamp(?))::float8 AS utc_offset, current_setting('TimeZone') AS zone, current_database() AS name")


class PgJournal(BaseJournal):
    """The journal in a PostgreSQL database shared by several machines. `path` is where it is, as
    messages may show it (postgresql://user@host:port/database, never the password)."""

    REPAIR = "Make sure the database is running and that this machine can reach it"
    OTHER_RUNS = "another Submit, or another ComfyUI on this database"
    _LEARN_ECHO = ("INSERT INTO hosts (base_url, echoes_external_id) VALUES (?,?) ON CONFLICT (base_url)"
                   " DO UPDATE SET echoes_external_id = EXCLUDED.echoes_external_id")
    _STATE_SET = f"state=CASE WHEN state IN {TERMINAL_STATES} THEN state ELSE ? END"

    def __init__(self, url: str, *, machine: str):
        super().__init__()
        self.db = Database(url, application=f"cometapi-omni {machine}")
        self.path = self.db.where
        self.machine = machine
        self._owners = PgOwners(self.db, machine)
        self.process = self._owners.process  # who sent a NOTIFY: our own are not told twice
        self.shared_pace = SharedPace(self)
        self._presence = Presence(self.db, machine)
        self._pending: collections.deque = collections.deque()  # (sql, params, task_id) of notes not written yet
        self._flushing = threading.Lock()
        self._warned = False
        self._days_told: set = set()  # (database zone, local offset) pairs already said in the log
        self._listening: Optional[threading.Thread] = None
        self._stop = threading.Event()

    # --- how the rows are reached ----------------------------------------------------------

    def _read(self, sql: str, params: tuple) -> list:
        self._flush_pending()
        return self._run(sql, params, "read", lambda cursor: cursor.fetchall())

    def _write(self, sql: str, params: tuple) -> int:
        self._flush_pending()
        return self._run(sql, params, "written", lambda cursor: cursor.rowcount)

    def _transaction(self, work):
        self._flush_pending()  # a note kept meanwhile (an adoption) goes first, as before any write
        psycopg = self.db.driver()
        try:
            with self.db.connection() as conn:
                with conn.transaction():
                    return work(_Sql(conn))
        except psycopg.Error as exc:
            raise self.db.unavailable(exc, "written") from None

    def _run(self, sql: str, params: tuple, doing: str, result):
        psycopg = self.db.driver()
        try:
            with self.db.connection() as conn:
                return result(conn.execute(_pg(sql), params))
        except psycopg.Error as exc:
            raise self.db.unavailable(exc, doing) from None

    def _note(self, sql: str, params: tuple, task_id: Optional[str] = None) -> None:
        """A write that must never keep a video from the graph: kept for later when the database cannot take it."""
        if not self._flush_pending():
            self._keep(sql, params, task_id, None)
            return
        try:
            changed = self._run(sql, params, "written", lambda cursor: cursor.rowcount)
            if not changed and task_id is not None and sql.startswith("UPDATE"):
                # Its row may have been folded into its intent's row by a decision this write waited for
                # (journal.fold_adopted locks it): the write found it gone; a fresh one finds the intent's.
                self._run(sql, params, "written", lambda cursor: cursor.rowcount)
        except JournalError as exc:
            self._keep(sql, params, task_id, exc)
            return
        if task_id is not None:
            self._changed(task_id)

    def _keep(self, sql: str, params: tuple, task_id, exc: Optional[JournalError]) -> None:
        if isinstance(exc, SchemaTooNew):
            return  # never written into a newer schema, now or later
        self._pending.append((sql, params, task_id))
        while len(self._pending) > MAX_PENDING_NOTES:
            self._pending.popleft()
        if not self._warned:  # once, not at every status change of every task
            self._warned = True
            log.warning("CometAPI Omni: the shared journal's database %s cannot take notes now%s. Videos are still "
                        "delivered; what is learned meanwhile is written when it answers again.", self.path,
                        f" ({exc})" if exc else "")

    def _flush_pending(self) -> bool:
        """Write the notes kept while the database was away, in order; True when none is left."""
        if not self._pending:
            return True
        if self.db.recently_down() or not self._flushing.acquire(blocking=False):
            return False
        written = 0
        try:
            while self._pending:
                sql, params, task_id = self._pending[0]
                try:
                    self._run(sql, params, "written", lambda cursor: cursor.rowcount)
                except SchemaTooNew:
                    self._pending.clear()
                    return True
                except JournalError:
                    return False
                self._pending.popleft()
                written += 1
                if task_id is not None:
                    self._changed(task_id)
            self._warned = False
            return True
        finally:
            self._flushing.release()
            if written:
                log.info("CometAPI Omni: wrote %d note(s) kept while %s was away.", written, self.path)

    # --- what this engine adds to rows ----------------------------------------------------

    def _insert_extra(self) -> dict:
        return {"machine": self.machine}

    def _saved_here(self) -> list:
        return [("video_machine=?", self.machine)]

    def adopt(self, task_id: str, *, base_url: str = "") -> None:
        now = time.time()
        self._note("INSERT INTO jobs (fingerprint, attempt, task_id, state, base_url, created_at, updated_at, machine)"
                   " SELECT ?,?,?,?,?,?,?,? WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE task_id=?) ON CONFLICT DO NOTHING",
                   (f"collected:{task_id}", 0, task_id, "queued", base_url, now, now, self.machine, task_id), task_id)

    # --- money decisions ------------------------------------------------------------------

    @contextmanager
    def decide(self, undone: str = NOTHING_SENT, again: str = QUEUE_AGAIN):
        """One money decision, serialized with every other machine's by the ledger's advisory lock; committed
        when the block ends, rolled back if it raises. JournalError when the database cannot take it."""
        changed: list = []
        try:
            psycopg = self.db.driver()
        except DatabaseUnavailable as exc:
            raise self._decision_error(exc, undone, again) from None
        try:
            with self.db.connection() as conn:
                with conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = '{DECISION_LOCK_SECONDS}s'")
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_KEY,))
                    yield _PgTx(self, _Sql(conn), changed)
        except psycopg.errors.LockNotAvailable:
            raise JournalError(f"The shared journal {self.path} is busy: another machine's decision held it for "
                               f"{DECISION_LOCK_SECONDS} s. {undone}. {again[0].upper()}{again[1:]}.",
                               path=self.path) from None
        except psycopg.Error as exc:
            raise self._decision_error(self.db.unavailable(exc, "written"), undone, again) from None
        except SchemaTooNew:
            raise
        except DatabaseUnavailable as exc:
            raise self._decision_error(exc, undone, again) from None
        for task_id in dict.fromkeys(changed):
            self._changed(task_id)

    def _decision_error(self, exc: DatabaseUnavailable, undone: str = NOTHING_SENT,
                        again: str = QUEUE_AGAIN) -> DatabaseUnavailable:
        if isinstance(exc, SchemaTooNew) or undone in str(exc):
            return exc
        return DatabaseUnavailable(f"{exc} {undone}. {self.REPAIR}, then {again}.", path=self.path)

    def start_of_day(self, now: float) -> float:
        """When the daily limit's 'today' began: midnight in the database's time zone (kling_omni.ledger.day_start)."""
        return self._day(self._read(DAY_SQL, (now, now))[0], now)

    def _day(self, row, now: float) -> float:
        start, there, zone = float(row["start"]), float(row["utc_offset"]), row["zone"]
        here = datetime.fromtimestamp(now).astimezone().utcoffset().total_seconds()
        if here != there and (zone, here) not in self._days_told:  # once: it is read on every Submit and refresh
            self._days_told.add((zone, here))
            name = row["name"] if re.fullmatch(r"[a-z_][a-z0-9_]*", row["name"]) else '"{}"'.format(
                row["name"].replace('"', '""'))
            log.warning("CometAPI Omni: this machine's clock is at %s, but the daily limit's day on the shared journal"
                        " %s follows the database's time zone, %s (%s), the same for every machine: today began at %s"
                        " here. The spend of today in the Tasks sidebar and in Settings counts that day too. To count"
                        " the days of another zone, set it on the database (ALTER DATABASE %s SET timezone TO"
                        " 'America/Los_Angeles', say) and restart ComfyUI on every machine.", _utc(here), self.path,
                        zone, _utc(there), datetime.fromtimestamp(start).strftime("%H:%M"), name)
        return start

    # --- who works on it and who collects ---------------------------------------------------

    def owners(self) -> PgOwners:
        return self._owners

    def task_lock(self, task_id: str) -> PgTaskLock:
        return PgTaskLock(self.db, task_id)

    def is_collecting(self, task_id: str) -> bool:
        return task_id in self.collecting([task_id])

    def collecting(self, task_ids) -> set:
        keys = {key("task", task_id): task_id for task_id in task_ids if task_id}
        try:
            return {keys[k] for k in self.db.held(keys)}
        except JournalError:
            return set()  # said by the rows' own read; no collection is shown meanwhile

    def collectable_here(self, jobs: list) -> list:
        """A task made on a machine whose collector is there and would collect it (it has the task's key) is left
        to it; one whose machine is gone or cannot collect it, or that this machine made, is collected here."""
        there = collected_there(self.db, [j for j in jobs if j.machine and j.machine != self.machine])
        return [j for j in jobs if j.task_id not in there]

    def announce_collector(self, key_id: str, base_url: str = "") -> None:
        self._presence.hold(key_id, base_url)

    # --- who wants to know ----------------------------------------------------------------

    def subscribe(self, listener) -> None:
        """listener(task_id or None) after each change of this journal, made here or on another machine."""
        super().subscribe(listener)
        if self._listening is None:
            self._listening = threading.Thread(target=self.db.listen, name="cometapi-omni-listen", daemon=True,
                                               args=(CHANNEL, self._heard, self._heard_again, self._stop))
            self._listening.start()

    def _changed(self, task_id: Optional[str]) -> None:
        super()._changed(task_id)
        if self.db.recently_down():
            return  # the others reread when their listener is back
        try:
            self._run("SELECT pg_notify(?, ?)", (CHANNEL, f"{self.process}|{task_id or ''}"), "written",
                      lambda cursor: None)
        except JournalError:
            pass  # a lost live update, never a lost change

    def _heard(self, payload: str) -> None:
        sender, _, task_id = payload.partition("|")
        if sender != self.process:
            super()._changed(task_id or None)

    def _heard_again(self) -> None:
        """The listener is back after the database was away: what changed meanwhile was not heard."""
        self._flush_pending()
        super()._changed(None)

    def close(self) -> None:
        """Stop listening and close every connection this journal keeps (tests, the command line)."""
        self._stop.set()
        self._presence.hold("", "")
        for token in list(self._owners._locks):
            self._owners.end_run(token)
        if self._listening is not None:
            self._listening.join(5)
        self.db.close()


class SharedPace:
    """kling_omni.submission.Pace, kept in the database: the account's limit, learned by any machine from a
    429 (Kling 1303), holds for every machine for LEARNED_FOR seconds (a plan can grow)."""

    LEARNED_FOR = 600.0

    def __init__(self, journal: PgJournal):
        self._journal = journal

    def limit(self, key_id: str, setting: int) -> tuple:
        if setting > 0:
            return setting, "your setting in Settings › CometAPI"
        try:
            rows = self._journal._read("SELECT learned, why FROM pace WHERE key_id=? AND learned_at > ?",
                                       (key_id, time.time() - self.LEARNED_FOR))
        except JournalError:
            return None, ""  # the decision that follows reports the database
        if not rows:
            return None, ""
        return int(rows[0]["learned"]), f"learned from CometAPI's answer {rows[0]['why']}"

    def refused(self, key_id: str, running: int, why: str) -> None:
        """A 429 with `running` tasks of the account in flight: it allows at most that many."""
        if running > 0:
            now = time.time()
            self._journal._note(
                "INSERT INTO pace (key_id, learned, learned_at, why) VALUES (?,?,?,?) ON CONFLICT (key_id) DO UPDATE"
                " SET learned = CASE WHEN pace.learned_at < ? THEN EXCLUDED.learned ELSE LEAST(pace.learned,"
                " EXCLUDED.learned) END, learned_at = EXCLUDED.learned_at, why = EXCLUDED.why",
                (key_id, running, now, why, now - self.LEARNED_FOR))

    def accepted(self, key_id: str, running: int) -> None:
        """A creation went through with `running` others in flight: the limit is above that."""
        self._journal._note("UPDATE pace SET learned=? WHERE key_id=? AND learned < ?", (running + 1, key_id, running + 1))

    def forget(self) -> None:
        self._journal._note("DELETE FROM pace", ())


class _PgTx(Tx):
    """A money decision on the shared journal: its reads and writes, and when the daily limit's day began, read
    in the same transaction."""

    def __init__(self, journal: PgJournal, sql: _Sql, changed: list):
        super().__init__(sql, changed, journal._insert_extra())
        self._journal = journal

    def start_of_day(self, now: float) -> float:
        return self._journal._day(self._db.execute(DAY_SQL, (now, now)).fetchone(), now)


def _utc(seconds: float) -> str:
    """'UTC-08:00'."""
    minutes = round(seconds / 60)
    return f"UTC{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class _Sql:
    """A decision's connection as Tx reads and writes through it: SQLite's `?` parameters."""

    ROW_LOCK = " FOR UPDATE"  # what a read adds to hold its rows until the decision commits

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql: str, params: tuple = ()):
        return self._conn.execute(_pg(sql), params)


def _pg(sql: str) -> str:
    """The statement with psycopg's %s for SQLite's ? (the journal's SQL has neither % nor a literal ?)."""
    if "%" in sql:
        raise ValueError("a journal statement with % in it: escape it before it reaches psycopg")
    return sql.replace("?", "%s")
