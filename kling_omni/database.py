"""The PostgreSQL database of a shared journal: its URL said without the password, connections, the schema.

One setting, COMETAPI_OMNI_DATABASE_URL=postgresql://user:password@host[:port]/database, puts the
journal, the ledger, the settings that guard money and the task locks of several machines in one
database (kling_omni.store chooses). Everything lives in its own schema, `cometapi_omni`, so the
database may hold other things.

- The password never leaves this module: `where` is the URL without it, and every error text that
  comes from the driver passes through `redact` (the password in every spelling) before it is
  put in a message.
- psycopg 3 is the driver, an optional dependency: imported on first use, and an error says how
  to install it when the URL is set without it. A URL that is not usable is refused the same way:
  the pack never falls back to a journal of its own, which would lift the shared daily limit.
- Connections: a few are kept for reuse (checked before reuse after a pause, since a restarted
  server closes them), and the locks of runs and collections hold connections of their own
  (`connect`). A database that refused a moment ago is not tried again for a short while by notes
  (`recently_down`), so a Poll waits for a host that drops packets at most once a while (a connect
  timeout), not at every status change.
- The schema is checked on every new connection: one made by a newer pack is refused (nothing is
  read or written), an older or missing one is brought up to date under an advisory lock, once,
  whichever machine comes first.
- Advisory locks: `key(kind, name)` is a stable 64-bit key; `held(keys)` asks pg_locks which are
  held by any session of this database, without taking them.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import DatabaseUnavailable, SchemaTooNew, redact as redact_secrets

log = logging.getLogger("cometapi_omni")

DATABASE_ENV = "COMETAPI_OMNI_DATABASE_URL"
SCHEMA = "cometapi_omni"
SCHEMA_VERSION = 1  # what this pack reads and writes; a database at a higher one is refused
CONNECT_SECONDS = 5  # how long a connection may take to be made
DOWN_SECONDS = 2.0  # after a failed connection, notes wait this long before they try again
CHECK_AFTER_IDLE = 1.0  # a kept connection idle longer than this is checked before it is used again
KEEP_IDLE = 4  # connections kept for reuse
DECISION_LOCK_SECONDS = 30  # as SQLite's busy timeout: a decision waits this long for another machine's
# The server notices a machine that vanished (power, network) within about 25 s and frees its locks;
# a process that dies is noticed at once (its connections close).
SESSION_OPTIONS = (f"-c search_path={SCHEMA} -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 "
                   f"-c tcp_keepalives_count=3 -c idle_in_transaction_session_timeout=60000")
INSTALL_HINT = f'{sys.executable} -m pip install "psycopg[binary]"'

MIGRATIONS = {
    1: """
CREATE TABLE IF NOT EXISTS jobs (
    fingerprint TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    external_task_id TEXT UNIQUE,
    task_id TEXT,
    state TEXT NOT NULL,
    prompt TEXT NOT NULL DEFAULT '',
    base_url TEXT NOT NULL DEFAULT '',
    node_id TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    video_url TEXT NOT NULL DEFAULT '',
    video_path TEXT NOT NULL DEFAULT '',
    unit_deduction TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL DEFAULT '',
    seconds DOUBLE PRECISION,
    video_input INTEGER NOT NULL DEFAULT 0,
    key_id TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    sound INTEGER NOT NULL DEFAULT 0,
    shots INTEGER NOT NULL DEFAULT 0,
    auto_shots INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '',
    missing_since DOUBLE PRECISION,
    machine TEXT NOT NULL DEFAULT '',
    video_machine TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (fingerprint, attempt)
);
CREATE INDEX IF NOT EXISTS jobs_task ON jobs(task_id);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
CREATE TABLE IF NOT EXISTS hosts (
    base_url TEXT PRIMARY KEY,
    echoes_external_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    machine TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS pace (
    key_id TEXT PRIMARY KEY,
    learned INTEGER NOT NULL,
    learned_at DOUBLE PRECISION NOT NULL,
    why TEXT NOT NULL DEFAULT ''
);
""",
}


def key(kind: str, name: str) -> int:
    """A stable signed 64-bit advisory lock key for (kind, name): the same on every machine."""
    digest = hashlib.sha256(f"cometapi-omni:{kind}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


LEDGER_KEY = key("ledger", "decisions")  # every money decision takes it: they run one at a time
MIGRATE_KEY = key("schema", "migrate")


def describe(url: str) -> str:
    """The URL as messages show it: postgresql://user@host:port/database, never the password."""
    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        host = parts.hostname or (query.get("host") or ["localhost"])[0]
        port = f":{parts.port}" if parts.port else ""
        user = f"{unquote(parts.username)}@" if parts.username else ""
    except ValueError:  # a port that is not a number, brackets that do not close
        return "the database of COMETAPI_OMNI_DATABASE_URL (not a valid URL)"
    return f"postgresql://{user}{host}{port}{parts.path or '/'}"


def secrets_of(url: str) -> list:
    """Every password the URL holds, as written and decoded (userinfo and ?password=), and the URL itself."""
    found = [url]
    try:
        parts = urlsplit(url)
        raw = parts.netloc.rpartition("@")[0].partition(":")[2] if "@" in parts.netloc else ""
        found += [raw, unquote(raw)] + parse_qs(parts.query).get("password", [])
    except ValueError:
        pass
    return [s for s in found if s]


def url_problem(url: str) -> str:
    """What keeps `url` from being used, in words ('' when nothing does)."""
    try:
        parts = urlsplit(url)
        parts.port  # raises on a port that is not a number
    except ValueError as exc:
        return f"it is not a valid URL ({exc})"
    if parts.scheme not in ("postgresql", "postgres"):
        return "it does not start with postgresql://"
    if not parts.path.strip("/"):
        return "it names no database (postgresql://user:password@host/database)"
    return ""


class Database:
    """One database, as this process uses it. Never raises at construction: a URL that cannot be used,
    or a missing driver, is reported by each use (DatabaseUnavailable), so the pack still loads."""

    def __init__(self, url: str, *, application: str = "cometapi-omni"):
        self.where = describe(url)
        self._url = url
        self._secrets = secrets_of(url)
        self._application = application[:60]
        self._idle: list = []  # (connection, when it was put back)
        self._guard = threading.Lock()
        self._down_until = 0.0
        self._last_down = ""
        problem = url_problem(url)
        self.problem = (f"{DATABASE_ENV} is set, but {problem}. Set it to postgresql://user:password@host/database "
                        f"(or unset it to keep the journal on this machine) and restart ComfyUI.") if problem else ""

    # --- words ------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` without the URL's password (nor the URL itself, nor anything shaped like a key)."""
        return redact_secrets(text, *self._secrets)

    def why(self, exc: BaseException) -> str:
        """What went wrong, in the driver's words, on one line, without the password."""
        text = str(exc).strip() or type(exc).__name__
        text = text.split("\n")[0].removeprefix("connection failed: ")
        return self.redact(text)

    def unavailable(self, exc: BaseException, doing: str = "reached") -> DatabaseUnavailable:
        return DatabaseUnavailable(f"The shared journal's database {self.where} cannot be {doing} "
                                   f"({self.why(exc)}).", path=self.where)

    # --- connections -------------------------------------------------------------------

    def driver(self):
        """The psycopg module; DatabaseUnavailable saying how to install it (or why the URL is refused)."""
        if self.problem:
            raise DatabaseUnavailable(self.problem, path=self.where)
        try:
            import psycopg
        except ImportError:
            raise DatabaseUnavailable(
                f"{DATABASE_ENV} is set ({self.where}), but psycopg 3, the PostgreSQL driver, is not installed in "
                f"this Python. Install it with `{INSTALL_HINT}` and restart ComfyUI (or unset {DATABASE_ENV} to keep "
                f"the journal on this machine).", path=self.where) from None
        return psycopg

    def connect(self):
        """A new connection of its own (autocommit, on the pack's schema, checked): for a lock held as long
        as it lives. DatabaseUnavailable (or SchemaTooNew) when it cannot be had."""
        psycopg = self.driver()
        try:
            params = psycopg.conninfo.conninfo_to_dict(self._url)
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"{DATABASE_ENV} cannot be used ({self.why(exc)}): set it to "
                                      f"postgresql://user:password@host/database.", path=self.where) from None
        params["options"] = f"{params.get('options', '')} {SESSION_OPTIONS}".strip()
        params.setdefault("connect_timeout", CONNECT_SECONDS)
        params.setdefault("application_name", self._application)
        try:
            conn = psycopg.connect(autocommit=True, row_factory=_rows, **params)
        except psycopg.Error as exc:
            self._down(exc)
            raise self.unavailable(exc) from None
        try:
            self._check_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._down_until = 0.0
        return conn

    @contextmanager
    def connection(self):
        """A connection for one operation, from those kept or new; kept again after, unless it broke."""
        conn = self._take()
        try:
            yield conn
        except BaseException:
            if conn.broken or conn.closed or conn.info.transaction_status != 0:  # 0: idle
                conn.close()
            else:
                self._give(conn)
            raise
        self._give(conn)

    def recently_down(self) -> bool:
        """A connection failed within DOWN_SECONDS: notes do not wait for another try."""
        return time.monotonic() < self._down_until

    def close(self) -> None:
        with self._guard:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def _take(self):
        psycopg = self.driver()
        while True:
            with self._guard:
                conn, since = self._idle.pop() if self._idle else (None, 0.0)
            if conn is None:
                return self.connect()
            if time.monotonic() - since < CHECK_AFTER_IDLE:
                return conn
            try:  # a restarted server closed it meanwhile: found here, not in the middle of a decision
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                conn.close()

    def _give(self, conn) -> None:
        if conn.closed or conn.broken:
            return
        with self._guard:
            if len(self._idle) < KEEP_IDLE:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def _down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + DOWN_SECONDS
        why = self.why(exc)
        if why != self._last_down:  # said once per cause, not at every note
            self._last_down = why
            log.warning("CometAPI Omni: the shared journal's database %s cannot be reached (%s).", self.where, why)

    # --- the schema --------------------------------------------------------------------

    def _check_schema(self, conn) -> None:
        """Refuse a newer schema without writing; create or upgrade an older one (once, under a lock)."""
        psycopg = self.driver()
        try:
            found = self._version(conn)
        except psycopg.Error as exc:  # the server restarting under a new connection, a user who may not read it
            raise self.unavailable(exc, "read") from None
        if found == SCHEMA_VERSION:
            return
        if found is not None and found > SCHEMA_VERSION:
            raise self._too_new(found)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_KEY,))
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (one BOOLEAN PRIMARY KEY DEFAULT"
                             f" TRUE CHECK (one), version INTEGER NOT NULL, written_at DOUBLE PRECISION NOT NULL)")
                found = self._version(conn) or 0  # another machine may have migrated meanwhile
                if found > SCHEMA_VERSION:
                    raise self._too_new(found)
                for version in range(found + 1, SCHEMA_VERSION + 1):
                    conn.execute(f"SET LOCAL search_path TO {SCHEMA}")
                    conn.execute(MIGRATIONS[version])
                conn.execute(f"INSERT INTO {SCHEMA}.schema_version (one, version, written_at) VALUES (TRUE, %s, %s)"
                             f" ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version, written_at ="
                             f" EXCLUDED.written_at", (SCHEMA_VERSION, time.time()))
        except psycopg.Error as exc:
            raise DatabaseUnavailable(
                f"The shared journal's tables cannot be made in {self.where} ({self.why(exc)}). The user of "
                f"{DATABASE_ENV} needs the right to create the schema {SCHEMA} (or its tables, if someone made the "
                f"schema for it).", path=self.where) from None

    def _version(self, conn) -> Optional[int]:
        row = conn.execute(f"SELECT to_regclass('{SCHEMA}.schema_version') IS NOT NULL AS present").fetchone()
        if not row["present"]:
            return None
        row = conn.execute(f"SELECT version FROM {SCHEMA}.schema_version").fetchone()
        return int(row["version"]) if row else None

    def _too_new(self, found: int) -> SchemaTooNew:
        return SchemaTooNew(
            f"The shared journal's database {self.where} holds schema version {found}, made by a newer version of "
            f"this pack; this one knows versions up to {SCHEMA_VERSION}, so it neither reads nor writes it (nothing "
            f"was sent to CometAPI). Update the pack on this machine: every machine on one database runs the same "
            f"version or a newer one.", path=self.where)

    # --- advisory locks ----------------------------------------------------------------

    def held(self, keys: Iterable[int]) -> set:
        """Which of these advisory lock keys some session of this database holds (exclusive or shared)."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return set()
        parts = {((k >> 32) & 0xFFFFFFFF, k & 0xFFFFFFFF): k for k in keys}
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT classid::bigint AS hi, objid::bigint AS lo FROM pg_locks WHERE locktype = 'advisory'"
                " AND objsubid = 1 AND granted AND database = (SELECT oid FROM pg_database WHERE datname ="
                " current_database()) AND (classid::bigint, objid::bigint) IN (SELECT * FROM unnest(%s::bigint[],"
                " %s::bigint[]))", ([hi for hi, _ in parts], [lo for _, lo in parts])).fetchall()
        return {parts[(row["hi"], row["lo"])] for row in rows}

    # --- live notes from other machines -------------------------------------------------

    def listen(self, channel: str, on_message: Callable[[str], None], on_reconnect: Callable[[], None],
               stop: threading.Event) -> None:
        """LISTEN on `channel` until `stop` is set (run in a thread of its own): each NOTIFY payload to
        `on_message`; after a connection is made again (messages may have been missed), `on_reconnect()`."""
        delay, first = 1.0, True
        while not stop.is_set():
            try:
                conn = self.connect()
            except Exception:  # said by connect (once per cause); tried again
                stop.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            try:
                conn.execute(f"LISTEN {channel}")
                if not first:
                    on_reconnect()
                first, delay = False, 1.0
                while not stop.is_set():
                    for note in conn.notifies(timeout=0.5):
                        on_message(note.payload)
            except Exception as exc:  # the server went away: listen again when it is back
                if not stop.is_set():
                    self._down(exc)
            finally:
                conn.close()


class _Row:
    """A row as sqlite3.Row gives it: by column name or by position (and slices), with keys()."""

    __slots__ = ("_values", "_index")

    def __init__(self, values, index: dict):
        self._values = tuple(values)
        self._index = index

    def keys(self):
        return list(self._index)

    def __getitem__(self, item):
        return self._values[self._index[item]] if isinstance(item, str) else self._values[item]

    def __len__(self) -> int:
        return len(self._values)


def _rows(cursor):
    """psycopg's row factory for _Row."""
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: _Row(values, index)
