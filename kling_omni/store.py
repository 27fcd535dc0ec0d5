"""Where the journal, the ledger, the settings that guard money and the task locks are kept: chosen here, once.

Without COMETAPI_OMNI_DATABASE_URL, everything stays on this machine as it always was: the SQLite
journal in the data folder (kling_omni.journal), settings.json beside it, file locks. With it, they
are in that PostgreSQL database, shared by every machine that names it (kling_omni.pg_journal,
kling_omni.shared_settings). Nothing else in the pack knows which: submission, the ledger,
collection and the nodes ask the journal this gives them.

What stays on each machine either way: the key (and its short id is all the database sees), the
output folder and its videos, the thumbnails, and whether it collects in the background. Each
machine is named by COMETAPI_OMNI_MACHINE, or its host name: the Tasks sidebar shows it, and
which machine's disk holds each video.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from typing import Optional

from . import settings as local
from .database import DATABASE_ENV
from .journal import BaseJournal, Journal
from .settings import PackSettings

MACHINE_ENV = "COMETAPI_OMNI_MACHINE"
JOURNAL_FILE = "journal.sqlite3"

_shared: dict = {}  # (url, machine) -> PgJournal: one per process, it keeps connections and a listener
_guard = threading.Lock()


def database_url(environ=None) -> str:
    """The shared journal's URL, or '' for the journal on this machine."""
    environ = os.environ if environ is None else environ
    return environ.get(DATABASE_ENV, "").strip()


def machine_name(environ=None) -> str:
    """This machine's name in a shared journal: $COMETAPI_OMNI_MACHINE, else the host name (letters, digits,
    '.', '-', '_'; at most 64 characters)."""
    environ = os.environ if environ is None else environ
    name = environ.get(MACHINE_ENV, "").strip() or socket.gethostname()
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64] or "machine"


def open_journal(data_dir: Path, *, url: Optional[str] = None) -> BaseJournal:
    """The journal this machine uses: the shared one when a database URL is set, else the SQLite file in
    `data_dir`. Never raises for a database that cannot be used: each use of it says so."""
    url = database_url() if url is None else url
    if not url:
        return Journal(Path(data_dir) / JOURNAL_FILE)
    machine = machine_name()
    with _guard:
        journal = _shared.get((url, machine))
        if journal is None:
            from .pg_journal import PgJournal  # psycopg and the rest only when a database is named
            journal = _shared[(url, machine)] = PgJournal(url, machine=machine)
        return journal


def is_shared(journal: BaseJournal) -> bool:
    return bool(journal.machine)


def load_settings(store_dir: Optional[Path]) -> PackSettings:
    """The settings in force: this machine's settings.json, with the shared values of the database (when
    one is named) in place of its own."""
    mine = local.load_settings(store_dir)
    if not database_url():
        return mine
    from . import shared_settings
    return shared_settings.load(open_journal(store_dir or Path(".")), mine, store_dir)


def save_settings(store_dir: Path, changes: dict) -> PackSettings:
    """Save `changes` where each is kept (see load_settings); SettingsError names a bad value, nothing saved."""
    if not database_url():
        return local.save_settings(store_dir, changes)
    from . import shared_settings
    return shared_settings.save(open_journal(store_dir), store_dir, changes)


def forget_journals() -> None:
    """Close every shared journal this process opened (tests, and the command line before it exits)."""
    with _guard:
        journals = list(_shared.values())
        _shared.clear()
    for journal in journals:
        journal.close()
