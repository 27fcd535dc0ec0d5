"""The settings that guard money, kept in a shared journal's database: every machine reads the same.

With COMETAPI_OMNI_DATABASE_URL set, the rates, the daily limit and the tasks-in-flight limit are the
account's, not a machine's: read from the database's `settings` table on every use and saved there in
one transaction (a row per value, each rate its own: two machines saving different values at once
both keep theirs). Whether a machine collects in the background stays in its own settings.json: it
is that machine's choice, like its output folder.

They fail closed as the file does (kling_omni.settings): each value is read and checked on its own,
a bad one costs only itself; a daily limit that cannot be read (a database that does not answer, a
value that is not one) leaves the limit unknown, and Submit refuses, naming the database and why,
without its password. The key is never here: it stays on each machine.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from . import settings as local
from .errors import JournalError
from .settings import SETTINGS_FORMAT, PackSettings

SHARED = ("daily_limit_usd", "max_in_flight", "rates")  # what the database holds; the rest stays on each machine
RATE_PREFIX = "rates."


def load(journal, on_this_machine: PackSettings) -> PackSettings:
    """`on_this_machine` (its settings.json) with the shared values of `journal`'s database in place of its own."""
    try:
        rows = journal._read("SELECT name, value FROM settings", ())
    except JournalError as exc:
        return replace(on_this_machine, limit_unknown=f"{exc} The daily limit is kept there.",
                       limit_fix=journal.REPAIR[0].lower() + journal.REPAIR[1:])
    raw, rates = {"format": SETTINGS_FORMAT}, {}
    for row in rows:
        try:
            value = json.loads(row["value"])
        except ValueError:
            value = row["value"]  # not JSON: its check names it as the bad value it is
        name = row["name"]
        if name.startswith(RATE_PREFIX):
            rates[name[len(RATE_PREFIX):]] = value
        elif name in SHARED:
            raw[name] = value
    if rates:
        raw["rates"] = rates
    shared, problems, _ = local._interpret(raw)
    if problems:
        local._log_once(f"CometAPI Omni: in the shared settings of {journal.path}, " + "; ".join(problems) +
                        f". Each of these uses its default (every other value is kept); save it again in "
                        f"{local.SPENDING}.")
    unknown = (f"The daily limit in the shared settings of {journal.path} cannot be read: {shared.limit_unknown}."
               if shared.limit_unknown else "")
    return replace(on_this_machine, daily_limit_usd=shared.daily_limit_usd, rates=shared.rates,
                   max_in_flight=shared.max_in_flight, limit_unknown=unknown,
                   limit_fix=f"set the daily limit in {local.SPENDING}" if unknown else "")


def save(journal, store_dir: Path, changes: dict) -> PackSettings:
    """Apply `changes`: the shared values to the database (one transaction), the rest to this machine's file.
    SettingsError (nothing saved) names the first bad value; JournalError when the database cannot take it
    (nothing saved there, nor here)."""
    new = local.validated(changes)
    shared = {name: value for name, value in new.items() if name in SHARED}
    mine = {name: value for name, value in new.items() if name not in SHARED}
    if shared:
        rows = [(f"{RATE_PREFIX}{rate}", json.dumps(value)) for rate, value in shared.pop("rates", {}).items()]
        rows += [(name, json.dumps(value)) for name, value in shared.items()]
        write(journal, rows)
    if mine:
        local.save_settings(store_dir, mine)
    return load(journal, local.load_settings(store_dir))


def write(journal, rows: list, *, overwrite: bool = True) -> list:
    """(name, JSON value) rows, upserted in one transaction (or, not `overwrite`, only where none is);
    returns the names written."""
    now = time.time()
    written = []
    on_conflict = ("DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, machine = EXCLUDED.machine"
                   if overwrite else "DO NOTHING")
    with journal.decide() as tx:  # the ledger's lock: a change of the limit never lands inside a decision
        for name, value in rows:
            if tx._db.execute(f"INSERT INTO settings (name, value, updated_at, machine) VALUES (?,?,?,?) ON CONFLICT"
                              f" (name) {on_conflict}", (name, value, now, journal.machine)).rowcount:
                written.append(name)
    return written
