"""The durable job journal: every paid intent, its task and its video, across restarts.

Two engines keep it, with the same rows and the same steps: SQLite, on this machine (`Journal`,
here, the default), and PostgreSQL, shared by several machines (kling_omni.pg_journal, chosen
by kling_omni.store). `BaseJournal` holds what both do, in the SQL both speak; each engine
adds how it connects, how a money decision is made atomic, who owns a row and how a collection
is locked.

SQLite from the standard library. One short connection per operation keeps it safe for
several threads and for ComfyUI and the command line at once. A row is written *before*
the creation request ("sending") and updated after it, so a crash in between leaves a
row that says "we may have paid and do not know for what".

Every money decision is one atomic step (`decide`): reserving intents against the daily limit,
and counting the tasks in flight while marking one "sending". Each runs in one IMMEDIATE
transaction, so no other thread, event loop or process writes between its reads and its
writes (on PostgreSQL: a transaction that first takes the ledger's one advisory lock, so no
other machine decides meanwhile). A row belongs to the Submit run working on it (`owner`,
kling_omni.owners) until the run hands it back; only its owner sends it or gives it up.

The disk is not trusted to stay as it was. A journal deleted while running is recreated
by the next write (reads find nothing); a damaged one is moved aside, kept, and replaced.
Writes come in two kinds: those that guard money (`begin`, `settle`) raise JournalError
when the journal cannot take them, so nothing is paid unrecorded; the notes made while
collecting a video (`adopt`, `update_task`, `learn_echo`) only warn, so a paid video still
reaches the graph from a read-only journal. The file is owner-only: it holds prompts and
signed result URLs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .errors import JournalError
from .locks import TaskLock, is_held
from .task import TERMINAL

log = logging.getLogger("cometapi_omni")

WAITING = "waiting"  # journalled (its cost reserved), not sent yet: waiting for a free slot
SENDING = "sending"  # creation request about to go out / in flight
UNCERTAIN = "uncertain"  # sent, outcome unknown (timeout, 5xx): a task may exist
REJECTED = "rejected"  # the server refused it: no task exists
# ...then the task statuses of kling_omni.task: queued, processing, succeeded, failed

SCHEMA = """
BEGIN;
CREATE TABLE IF NOT EXISTS jobs (
    fingerprint TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    external_task_id TEXT UNIQUE,
    task_id TEXT,
    state TEXT NOT NULL,
    prompt TEXT NOT NULL DEFAULT '',
    base_url TEXT NOT NULL DEFAULT '',
    node_id TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    video_url TEXT NOT NULL DEFAULT '',
    video_path TEXT NOT NULL DEFAULT '',
    unit_deduction TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL DEFAULT '',
    seconds REAL,
    video_input INTEGER NOT NULL DEFAULT 0,
    key_id TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    sound INTEGER NOT NULL DEFAULT 0,
    shots INTEGER NOT NULL DEFAULT 0,
    auto_shots INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '',
    missing_since REAL,
    PRIMARY KEY (fingerprint, attempt)
);
CREATE INDEX IF NOT EXISTS jobs_task ON jobs(task_id);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
CREATE TABLE IF NOT EXISTS hosts (
    base_url TEXT PRIMARY KEY,
    echoes_external_id INTEGER NOT NULL
);
COMMIT;
"""
# Columns an older journal lacks (made before costs, then before models were recorded); added on first use.
# A row without a model is an O1 task: the only model there was.
ADDED_COLUMNS = (("mode", "TEXT NOT NULL DEFAULT ''"), ("seconds", "REAL"),
                 ("video_input", "INTEGER NOT NULL DEFAULT 0"), ("key_id", "TEXT NOT NULL DEFAULT ''"),
                 ("model", "TEXT NOT NULL DEFAULT ''"), ("sound", "INTEGER NOT NULL DEFAULT 0"),
                 ("shots", "INTEGER NOT NULL DEFAULT 0"), ("auto_shots", "INTEGER NOT NULL DEFAULT 0"),
                 ("owner", "TEXT NOT NULL DEFAULT ''"), ("missing_since", "REAL"))
# Created, or maybe created: what a task may be billed for (a failed task is not billed).
# A waiting row counts too: its cost is reserved until it is sent or given up.
# So does a task that ended under a status word the pack does not know: it may have been billed.
BILLABLE = (WAITING, SENDING, UNCERTAIN, "queued", "processing", "succeeded", "ended")
# What holds one of the account's slots (an uncertain creation is unknown: it is not counted).
IN_FLIGHT = (SENDING, "queued", "processing")
# An intent some run is working on, with no task known yet.
IN_PROGRESS = (WAITING, SENDING, UNCERTAIN)
BILLING_COLUMNS = ("state", "model", "mode", "seconds", "video_input", "sound", "unit_deduction")  # what a task bills
# What a refused decision left undone, and what to do once the journal takes it again: a Submit's by
# default; the settings' and `db copy`'s say their own (decide(undone=..., again=...)).
NOTHING_SENT, QUEUE_AGAIN = "Nothing was sent to CometAPI", "queue again"
DAMAGED = ("SQLITE_NOTADB", "SQLITE_CORRUPT")  # not a database / "database disk image is malformed"
LOCKS_FOLDER = "locks"  # beside a SQLite journal: everyone who shares the journal shares its collection locks


@dataclass(frozen=True)
class Job:
    fingerprint: str
    attempt: int
    external_task_id: Optional[str]
    task_id: Optional[str]
    state: str
    prompt: str
    base_url: str
    node_id: str
    created_at: float
    updated_at: float
    video_url: str
    video_path: str
    unit_deduction: str
    message: str
    mode: str = ""  # what it is billed for: mode, seconds (None: a base edit's unknown length),
    seconds: Optional[float] = None  # and whether a video went in
    video_input: int = 0
    key_id: str = ""  # which key made it (a hash, see credentials.key_id)
    model: str = ""  # "" is O1 (a row from before models were recorded)
    sound: int = 0
    shots: int = 0  # how many shots of our own (a storyboard); 0: one shot
    auto_shots: int = 0  # Kling cut it into shots
    owner: str = ""  # the Submit run working on it (kling_omni.owners); '' when none is
    missing_since: Optional[float] = None  # when the host first answered it knows no such task
    machine: str = ""  # the machine that journalled it (a shared journal only; '' on SQLite)
    video_machine: str = ""  # the machine whose disk holds video_path (a shared journal only)

    @classmethod
    def from_row(cls, row) -> "Job":
        """A row of this version's columns. A newer version's journal may have more: they are left out
        here (and never written back), so it still reads."""
        return cls(**{name: row[name] for name in row.keys() if name in JOB_FIELDS})

    @property
    def video_on_disk(self) -> Optional[Path]:
        path = Path(self.video_path) if self.video_path else None
        return path if path is not None and path.is_file() else None

    def video_here(self, machine: str) -> Optional[Path]:
        """The saved video, if this machine's disk holds it: on a shared journal a path another machine
        recorded is that machine's (two ComfyUIs of one host each have their own output folder)."""
        if self.video_machine and machine and self.video_machine != machine:
            return None
        return self.video_on_disk

    def saved_on(self, machine: str) -> str:
        """The machine whose disk holds the saved video when it is not this one (a shared journal), else ''. By
        name only: a video this machine saved and lost since is this machine's to collect again."""
        return self.video_machine if self.video_path and self.video_machine not in ("", machine) else ""


JOB_FIELDS = frozenset(Job.__dataclass_fields__)
_BLANK = dict(fingerprint="", attempt=0, external_task_id=None, task_id=None, prompt="", base_url="", node_id="",
              created_at=0.0, updated_at=0.0, video_url="", video_path="", message="", key_id="")


class BaseJournal:
    """What every journal does, in the SQL both engines speak (`?` marks a parameter). An engine
    gives `_read`, `_write`, `_note`, `decide`, `path` (where it is, for messages: never a
    password), its run owners, its collection locks and its pace."""

    REPAIR = "Make that file and its folder writable (or free disk space)"  # what fixes a journal that refuses
    OTHER_RUNS = "another Submit, or another ComfyUI on this user folder"  # who else may work on its rows
    machine = ""  # this machine's name in a shared journal; '' when the journal is this machine's alone
    shared_pace = None  # a Pace every machine shares, or None: the process's own (kling_omni.submission.PACE)
    _ADOPT = ("INSERT OR IGNORE INTO jobs (fingerprint, attempt, task_id, state, base_url, created_at, updated_at)"
              " SELECT ?,?,?,?,?,?,? WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE task_id=?)")
    _LEARN_ECHO = "INSERT OR REPLACE INTO hosts (base_url, echoes_external_id) VALUES (?,?)"

    def __init__(self):
        self._listeners: list = []
        # (fingerprint, attempt) -> the updated_at a mark_sending wrote in a decision whose commit was not
        # confirmed: this process never sent that creation (kling_omni.submission._Run.claim_slot)
        self.never_sent: dict = {}

    # --- submissions -------------------------------------------------------------------

    def latest(self, fingerprint: str) -> Optional[Job]:
        rows = self._read("SELECT * FROM jobs WHERE fingerprint=? ORDER BY attempt DESC LIMIT 1", (fingerprint,))
        return Job.from_row(rows[0]) if rows else None

    def begin(self, fingerprint: str, attempt: int, external_task_id: str, *, prompt: str,
              base_url: str, node_id: str = "", mode: str = "", seconds: Optional[float] = None,
              video_input: bool = False, key_id: str = "", state: str = SENDING, model: str = "",
              sound: bool = False, shots: int = 0, auto_shots: bool = False) -> None:
        """Record an intent before its creation request leaves. Raises JournalError (and then
        the request must not be sent) when the journal cannot take it."""
        now = time.time()
        columns, values = _with_extra(
            ("fingerprint", "attempt", "external_task_id", "state", "prompt", "base_url", "node_id", "created_at",
             "updated_at", "mode", "seconds", "video_input", "key_id", "model", "sound", "shots", "auto_shots"),
            (fingerprint, attempt, external_task_id, state, prompt, base_url, node_id, now, now,
             mode, seconds, int(bool(video_input)), key_id, model, int(bool(sound)), int(shots),
             int(bool(auto_shots))), self._insert_extra())
        try:
            self._write(f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})", values)
            self._changed(None)
        except JournalError as exc:
            raise JournalError(
                f"{exc} Every paid request is recorded there before it is sent, so nothing was sent to "
                f"CometAPI. {self.REPAIR}, then queue again.", path=self.path) from exc

    def settle(self, fingerprint: str, attempt: int, state: str, *, task_id: str | None = None,
               message: str = "") -> bool:
        """Record what the creation request came to: a task id, a rejection or uncertainty.

        Without a task id (back to waiting, rejected, uncertain) it changes only a row that has no
        task: a row that holds one keeps it, so a paid task is never made to look unpaid. False then."""
        try:
            no_task = "" if task_id else " AND task_id IS NULL"

            def record(db) -> int:
                changed = db.execute("UPDATE jobs SET state=?, task_id=COALESCE(?, task_id), message=?, updated_at=?"
                                     f" WHERE fingerprint=? AND attempt=?{no_task}",
                                     (state, task_id, message, time.time(), fingerprint, attempt)).rowcount
                if changed and task_id:  # in the same transaction: no moment shows the task on two rows
                    fold_adopted(db, fingerprint, attempt, task_id)
                return changed

            changed = self._transaction(record)
            if not changed:
                if not task_id and self._read("SELECT 1 FROM jobs WHERE fingerprint=? AND attempt=?",
                                              (fingerprint, attempt)):
                    return False  # it holds a task (found by another run): that stands
                # its row is gone: the journal was deleted or replaced meanwhile
                raise JournalError(f"The job journal {self.path} no longer holds this intent (deleted or "
                                   f"replaced while it was in use).", path=self.path)
            self._changed(task_id)
            return True
        except JournalError as exc:
            outcome = f"task {task_id} ({state})" if task_id else f"{state}: {message}" if message else state
            raise JournalError(
                f"{exc} It could not record what the creation request came to ({outcome}). Queue again "
                f"once it is writable: the pack then looks the task up by its external id instead of "
                f"paying again." + (f" Or collect task {task_id} by id with a CometOmniPoll node."
                                    if task_id else ""), path=self.path) from exc

    def give_up(self, owner: str, fingerprints, message: str) -> None:
        """Rows of `owner` still waiting were never sent: they end rejected, their reserved cost freed.
        Another run's waiting rows are never touched."""
        fingerprints = list(fingerprints)
        if not owner or not fingerprints:
            return
        marks = ",".join("?" * len(fingerprints))
        if self._write(f"UPDATE jobs SET state=?, message=?, updated_at=? WHERE owner=? AND state=? AND task_id IS NULL"
                       f" AND fingerprint IN ({marks})", (REJECTED, message, time.time(), owner, WAITING, *fingerprints)):
            self._changed(None)

    def hand_back(self, owner: str) -> None:
        """A run ends: its rows are nobody's, so what it left (an uncertain creation) is anyone's to resolve."""
        if owner:
            self._note("UPDATE jobs SET owner='' WHERE owner=?", (owner,))

    def failures_for_node(self, node_id: str) -> int:
        """How many tasks this Submit node has seen fail (lets a re-run retry them)."""
        rows = self._read("SELECT COUNT(*) FROM jobs WHERE node_id=? AND state IN ('failed', 'rejected')",
                          (str(node_id),))
        return int(rows[0][0]) if rows else 0

    # --- tasks -------------------------------------------------------------------------

    def by_task(self, task_id: str) -> Optional[Job]:
        rows = self._read("SELECT * FROM jobs WHERE task_id=? ORDER BY updated_at DESC LIMIT 1", (task_id,))
        return Job.from_row(rows[0]) if rows else None

    def adopt(self, task_id: str, *, base_url: str = "") -> None:
        """Remember a task collected by id that no Submit of ours created (a note)."""
        now = time.time()
        self._note(self._ADOPT, (f"collected:{task_id}", 0, task_id, "queued", base_url, now, now, task_id), task_id)

    def update_task(self, task_id: str, *, state: str | None = None, message: str | None = None,
                    video_url: str | None = None, video_path: str | None = None,
                    unit_deduction: str | None = None, seconds: float | None = None) -> None:
        """Note what became of a task (a note: a journal that cannot take it only warns).

        `seconds` is the length the result reports; it fills in only a length not known before
        (a base edit's), since a generated length is exactly what was asked and billed.
        """
        fields = {"state": state, "message": message, "video_url": video_url,
                  "video_path": video_path, "unit_deduction": unit_deduction}
        sets = [(self._STATE_SET if k == "state" else f"{k}=?", v) for k, v in fields.items() if v is not None]
        if video_path is not None:
            sets.extend(self._saved_here())
        if seconds is not None:
            sets.append(("seconds=COALESCE(seconds, ?)", float(seconds)))
        if not sets:
            return
        if state is not None:
            sets.append(("missing_since=?", None))  # the host told its state: it knows the task
        assignments = ", ".join(a for a, _ in sets) + ", updated_at=?"
        self._note(f"UPDATE jobs SET {assignments} WHERE task_id=?", (*(v for _, v in sets), time.time(), task_id),
                   task_id)

    def mark_missing(self, task_id: str) -> None:
        """The host answered that it knows no such task (a note). The task keeps its state and stays to be
        collected (the answer may pass), but it no longer counts as holding one of the account's slots."""
        self._note("UPDATE jobs SET missing_since=COALESCE(missing_since, ?), updated_at=? WHERE task_id=? AND state IN"
                   " ('queued', 'processing')", (time.time(), time.time(), task_id), task_id)

    def jobs(self, limit: int = 50, offset: int = 0) -> list:
        """Newest first."""
        return [Job.from_row(row) for row in self._read("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ? OFFSET ?",
                                                 (limit, offset))]

    def count(self) -> int:
        rows = self._read("SELECT COUNT(*) FROM jobs", ())
        return int(rows[0][0]) if rows else 0

    def billing(self, t0: float) -> list:
        """(job, count) for the rows created at or after t0, grouped by what they bill: each job has only
        state, mode, seconds, video_input and unit_deduction. For totals over thousands of rows."""
        rows = self._read(f"SELECT {', '.join(BILLING_COLUMNS)}, COUNT(*) FROM jobs WHERE created_at >= ?"
                          f" GROUP BY {', '.join(BILLING_COLUMNS)}", (t0,))
        return [(Job(**_BLANK, **dict(zip(BILLING_COLUMNS, row[:-1]))), row[-1]) for row in rows]

    def in_flight(self, key_id: str, since: float) -> list:
        """Tasks of this key created since `since` that may still hold one of the account's slots."""
        marks = ",".join("?" * len(IN_FLIGHT))
        return [Job.from_row(row) for row in self._read(
            f"SELECT * FROM jobs WHERE key_id=? AND created_at >= ? AND state IN ({marks}) ORDER BY created_at",
            (key_id, since, *IN_FLIGHT))]

    def uncollected(self, since: float) -> list:
        """Tasks created since `since` whose video may still be fetched: unfinished, or succeeded and
        never saved. Oldest first. (A saved file the user deleted since is their choice: not here.)"""
        return [Job.from_row(row) for row in self._read(
            "SELECT * FROM jobs WHERE created_at >= ? AND task_id IS NOT NULL AND (state IN ('queued', 'processing')"
            " OR (state = 'succeeded' AND video_path = '')) ORDER BY created_at", (since,))]

    # --- who wants to know -------------------------------------------------------------

    def subscribe(self, listener: Callable[[Optional[str]], None]) -> None:
        """listener(task_id or None) after each change this process writes (e.g. to tell the UI)."""
        self._listeners.append(listener)

    def _changed(self, task_id: Optional[str]) -> None:
        for listener in list(self._listeners):
            try:
                listener(task_id)
            except Exception:  # a listener's trouble is never the journal's
                log.exception("CometAPI Omni: a journal listener failed")

    # --- what a host is known to do ----------------------------------------------------

    def learn_echo(self, base_url: str, echoes: bool) -> None:
        # A note: unrecorded, the pack only stays more careful (it never resends an uncertain creation).
        self._note(self._LEARN_ECHO, (base_url, int(echoes)))

    def echoes_external_id(self, base_url: str) -> bool:
        """True if this host echoed our external_task_id before, i.e. passes it to Kling,
        which refuses a second task with the same one."""
        rows = self._read("SELECT echoes_external_id FROM hosts WHERE base_url=?", (base_url,))
        return bool(rows and rows[0][0])

    # --- what each engine adds ----------------------------------------------------------

    _STATE_SET = "state=?"  # how update_task sets a task's state

    def _insert_extra(self) -> dict:
        """Columns an engine adds to every row it inserts (the machine, in a shared journal)."""
        return {}

    def _transaction(self, work: Callable):
        """work(db) in one transaction (db.execute(sql, params) -> a cursor); what it returns. JournalError
        when the journal cannot take it, as `_write`."""
        raise NotImplementedError

    def _saved_here(self) -> list:
        """(assignment, value) pairs update_task adds when it records a video's path."""
        return []

    def owners(self):
        """The Submit runs working on this journal, as this process sees them (kling_omni.owners)."""
        raise NotImplementedError

    def task_lock(self, task_id: str):
        """The lock one collection of this task holds (kling_omni.locks.TaskLock's methods)."""
        raise NotImplementedError

    def is_collecting(self, task_id: str) -> bool:
        """True while a collection of this task runs, in this process or another."""
        raise NotImplementedError

    def collecting(self, task_ids) -> set:
        """Which of these tasks a collection holds (one look for a page of rows)."""
        return {task_id for task_id in task_ids if task_id and self.is_collecting(task_id)}

    def collectable_here(self, jobs: list) -> list:
        """Of these unsaved tasks, those this machine's background collector should look at: all of them,
        when the journal is this machine's alone."""
        return jobs

    def announce_collector(self, key_id: str, base_url: str = "") -> None:
        """This machine's background collector collects the tasks of this key id (and those without one sent to
        base_url); '' when it collects none: nothing to tell when nobody else looks."""


class Journal(BaseJournal):
    """The journal in a SQLite file on this machine."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self._set_aside_lock = threading.Lock()
        self._warned = False  # a note that could not be written was reported
        self._current = None  # (device, inode) of the file known to have the current schema
        _owner_only(self.path)  # an older version left it with the umask's mode

    # --- who works on it and who collects --------------------------------------------------

    def owners(self):
        from .owners import owners_of  # owners imports locks only; kept lazy like the rest of the engine
        return owners_of(self.path)

    def task_lock(self, task_id: str) -> TaskLock:
        return TaskLock(self.path.parent / LOCKS_FOLDER, task_id)

    def is_collecting(self, task_id: str) -> bool:
        return is_held(self.path.parent / LOCKS_FOLDER, task_id)

    # --- money decisions ---------------------------------------------------------------

    @contextmanager
    def decide(self, undone: str = NOTHING_SENT, again: str = QUEUE_AGAIN):
        """One money decision: a Tx whose reads and writes no other writer interleaves with (an
        IMMEDIATE transaction: SQLite takes the write lock at its start). Committed when the block
        ends, rolled back if it raises. Raises JournalError when the journal cannot take it, saying
        what was `undone` and to `again` once it is fixed."""
        changed: list = []
        try:
            db = self._open_for_decision()
        except (sqlite3.Error, OSError) as exc:
            raise self._decision_error(exc, undone, again) from exc
        try:
            db.execute("BEGIN IMMEDIATE")
            yield Tx(db, changed)
            db.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise self._decision_error(exc, undone, again) from exc
            raise
        finally:
            db.close()
        for task_id in changed:
            self._changed(task_id)

    def _decision_error(self, exc: BaseException, undone: str = NOTHING_SENT, again: str = QUEUE_AGAIN) -> JournalError:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return JournalError(f"The job journal {self.path} is busy: another process kept it locked for 30 s. "
                                f"{undone}. {again[0].upper()}{again[1:]}.", path=self.path)
        return JournalError(f"The job journal {self.path} cannot be written ({_why(exc)}). {undone}. {self.REPAIR}, "
                            f"then {again}.", path=self.path)

    def _open_for_decision(self):
        for last_try in (False, True):
            found = _stat(self.path)
            if found is None:
                self._create()
            db = sqlite3.connect(self.path.absolute().as_uri() + "?mode=rw", uri=True, timeout=30,
                                 isolation_level=None)  # transactions begun and ended here, explicitly
            db.row_factory = sqlite3.Row
            try:
                self._upgrade(db)
                return db
            except sqlite3.DatabaseError as exc:
                db.close()
                if last_try or not _error_name(exc).startswith(DAMAGED):
                    raise
                self._set_aside(found, exc)

    # --- the file ----------------------------------------------------------------------

    def _read(self, sql: str, params: tuple) -> list:
        try:
            return self._use(lambda db: db.execute(sql, params).fetchall(), create=False) or []
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"The job journal {self.path} cannot be read ({_why(exc)}).", path=self.path) from exc

    def _write(self, sql: str, params: tuple) -> int:
        """Run one write; return how many rows it changed."""
        try:
            return self._use(lambda db: db.execute(sql, params).rowcount, create=True)
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"The job journal {self.path} cannot be written ({_why(exc)}).",
                               path=self.path) from exc

    def _transaction(self, work: Callable):
        try:
            return self._use(work, create=True)
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"The job journal {self.path} cannot be written ({_why(exc)}).",
                               path=self.path) from exc

    def _note(self, sql: str, params: tuple, task_id: Optional[str] = None) -> None:
        """A write that helps later runs but must never keep a paid video from the graph."""
        try:
            self._write(sql, params)
            if task_id is not None:
                self._changed(task_id)
        except JournalError as exc:
            if not self._warned:  # once, not at every status change of every task
                self._warned = True
                log.warning("The job journal %s could not be written (%s). Videos are still delivered, but "
                            "not recorded there until it is writable again.", self.path, _why(exc.__cause__))
        else:
            self._warned = False

    def _use(self, work: Callable, *, create: bool):
        """work(db) in one transaction. A missing or empty journal is created first when `create`,
        else there is nothing to read (None). A damaged one is set aside once and replaced."""
        for last_try in (False, True):
            found = _stat(self.path)
            try:
                if found is None:
                    if not create:
                        return None
                    self._create()
                with self._connect() as db:
                    self._upgrade(db)
                    return work(db)
            except sqlite3.DatabaseError as exc:
                if last_try or not _error_name(exc).startswith(DAMAGED):
                    raise
                self._set_aside(found, exc)

    @contextmanager
    def _connect(self):
        # mode=rw: never let SQLite create the file (with the umask's mode) behind _create's back.
        db = sqlite3.connect(self.path.absolute().as_uri() + "?mode=rw", uri=True, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            with db:  # one transaction, committed (and on disk) when the block ends
                yield db
        finally:
            db.close()

    def _upgrade(self, db) -> None:
        """Add what an older journal lacks, once per file (idempotent, so processes may race)."""
        found = _stat(self.path)
        if found is None or found == self._current:
            return
        have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        try:
            for name, declaration in ADDED_COLUMNS:
                if name not in have:
                    try:
                        db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")
                    except sqlite3.OperationalError as exc:
                        if "duplicate column" not in str(exc):
                            raise
            db.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at)")
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc):
                raise
            return  # read-only: rows still read (the new fields have defaults); writes report it
        self._current = found

    def _create(self) -> None:
        """A new journal: an owner-only file (in an owner-only folder, if the pack makes it)."""
        folder = self.path.parent
        if not folder.is_dir():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _chmod(folder, 0o700)  # mkdir's mode is cut by the umask
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            _chmod(self.path, 0o600)
        except FileExistsError:  # empty, e.g. another thread is creating it right now
            _owner_only(self.path)
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _set_aside(self, found, exc: sqlite3.DatabaseError) -> None:
        """Move a damaged journal (and its side files) aside, kept for the user, never deleted."""
        with self._set_aside_lock:
            if found is None or _stat(self.path) != found:
                return  # already replaced (by another thread): use the new one
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            n = 1
            while aside.exists():
                n += 1
                aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            try:
                # A leftover -journal would be "rolled back" into the new file: it goes too.
                for side in ("-journal", "-wal", "-shm", ""):
                    source = Path(f"{self.path}{side}")
                    if source.exists():
                        os.replace(source, f"{aside}{side}")
            except OSError as move_failed:
                raise JournalError(
                    f"The job journal {self.path} is damaged ({_why(exc)}) and could not be moved aside "
                    f"({_why(move_failed)}): move or delete it yourself, then run again.", path=self.path) from exc
            log.warning("The job journal %s was damaged (%s). It was moved to %s (kept, not deleted) and a new "
                        "journal was started: intents recorded only in the old one are forgotten (see "
                        "docs/billing-safety.md of the pack).", self.path, _why(exc), aside)


class Tx:
    """The reads and writes of one money decision (`decide` of either engine). Each write that must find its
    row in a given state says so in its WHERE clause and returns whether it did (compare-and-set)."""

    def __init__(self, db, changed: list, extra: Optional[dict] = None):
        self._db = db  # what a decision reads and writes through: .execute(sql, params) -> a cursor
        self._changed = changed
        self._extra = extra or {}  # columns the engine adds to every row inserted (BaseJournal._insert_extra)

    def latest(self, fingerprint: str) -> Optional[Job]:
        row = self._db.execute("SELECT * FROM jobs WHERE fingerprint=? ORDER BY attempt DESC LIMIT 1",
                               (fingerprint,)).fetchone()
        return Job.from_row(row) if row else None

    def billing(self, t0: float) -> list:
        """As Journal.billing, inside the decision."""
        rows = self._db.execute(f"SELECT {', '.join(BILLING_COLUMNS)}, COUNT(*) FROM jobs WHERE created_at >= ?"
                                f" GROUP BY {', '.join(BILLING_COLUMNS)}", (t0,)).fetchall()
        return [(Job(**_BLANK, **dict(zip(BILLING_COLUMNS, row[:-1]))), row[-1]) for row in rows]

    def in_flight(self, key_id: str, since: float) -> list:
        marks = ",".join("?" * len(IN_FLIGHT))
        return [Job.from_row(row) for row in self._db.execute(
            f"SELECT * FROM jobs WHERE key_id=? AND created_at >= ? AND state IN ({marks}) ORDER BY created_at",
            (key_id, since, *IN_FLIGHT)).fetchall()]

    def add_waiting(self, fingerprint: str, attempt: int, external_task_id: str, *, owner: str, prompt: str,
                    base_url: str, node_id: str = "", mode: str = "", seconds: Optional[float] = None,
                    video_input: bool = False, key_id: str = "", model: str = "", sound: bool = False,
                    shots: int = 0, auto_shots: bool = False) -> None:
        """Journal a new attempt, its cost reserved, owned by `owner`, before anything is sent."""
        now = time.time()
        columns, values = _with_extra(
            ("fingerprint", "attempt", "external_task_id", "state", "prompt", "base_url", "node_id", "created_at",
             "updated_at", "mode", "seconds", "video_input", "key_id", "model", "sound", "shots", "auto_shots", "owner"),
            (fingerprint, attempt, external_task_id, WAITING, prompt, base_url, node_id, now, now, mode, seconds,
             int(bool(video_input)), key_id, model, int(bool(sound)), int(shots), int(bool(auto_shots)), owner),
            self._extra)
        self._db.execute(f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})", values)
        self._changed.append(None)

    def take(self, job: Job, owner: str) -> bool:
        """Make `owner` the owner of an in-progress row still owned by whoever `job` says."""
        marks = ",".join("?" * len(IN_PROGRESS))
        return self._set(f"owner=? WHERE fingerprint=? AND attempt=? AND owner=? AND state IN ({marks})",
                         (owner, job.fingerprint, job.attempt, job.owner, *IN_PROGRESS), None)

    def redate(self, job: Job) -> bool:
        """A waiting row reserved on an earlier day, taken over today: its cost is reserved today, when it will
        be sent and billed (the daily limit's check comes first)."""
        return self._set("created_at=? WHERE fingerprint=? AND attempt=? AND state=? AND task_id IS NULL",
                         (time.time(), job.fingerprint, job.attempt, WAITING), None)

    def mark_sending(self, fingerprint: str, attempt: int, owner: str) -> bool:
        """waiting → sending, only for a row of `owner` that has no task: the one step before a creation leaves."""
        return self._set("state=? WHERE fingerprint=? AND attempt=? AND owner=? AND state=? AND task_id IS NULL",
                         (SENDING, fingerprint, attempt, owner, WAITING), None)

    def unsend(self, job: Job, owner: str, stamp: float) -> bool:
        """sending → waiting, now `owner`'s, for a row this process marked sending (at `stamp`) and never sent,
        the decision's commit unconfirmed: only if nothing changed it since (every change sets updated_at)."""
        return self._set("state=?, owner=? WHERE fingerprint=? AND attempt=? AND state=? AND task_id IS NULL AND"
                         " updated_at=?", (WAITING, owner, job.fingerprint, job.attempt, SENDING, stamp), None)

    def _set(self, assignment_and_where: str, params: tuple, task_id) -> bool:
        self.stamp = time.time()  # the updated_at written: what identifies this change later
        # Bound, not written into the SQL: SQLite reads a few float literals a bit off, and unsend()
        # compares the bound value.
        changed = self._db.execute(f"UPDATE jobs SET updated_at=?, {assignment_and_where}",
                                   (self.stamp, *params)).rowcount
        if changed:
            self._changed.append(task_id)
        return changed == 1


def fold_adopted(db, fingerprint: str, attempt: int, task_id: str) -> None:
    """One task is one row. A task collected by id (adopt(): a 'collected:' row) before its intent's row
    learned it (a note kept while the database was away, a Poll given the id from an error) is folded into
    that row: what its collection learned (a video, a charge, the task's end) is kept, the row goes.
    `db` is a transaction's (db.execute(sql, params) -> a cursor); the intent's row holds `task_id`."""
    if fingerprint.startswith("collected:"):
        return
    # Locked until the fold commits (PostgreSQL: FOR UPDATE), so a collection of it on another machine
    # lands before the read or waits; SQLite has one writer at a time and no such clause.
    adopted = db.execute("SELECT * FROM jobs WHERE fingerprint=? AND attempt=0 AND task_id=?"
                         + getattr(db, "ROW_LOCK", ""), (f"collected:{task_id}", task_id)).fetchone()
    if adopted is None:
        return
    row = db.execute("SELECT * FROM jobs WHERE fingerprint=? AND attempt=?", (fingerprint, attempt)).fetchone()
    kept = learned_by_collection(row, adopted)
    if kept:
        db.execute(f"UPDATE jobs SET {', '.join(f'{name}=?' for name in kept)} WHERE fingerprint=? AND attempt=?",
                   (*kept.values(), fingerprint, attempt))
    db.execute("DELETE FROM jobs WHERE fingerprint=? AND attempt=0", (f"collected:{task_id}",))


def learned_by_collection(row, adopted) -> dict:
    """column -> value: what a collection of the task by id (`adopted`, a row or a dict) learned that `row`,
    the intent's row of the same task, lacks."""
    kept = {}
    if not row["video_path"] and adopted["video_path"]:
        kept["video_path"] = adopted["video_path"]
        if "video_machine" in adopted.keys():  # a shared journal: the disk that holds it goes with it
            kept["video_machine"] = adopted["video_machine"]
    for name in ("video_url", "unit_deduction"):
        if not row[name] and adopted[name]:
            kept[name] = adopted[name]
    if row["seconds"] is None and adopted["seconds"] is not None:
        kept["seconds"] = adopted["seconds"]
    if adopted["state"] in TERMINAL and row["state"] not in TERMINAL:  # a task's end is never undone
        kept.update(state=adopted["state"], message=adopted["message"])
    return kept


def _with_extra(columns: tuple, values: tuple, extra: dict) -> tuple:
    """(columns, values) of an insert, with an engine's own columns added."""
    return columns + tuple(extra), values + tuple(extra.values())


def _stat(path: Path):
    """(device, inode) of a journal worth opening; None when it is missing or empty."""
    try:
        found = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (found.st_dev, found.st_ino) if found.st_size > 0 else None


def _error_name(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if name:
        return name
    text = str(exc).lower()  # Python 3.10: the messages are SQLite's own, stable
    return ("SQLITE_NOTADB" if "not a database" in text else "SQLITE_CORRUPT" if "malformed" in text else "")


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _owner_only(path: Path) -> None:
    """Take group and world access away; never add any (a read-only file stays read-only)."""
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except OSError:  # missing, not ours, or a filesystem without modes
        pass


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError:
        pass
