"""The settings that guard money, kept in a shared journal's database: every machine reads the same.

With COMETAPI_OMNI_DATABASE_URL set, the rates, the daily limit and the tasks-in-flight limit are the
account's, not a machine's: read from the database's `settings` table on every use and saved there in
one transaction (a row per value, each rate its own: two machines saving different values at once
both keep theirs). Whether a machine collects in the background stays in its own settings.json: it
is that machine's choice, like its output folder.

Switching a machine to the database never lifts its own limit without a word. The first machine to
find no daily limit there seeds the account's money settings from its settings.json (its limit, and
the rates and tasks-in-flight limit the file sets), once, whichever machine comes first; its 0 (no
limit) seeds the default limit, never an unlimited studio. A machine whose settings.json sets
another limit than the shared one in force says so once in its log.

They fail closed as the file does (kling_omni.settings): each value is read and checked on its own,
a bad one costs only itself; a daily limit that cannot be read (a database that does not answer, a
value that is not one) leaves the limit unknown, and Submit refuses, naming the database and why,
without its password. The key is never here: it stays on each machine.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

from . import settings as local
from .database import DATABASE_ENV
from .errors import JournalError
from .pricing import money
from .settings import SETTINGS_FORMAT, PackSettings

SHARED = ("daily_limit_usd", "max_in_flight", "rates")  # what the database holds; the rest stays on each machine
RATE_PREFIX = "rates."
log = logging.getLogger("cometapi_omni")


def load(journal, on_this_machine: PackSettings, store_dir: Optional[Path] = None) -> PackSettings:
    """`on_this_machine` (its settings.json, in `store_dir`) with the shared values of `journal`'s database in
    place of its own; a database without a daily limit yet is seeded from them first (`seed`)."""
    try:
        rows = journal._read("SELECT name, value FROM settings", ())
        if store_dir is not None and not _has_limit(rows) and not on_this_machine.limit_unknown:
            seed(journal, store_dir, on_this_machine)
            rows = journal._read("SELECT name, value FROM settings", ())  # ours, or another machine's seeded first
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
    if not _has_limit(rows) and on_this_machine.limit_unknown:
        unknown = on_this_machine.limit_unknown  # known neither there nor here: the account's is not started from a guess
    if not unknown and store_dir is not None:
        _tell_money_differs(journal, Path(store_dir) / local.SETTINGS_FILE, on_this_machine, shared)
    return replace(on_this_machine, daily_limit_usd=shared.daily_limit_usd, rates=shared.rates,
                   max_in_flight=shared.max_in_flight, limit_unknown=unknown,
                   limit_fix=f"set the daily limit in {local.SPENDING}" if unknown else "")


def seed(journal, store_dir: Path, on_this_machine: PackSettings) -> list:
    """The database has no daily limit yet: this machine's money settings become the account's (its daily limit,
    the default one for its 0; the rates and the tasks-in-flight limit its settings.json sets). Once: the check
    and the writes are one decision, so of two machines seeding at once the second finds the first's and writes
    nothing. Returns the names written."""
    raw, _ = local._read(Path(store_dir) / local.SETTINGS_FILE)
    limit = on_this_machine.daily_limit_usd or local.DEFAULT_DAILY_LIMIT_USD  # never an unlimited studio
    values = {"daily_limit_usd": limit}
    if "max_in_flight" in raw:
        values["max_in_flight"] = on_this_machine.max_in_flight
    rates = raw.get("rates") if isinstance(raw.get("rates"), dict) else {}
    for name in local.RATE_NAMES:
        if name in rates:
            values[f"{RATE_PREFIX}{name}"] = getattr(on_this_machine.rates, name)
    written = write(journal, [(name, json.dumps(value)) for name, value in values.items()], overwrite=False,
                    unless_limit_set=True, undone="The account's settings were not started from this machine's")
    if not written:
        return []  # another machine's came first
    log.info("CometAPI Omni: the shared settings of %s had no daily limit yet: they start from this machine's (%s),"
             " for every machine on that database: a daily limit of %s%s. Change them in %s.", journal.path,
             journal.machine, _limit(limit), "" if on_this_machine.daily_limit_usd else
             " (this machine had no limit: the account starts with the default one; set 0 there for none)",
             local.SPENDING)
    return written


def _has_limit(rows) -> bool:
    return any(row["name"] == "daily_limit_usd" for row in rows)


def _tell_money_differs(journal, path: Path, on_this_machine: PackSettings, shared: PackSettings) -> None:
    """Once: this machine's settings.json sets money values of its own (a limit, a rate, the tasks in flight)
    that are not the ones in force. A rate matters as much as the limit: the limit counts spend by the rates."""
    raw, _ = local._read(path)
    if on_this_machine.limit_unknown:
        return  # a bad file is said by its own warning
    differ = []
    if "daily_limit_usd" in raw and on_this_machine.daily_limit_usd != shared.daily_limit_usd:
        differ.append(f"a daily limit of {_limit(on_this_machine.daily_limit_usd)} for this machine, but the shared "
                      f"one is {_limit(shared.daily_limit_usd)} a day for every machine")
    if "max_in_flight" in raw and on_this_machine.max_in_flight != shared.max_in_flight:
        differ.append(f"{on_this_machine.max_in_flight} tasks in flight, shared: {shared.max_in_flight}")
    own_rates = raw.get("rates") if isinstance(raw.get("rates"), dict) else {}
    for name in local.RATE_NAMES:
        mine, theirs = getattr(on_this_machine.rates, name), getattr(shared.rates, name)
        if name in own_rates and mine != theirs:
            differ.append(f"the {name} rate {mine} USD/s, shared: {theirs}")
    if differ:
        local._log_once(
            f"CometAPI Omni: {path} sets {'; '.join(differ)}. The shared settings of {journal.path} are in force on "
            f"every machine on that database ({path} is not used for money while {DATABASE_ENV} is set). Change them "
            f"in {local.SPENDING}: it applies to every machine.")


def _limit(usd: float) -> str:
    return money(usd) if usd > 0 else "none (0)"


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
    return load(journal, local.load_settings(store_dir), store_dir)


def write(journal, rows: list, *, overwrite: bool = True, unless_limit_set: bool = False,
          undone: str = "Nothing was saved") -> list:
    """(name, JSON value) rows, upserted in one transaction (or, not `overwrite`, only where none is; with
    `unless_limit_set`, none at all once the account has a daily limit); returns the names written."""
    now = time.time()
    written = []
    on_conflict = ("DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, machine = EXCLUDED.machine"
                   if overwrite else "DO NOTHING")
    # The ledger's lock: a change of the limit never lands inside a decision, and of two machines seeding
    # at once the second finds the first's limit.
    with journal.decide(undone=undone, again="try again") as tx:
        if unless_limit_set and tx._db.execute("SELECT 1 FROM settings WHERE name='daily_limit_usd'", ()).fetchone():
            return []
        for name, value in rows:
            if tx._db.execute(f"INSERT INTO settings (name, value, updated_at, machine) VALUES (?,?,?,?) ON CONFLICT"
                              f" (name) {on_conflict}", (name, value, now, journal.machine)).rowcount:
                written.append(name)
    return written
