"""A throwaway PostgreSQL 16 for the tests, the benchmark and scripts/studio_check.py: no root, no system package.

The PostgreSQL binaries come from the pip package pgserver (a dev dependency), run here by a launcher
of our own: pgserver's, run as root, adds a system user and opens the permissions of every folder
above its data. Here, as root (CI and these machines run as root, and PostgreSQL refuses to), the
server runs as `nobody` through setpriv (util-linux), from a copy of the binaries in its own
temporary folder that `nobody` can read; as anyone else, it runs as that user.

It listens on 127.0.0.1 (a free port) with a password, so the pack is tested as users run it, and
its settings favour speed over durability (fsync off: the data is thrown away), unless `durable`
(the benchmark: PostgreSQL's writes then wait for the disk, as SQLite's do). `stop()` ends it,
`start()` brings it back on the same port and data (a database that goes away mid-run).

    with ThrowawayPostgres() as pg:
        url = pg.create_database("test_1")   # postgresql://kling:<password>@127.0.0.1:<port>/test_1
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

USER = "kling"
NOBODY = 65534


class PostgresUnavailable(RuntimeError):
    """The throwaway server cannot be started here; the message says what to install or fix."""


def binaries() -> Path:
    """pgserver's bin/ folder; PostgresUnavailable saying how to install it."""
    import importlib.util
    found = importlib.util.find_spec("pgserver")  # not imported: its import makes folders and locks of its own
    if found is None or not found.submodule_search_locations:
        raise PostgresUnavailable("The PostgreSQL tests need the pip packages pgserver and psycopg (dev dependencies "
                                  "in requirements-dev.txt): run `make test` (it installs them into .venv), or "
                                  "`python -m pip install -r requirements-dev.txt`.")
    return Path(list(found.submodule_search_locations)[0]) / "pginstall" / "bin"


class ThrowawayPostgres:
    def __init__(self, root: Optional[Path] = None, *, durable: bool = False):
        self.durable = durable
        self.password = "pw-" + secrets.token_urlsafe(12)  # the tests look for it in every log and answer
        self.port = _free_port()
        self._root = Path(tempfile.mkdtemp(prefix="kling-pg-", dir=root))
        self._as_root = os.geteuid() == 0
        self._process: Optional[subprocess.Popen] = None
        self.data = self._root / "data"
        self.log = self._root / "postgres.log"

    # --- life ------------------------------------------------------------------------

    def __enter__(self) -> "ThrowawayPostgres":
        self.init()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self._root, ignore_errors=True)

    def init(self) -> None:
        if self._as_root and not all(os.stat(p).st_mode & 0o001 for p in self._root.parents):
            raise PostgresUnavailable(f"As root, the throwaway PostgreSQL runs as nobody, who cannot reach "
                                      f"{self._root}: set TMPDIR to a folder every user can traverse (e.g. /tmp).")
        bin_dir = self._install()
        self.data.mkdir()
        password_file = self._root / "password"
        password_file.write_text(self.password + "\n")
        for path in (self.data, password_file):
            self._own(path)
        self._run([str(bin_dir / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={password_file}",
                   "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
        password_file.unlink()
        atexit.register(self.stop)

    def start(self, timeout: float = 20.0) -> None:
        """Start (or start again) on the same port and data; returns once it accepts connections."""
        if self._process is not None and self._process.poll() is None:
            return
        sockets = self._root / "sockets"
        sockets.mkdir(exist_ok=True)
        self._own(sockets)
        log = open(self.log, "ab")
        fast = [] if self.durable else ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        command = [str(self._bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                   "-k", str(sockets), *fast, "-c", "max_connections=200", "-c", "shared_buffers=32MB"]
        self._process = subprocess.Popen(self._as_nobody(command), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PostgresUnavailable(f"PostgreSQL stopped at start: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if self._accepts():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise PostgresUnavailable(f"PostgreSQL did not accept connections within {timeout:g} s: "
                                  f"{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """A fast shutdown: every connection is cut, as when the database host goes away."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    # --- use -------------------------------------------------------------------------

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def sql(self, statement: str, database: str = "postgres"):
        import psycopg
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else None

    # --- inside ----------------------------------------------------------------------

    def _accepts(self) -> bool:
        try:
            self.sql("SELECT 1")
            return True
        except Exception:
            return False

    def _install(self) -> Path:
        """The binaries to run: pgserver's own, or (as root) a copy `nobody` can read, with their libraries."""
        source = binaries()
        if not self._as_root:
            self._bin = source
            return source
        package = source.parent.parent  # .../site-packages/pgserver
        copy = self._root / "pg"
        shutil.copytree(package / "pginstall", copy / "pgserver" / "pginstall", copy_function=_link_or_copy)
        libs = package.parent / "pgserver.libs"  # the wheel's own libraries, found by RPATH $ORIGIN/../../../
        if libs.is_dir():
            shutil.copytree(libs, copy / "pgserver.libs", copy_function=_link_or_copy)
        for folder in (self._root, *[p for p in copy.rglob("*") if p.is_dir()], copy):
            folder.chmod(0o755)
        self._bin = copy / "pgserver" / "pginstall" / "bin"
        return self._bin

    def _as_nobody(self, command: list) -> list:
        if not self._as_root:
            return command
        if shutil.which("setpriv") is None:
            raise PostgresUnavailable("As root, the throwaway PostgreSQL runs as nobody through setpriv (util-linux), "
                                      "which is not installed: apt-get install util-linux.")
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *command]

    def _run(self, command: list) -> None:
        done = subprocess.run(self._as_nobody(command), capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{Path(command[0]).name} failed: {done.stdout[-1500:]} {done.stderr[-1500:]}")

    def _own(self, path: Path) -> None:
        if self._as_root:
            os.chown(path, NOBODY, NOBODY)
            path.chmod(0o700 if path.is_dir() else 0o600)


def _link_or_copy(source, target):
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
