"""The durable job journal: every paid intent, its task and its video, across restarts.

SQLite from the standard library. One short connection per operation keeps it safe for
several threads and for ComfyUI and the command line at once. A row is written *before*
the creation request ("sending") and updated after it, so a crash in between leaves a
row that says "we may have paid and do not know for what".
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SENDING = "sending"  # creation request about to go out / in flight
UNCERTAIN = "uncertain"  # sent, outcome unknown (timeout, 5xx): a task may exist
REJECTED = "rejected"  # the server refused it: no task exists
# ...then the task statuses of kling_omni.task: queued, processing, succeeded, failed

SCHEMA = """
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
    PRIMARY KEY (fingerprint, attempt)
);
CREATE INDEX IF NOT EXISTS jobs_task ON jobs(task_id);
CREATE TABLE IF NOT EXISTS hosts (
    base_url TEXT PRIMARY KEY,
    echoes_external_id INTEGER NOT NULL
);
"""


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

    @property
    def video_on_disk(self) -> Optional[Path]:
        path = Path(self.video_path) if self.video_path else None
        return path if path is not None and path.is_file() else None


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self):
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            with db:  # one transaction, committed (and on disk) when the block ends
                yield db
        finally:
            db.close()

    # --- submissions -------------------------------------------------------------------

    def latest(self, fingerprint: str) -> Optional[Job]:
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE fingerprint=? ORDER BY attempt DESC LIMIT 1",
                             (fingerprint,)).fetchone()
        return Job(**row) if row else None

    def begin(self, fingerprint: str, attempt: int, external_task_id: str, *, prompt: str,
              base_url: str, node_id: str = "") -> None:
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT INTO jobs (fingerprint, attempt, external_task_id, state, prompt, base_url,"
                " node_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (fingerprint, attempt, external_task_id, SENDING, prompt, base_url, node_id, now, now))

    def settle(self, fingerprint: str, attempt: int, state: str, *, task_id: str | None = None,
               message: str = "") -> None:
        """Record what the creation request came to: a task id, a rejection or uncertainty."""
        with self._db() as db:
            db.execute("UPDATE jobs SET state=?, task_id=COALESCE(?, task_id), message=?, updated_at=?"
                       " WHERE fingerprint=? AND attempt=?",
                       (state, task_id, message, time.time(), fingerprint, attempt))

    def failures_for_node(self, node_id: str) -> int:
        """How many tasks this Submit node has seen fail (lets a re-run retry them)."""
        with self._db() as db:
            row = db.execute("SELECT COUNT(*) FROM jobs WHERE node_id=? AND state IN ('failed', 'rejected')",
                             (str(node_id),)).fetchone()
        return int(row[0])

    # --- tasks -------------------------------------------------------------------------

    def by_task(self, task_id: str) -> Optional[Job]:
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE task_id=? ORDER BY updated_at DESC LIMIT 1",
                             (task_id,)).fetchone()
        return Job(**row) if row else None

    def adopt(self, task_id: str, *, base_url: str = "") -> None:
        """Remember a task collected by id that no Submit of ours created."""
        if self.by_task(task_id) is not None:
            return
        now = time.time()
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO jobs (fingerprint, attempt, task_id, state, base_url,"
                       " created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                       (f"collected:{task_id}", 0, task_id, "queued", base_url, now, now))

    def update_task(self, task_id: str, *, state: str | None = None, message: str | None = None,
                    video_url: str | None = None, video_path: str | None = None,
                    unit_deduction: str | None = None) -> None:
        fields = {"state": state, "message": message, "video_url": video_url,
                  "video_path": video_path, "unit_deduction": unit_deduction}
        sets = {k: v for k, v in fields.items() if v is not None}
        if not sets:
            return
        assignments = ", ".join(f"{k}=?" for k in sets) + ", updated_at=?"
        with self._db() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE task_id=?",
                       (*sets.values(), time.time(), task_id))

    def jobs(self, limit: int = 50) -> list:
        with self._db() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [Job(**row) for row in rows]

    # --- what a host is known to do ----------------------------------------------------

    def learn_echo(self, base_url: str, echoes: bool) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO hosts (base_url, echoes_external_id) VALUES (?,?)",
                       (base_url, int(echoes)))

    def echoes_external_id(self, base_url: str) -> bool:
        """True if this host echoed our external_task_id before, i.e. passes it to Kling,
        which refuses a second task with the same one."""
        with self._db() as db:
            row = db.execute("SELECT echoes_external_id FROM hosts WHERE base_url=?", (base_url,)).fetchone()
        return bool(row and row[0])
