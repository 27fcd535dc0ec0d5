"""The shared journal on a real PostgreSQL (a throwaway one: tests/pg_fixtures.py), in one process.

The same steps give the same rows on both engines; what only the shared one has (the machine
columns, settings in the database, locks of other machines, NOTIFY, the schema version, notes
kept while the database is away) is tested here; several processes in tests/test_studio.py.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fake_cometapi.server import FakeCometAPI
from kling_omni import journal as J
from kling_omni import settings as local_settings
from kling_omni import shared_settings, store
from kling_omni.client import OmniClient
from kling_omni.database import SCHEMA, describe, secrets_of
from kling_omni.errors import DatabaseUnavailable, JournalError, SettingsUnreadable
from kling_omni.journal import Journal
from kling_omni.ledger import recent_totals, spent_today
from kling_omni.pg_journal import PgJournal
from kling_omni.request import OmniRequest
from kling_omni.settings import DEFAULTS, PackSettings
from kling_omni.submission import Intent, submit_all

REQUEST = OmniRequest(prompt="a fox runs through snow", mode="pro", duration=5)


def shared(url, machine="machine-a") -> PgJournal:
    return store.open_journal(Path("."), url=url) if machine == store.machine_name() else PgJournal(url, machine=machine)


def script(journal) -> list:
    """One of every step, as a run makes them; what the journal then holds, machine columns aside."""
    owners = journal.owners()
    run = owners.start_run()
    with journal.decide() as tx:
        tx.add_waiting("f1", 1, "comfy-f1-1", owner=run, prompt="p1", base_url="h", key_id="k", mode="pro", seconds=5,
                       model="kling-v3-omni", sound=True, shots=3)
        tx.add_waiting("f2", 1, "comfy-f2-1", owner=run, prompt="p2", base_url="h", key_id="k", mode="std", seconds=10)
        assert tx.mark_sending("f1", 1, run) and not tx.mark_sending("f1", 1, run)
        assert [j.fingerprint for j in tx.in_flight("k", 0)] == ["f1"]
        assert tx.latest("f1").state == J.SENDING
    assert journal.settle("f1", 1, "queued", task_id="101")
    journal.give_up(run, ["f2"], "stopped")
    journal.hand_back(run)
    owners.end_run(run)
    journal.update_task("101", state="processing")
    journal.mark_missing("101")
    journal.update_task("101", state="succeeded", video_url="https://x/v.mp4", video_path="/nowhere/kling_101.mp4",
                        unit_deduction="0.7", seconds=12.0)
    journal.adopt("202", base_url="h")
    journal.adopt("202", base_url="h")  # once
    journal.update_task("202", state="failed", message="moderation")
    journal.learn_echo("h", True)
    assert journal.echoes_external_id("h") and not journal.echoes_external_id("other")
    assert journal.failures_for_node("") == 2  # f2 given up, 202 failed
    assert [j.task_id for j in journal.uncollected(0)] == []
    rows = [{k: v for k, v in j.__dict__.items() if k not in ("created_at", "updated_at", "machine", "video_machine",
                                                               "owner")} for j in journal.jobs()]
    billing = sorted((j.state, j.mode, j.seconds, n) for j, n in journal.billing(0))
    return [rows, billing, journal.count(), journal.by_task("101").state]


def test_the_same_steps_give_the_same_rows_on_both_engines(tmp_path, database_url):
    on_sqlite = script(Journal(tmp_path / "journal.sqlite3"))
    on_postgres = script(shared(database_url))
    assert on_sqlite == on_postgres
    row = shared(database_url).by_task("101")
    assert row.machine == "machine-a" and row.video_machine == "machine-a"


def test_a_late_note_never_undoes_a_task_s_end(database_url):
    journal = shared(database_url)
    journal.adopt("7")
    journal.update_task("7", state="succeeded")
    journal.update_task("7", state="processing")  # a note written late, after another machine's
    assert journal.by_task("7").state == "succeeded"


# --- the URL, its password, the driver -------------------------------------------------------------


def test_the_url_is_said_without_its_password():
    url = "postgresql://studio:p%40ss%3Aword@db.example:6543/kling?sslmode=require"
    assert describe(url) == "postgresql://studio@db.example:6543/kling"
    assert {"p%40ss%3Aword", "p@ss:word"} <= set(secrets_of(url))
    assert describe("postgresql://u:pw@h:notaport/db") == "the database of COMETAPI_OMNI_DATABASE_URL (not a valid URL)"


def test_an_unreachable_database_is_named_without_its_password(postgres, caplog):
    url = f"postgresql://kling:{postgres.password}@127.0.0.1:1/nothing_here"
    journal = PgJournal(url, machine="m")
    with caplog.at_level(logging.INFO):
        with pytest.raises(DatabaseUnavailable) as refused:
            journal.latest("x")
        with pytest.raises(JournalError) as decision:
            with journal.decide():
                pass
    for text in (str(refused.value), str(decision.value), caplog.text):
        assert postgres.password not in text
    assert "postgresql://kling@127.0.0.1:1/nothing_here" in str(refused.value)
    assert "Nothing was sent to CometAPI" in str(decision.value)


def test_a_wrong_password_is_refused_without_being_shown(postgres, database_url):
    wrong = database_url.replace(postgres.password, "Wr0ng-" + postgres.password[::-1])
    with pytest.raises(DatabaseUnavailable) as refused:
        PgJournal(wrong, machine="m").latest("x")
    assert "password authentication failed" in str(refused.value)
    assert postgres.password not in str(refused.value) and postgres.password[::-1] not in str(refused.value)


def test_without_the_driver_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    journal = PgJournal("postgresql://u:secret-pw@db/kling", machine="m")
    with pytest.raises(DatabaseUnavailable) as missing:
        journal.latest("x")
    assert 'pip install "psycopg[binary]"' in str(missing.value) and "secret-pw" not in str(missing.value)


def test_a_url_that_is_not_one_is_refused_not_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("COMETAPI_OMNI_DATABASE_URL", "mysql://u:secret-pw@db/kling")
    journal = store.open_journal(tmp_path)
    with pytest.raises(DatabaseUnavailable) as refused:
        journal.latest("x")
    assert "postgresql://" in str(refused.value) and "secret-pw" not in str(refused.value)
    assert not (tmp_path / "journal.sqlite3").exists()  # never a journal of its own instead: the limit is shared


# --- the schema --------------------------------------------------------------------------------


def test_a_newer_schema_is_refused_and_never_written(postgres, database_url):
    shared(database_url).latest("x")  # made at version 1
    postgres.sql(f"UPDATE {SCHEMA}.schema_version SET version = 99", database=database_url.rsplit("/", 1)[1])
    newer = PgJournal(database_url, machine="m2")
    for step in (lambda: newer.latest("x"), lambda: newer.begin("f", 1, "e", prompt="p", base_url="h")):
        with pytest.raises(JournalError) as refused:
            step()
        assert "schema version 99" in str(refused.value) and "Update the pack" in str(refused.value)
    newer.adopt("5")  # a note: not kept for later either
    assert newer._pending == collections_empty()
    count = postgres.sql(f"SELECT COUNT(*) FROM {SCHEMA}.jobs", database=database_url.rsplit("/", 1)[1])
    assert count == [(0,)]


def test_a_schema_that_cannot_be_read_is_the_database_unavailable_not_a_driver_error(postgres, database_url):
    """Reading the schema's version fails (here a user without rights on it; the same path as a server that
    restarts under a new connection): a run cannot start, told as the pack's DatabaseUnavailable, which
    Submit reports with 'nothing was sent', never the driver's own error."""
    name = database_url.rsplit("/", 1)[1]
    shared(database_url).latest("x")  # the schema made
    postgres.sql(f"CREATE ROLE reader_{name} LOGIN PASSWORD 'pw-reader-{name}'", database=name)
    outsider = PgJournal(database_url.replace(f"kling:{postgres.password}", f"reader_{name}:pw-reader-{name}"),
                         machine="m2")
    with pytest.raises(DatabaseUnavailable) as refused:
        outsider.owners().start_run()  # its lock's own connection
    assert "cannot be read (permission denied for schema cometapi_omni)" in str(refused.value)
    with FakeCometAPI(key="test-key-123") as fake:
        with pytest.raises(JournalError) as stopped:
            submit_all([Intent(REQUEST, 1)], outsider, lambda: OmniClient(fake.key, fake.base_url),
                       settings=PackSettings(daily_limit_usd=0))
        assert fake.created_count == 0
    assert "permission denied" in str(stopped.value) and "Nothing was sent to CometAPI" in str(stopped.value)
    assert f"pw-reader-{name}" not in str(stopped.value)
    outsider.close()


def collections_empty():
    import collections
    return collections.deque()


def test_machines_that_start_together_make_the_schema_once(database_url):
    import threading
    errors = []

    def first_use(n):
        try:
            PgJournal(database_url, machine=f"m{n}").count()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


# --- settings that guard money ------------------------------------------------------------------


def test_money_settings_are_the_account_s_and_the_rest_stays_on_each_machine(tmp_path, database_url):
    here, there = tmp_path / "a", tmp_path / "b"
    saved = store.save_settings(here, {"daily_limit_usd": 2.5, "max_in_flight": 3, "rates": {"pro": 0.2},
                                       "background_collect": False})
    assert (saved.daily_limit_usd, saved.max_in_flight, saved.rates.pro, saved.background_collect) == (2.5, 3, 0.2, False)
    other = store.load_settings(there)
    assert (other.daily_limit_usd, other.max_in_flight, other.rates.pro, other.background_collect) == (2.5, 3, 0.2, True)
    assert json.loads((here / "settings.json").read_text()) == {"background_collect": False, "format": 2}
    store.save_settings(there, {"rates": {"std": 0.1}})  # one rate: the other stays
    assert (store.load_settings(here).rates.pro, store.load_settings(here).rates.std) == (0.2, 0.1)


def home_with(tmp_path, name, **values):
    """A machine's own settings.json, as the pack writes it."""
    home = tmp_path / name
    home.mkdir()
    local_settings.save_settings(home, values)
    return home


def shared_rows(url):
    return {row["name"]: (json.loads(row["value"]), row["machine"])
            for row in PgJournal(url, machine="reader")._read("SELECT name, value, machine FROM settings", ())}


def test_switching_to_the_database_never_raises_a_machine_s_own_limit_silently(tmp_path, database_url):
    """A machine capped at $2 is pointed at a fresh database: the account starts from its settings, the limit and
    what its file sets (a rate, the tasks in flight); a rate it never set is not pinned at today's default."""
    home = home_with(tmp_path, "home", daily_limit_usd=2, max_in_flight=3, rates={"pro": 0.3})
    in_force = store.load_settings(home)
    assert (in_force.daily_limit_usd, in_force.max_in_flight, in_force.rates.pro) == (2, 3, 0.3)
    assert shared_rows(database_url) == {"daily_limit_usd": (2.0, "machine-a"), "max_in_flight": (3, "machine-a"),
                                         "rates.pro": (0.3, "machine-a")}
    assert store.load_settings(tmp_path / "another machine").daily_limit_usd == 2  # the account's now


def test_a_machine_without_a_limit_does_not_seed_an_unlimited_studio(tmp_path, database_url, caplog):
    home = home_with(tmp_path, "home", daily_limit_usd=0)  # "no limit", chosen on this machine
    assert store.load_settings(home).daily_limit_usd == DEFAULTS.daily_limit_usd
    told = [r.getMessage() for r in caplog.records if "is not used for money" in r.getMessage()]
    assert len(told) == 1 and "none (0)" in told[0] and "$10.00 a day for every machine" in told[0], told


def test_a_machine_whose_own_limit_is_not_the_shared_one_is_told_once(tmp_path, database_url, caplog):
    store.save_settings(tmp_path / "admin", {"daily_limit_usd": 5})
    home = home_with(tmp_path, "home", daily_limit_usd=2)
    for _ in range(3):
        assert store.load_settings(home).daily_limit_usd == 5
    told = [r.getMessage() for r in caplog.records if "is not used for money" in r.getMessage()]
    assert len(told) == 1, told
    for part in ("$2.00 for this machine", "$5.00 a day for every machine", str(home / "settings.json"),
                 "Settings › CometAPI › Spending: it applies to every machine"):
        assert part in told[0], told[0]
    caplog.clear()
    store.load_settings(tmp_path / "no settings of its own")  # nothing of its own to be surprised about
    assert not [r for r in caplog.records if "is not used for money" in r.getMessage()]


def test_two_machines_that_find_no_limit_at_once_seed_it_once(tmp_path, database_url):
    a, b = PgJournal(database_url, machine="machine-a"), PgJournal(database_url, machine="machine-b")
    homes = {a: home_with(tmp_path, "a", daily_limit_usd=2), b: home_with(tmp_path, "b", daily_limit_usd=5,
                                                                             rates={"std": 0.1})}
    # Both read the settings and found no limit; then each seeds: the second finds the first's and writes nothing.
    assert shared_settings.seed(a, homes[a], local_settings.load_settings(homes[a])) == ["daily_limit_usd"]
    assert shared_settings.seed(b, homes[b], local_settings.load_settings(homes[b])) == []
    assert shared_rows(database_url) == {"daily_limit_usd": (2.0, "machine-a")}
    for journal in (a, b):
        assert shared_settings.load(journal, local_settings.load_settings(homes[journal]), homes[journal]).\
            daily_limit_usd == 2
        journal.close()


def test_two_machines_connecting_at_once_to_a_fresh_database_agree_on_one_limit(tmp_path, database_url):
    journals = [PgJournal(database_url, machine=f"machine-{n}") for n in range(4)]
    homes = [home_with(tmp_path, str(n), daily_limit_usd=n + 1) for n in range(4)]
    start = threading.Barrier(len(journals))

    def connect(n):
        start.wait()
        return shared_settings.load(journals[n], local_settings.load_settings(homes[n]), homes[n]).daily_limit_usd

    with concurrent.futures.ThreadPoolExecutor(len(journals)) as pool:
        limits = list(pool.map(connect, range(len(journals))))
    (limit, seeder), = shared_rows(database_url).values()
    assert limits == [limit] * len(journals) and seeder == f"machine-{int(limit) - 1}"
    for journal in journals:
        journal.close()


def test_a_limit_known_neither_in_the_database_nor_here_leaves_submit_refusing(tmp_path, database_url):
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text('{"daily_limit_usd": 2')  # cut short
    settings = store.load_settings(home)
    with pytest.raises(SettingsUnreadable) as refused:
        settings.require_daily_limit("CometOmniSubmit")
    assert str(home / "settings.json") in str(refused.value) and "Settings › CometAPI › Spending" in str(refused.value)
    assert shared_rows(database_url) == {}  # nothing seeded from a guess
    assert store.save_settings(home, {"daily_limit_usd": 2}).limit_unknown == ""  # set in Settings: known again


def test_a_bad_limit_in_the_database_fails_closed(database_url, postgres):
    shared(database_url).latest("x")
    postgres.sql(f"INSERT INTO {SCHEMA}.settings VALUES ('daily_limit_usd', '\"lots\"', 0, 'hand')",
                 database=database_url.rsplit("/", 1)[1])
    settings = store.load_settings(None)
    assert settings.daily_limit_usd == DEFAULTS.daily_limit_usd and "lots" in settings.limit_unknown
    with pytest.raises(SettingsUnreadable):
        settings.require_daily_limit("CometOmniSubmit")


def test_an_unreachable_database_leaves_the_limit_unknown(postgres, monkeypatch, tmp_path):
    monkeypatch.setenv("COMETAPI_OMNI_DATABASE_URL", f"postgresql://kling:{postgres.password}@127.0.0.1:1/x")
    settings = store.load_settings(tmp_path)
    with pytest.raises(SettingsUnreadable) as refused:
        settings.require_daily_limit("CometOmniSubmit #4")
    text = str(refused.value)
    assert "nothing was sent" in text and "postgresql://kling@127.0.0.1:1/x" in text
    assert "make sure the database is running" in text and postgres.password not in text
    store.forget_journals()


# --- the daily limit's day ---------------------------------------------------------------------------

SPENT_AT = 1767227400.0  # 2026-01-01 00:30 UTC = 2025-12-31 16:30 in Los Angeles
LA_AFTERNOON = SPENT_AT - 2 * 3600  # 14:30 in Los Angeles, 22:30 UTC: the day before, in UTC


@contextlib.contextmanager
def machine_clock(zone):
    """This process's local time zone, as a machine set to `zone` has it."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = before
        time.tzset()


def database_zone(postgres, url, zone):
    """The studio sets the database's time zone; sessions opened from then on use it."""
    postgres.sql(f"ALTER DATABASE {urlsplit(url).path.lstrip('/')} SET timezone TO '{zone}'")


def spent_in_la_afternoon(journal, monkeypatch):
    monkeypatch.setattr(time, "time", lambda: LA_AFTERNOON)  # the row's created_at
    with journal.decide() as tx:
        tx.add_waiting("f", 1, "x", owner="run", prompt="p", base_url="h", key_id="k", mode="pro", seconds=5)
    monkeypatch.undo()


def test_the_shared_daily_limit_is_one_day_for_every_machine(postgres, database_url, monkeypatch):
    """A machine in a UTC container and a workstation in Los Angeles on one database count the same 'today':
    the database's day (here Los Angeles'), in the limit's decision, the sidebar's totals and Settings' spend."""
    database_zone(postgres, database_url, "America/Los_Angeles")
    journal = PgJournal(database_url, machine="machine-b")
    spent_in_la_afternoon(journal, monkeypatch)
    seen = {}
    for zone in ("America/Los_Angeles", "UTC", "Asia/Tokyo"):
        with machine_clock(zone):
            with journal.decide() as tx:
                decided = spent_today(tx, DEFAULTS.rates, now=SPENT_AT)
            seen[zone] = (decided, spent_today(journal, DEFAULTS.rates, now=SPENT_AT),
                          recent_totals(journal, DEFAULTS.rates, SPENT_AT).today.usd)
    assert seen["America/Los_Angeles"][0] > 0
    assert len(set(seen.values())) == 1 and len(set(seen["UTC"])) == 1, seen
    journal.close()


def test_the_database_s_time_zone_decides_when_the_day_begins(postgres, database_url, monkeypatch):
    database_zone(postgres, database_url, "UTC")
    utc = PgJournal(database_url, machine="machine-b")
    spent_in_la_afternoon(utc, monkeypatch)
    with machine_clock("America/Los_Angeles"):
        assert spent_today(utc, DEFAULTS.rates, now=SPENT_AT) == 0  # 22:30 UTC was yesterday in UTC
        database_zone(postgres, database_url, "America/Los_Angeles")
        la = PgJournal(database_url, machine="machine-c")  # new sessions: the new setting
        assert spent_today(la, DEFAULTS.rates, now=SPENT_AT) > 0
    utc.close()
    la.close()


def test_a_machine_whose_clock_is_in_another_zone_is_told_once_which_day_the_limit_follows(
        postgres, database_url, caplog):
    database_zone(postgres, database_url, "UTC")
    journal = PgJournal(database_url, machine="machine-b")
    with machine_clock("America/Los_Angeles"):
        for _ in range(3):
            spent_today(journal, DEFAULTS.rates, now=SPENT_AT)
    told = [r.getMessage() for r in caplog.records if "time zone" in r.getMessage()]
    assert len(told) == 1, told
    for part in ("UTC-08:00", "UTC (UTC+00:00)", "today began at 16:00 here", "Tasks sidebar",
                 f"ALTER DATABASE {urlsplit(database_url).path.lstrip('/')} SET timezone TO"):
        assert part in told[0], told[0]
    caplog.clear()
    with machine_clock("Europe/London"):  # UTC+00:00 in January: the same day, nothing to say
        spent_today(journal, DEFAULTS.rates, now=SPENT_AT)
    assert not [r for r in caplog.records if "time zone" in r.getMessage()]
    journal.close()


# --- locks and liveness across machines ------------------------------------------------------------


def test_a_collection_on_one_machine_is_seen_and_excluded_on_another(database_url):
    a, b = shared(database_url, "machine-a"), PgJournal(database_url, machine="machine-b")
    held = a.task_lock("55")
    assert held.try_acquire()
    assert b.is_collecting("55") and b.collecting(["55", "56"]) == {"55"}
    assert not b.task_lock("55").try_acquire()
    held.release()
    assert not b.is_collecting("55")
    b.close()


def unsaved(task_id, machine, key_id="kid-1", base_url="https://api.example"):
    return J.Job(**{**J._BLANK, "state": "succeeded", "unit_deduction": "", "task_id": task_id, "machine": machine,
                    "key_id": key_id, "base_url": base_url})


def test_tasks_of_a_machine_whose_collector_runs_are_left_to_it(database_url):
    a, b = shared(database_url, "machine-a"), PgJournal(database_url, machine="machine-b")
    rows = [unsaved(str(n), m) for n, m in enumerate(["machine-a", "machine-b", "", "machine-c"])]
    assert [j.machine for j in b.collectable_here(rows)] == ["machine-a", "machine-b", "", "machine-c"]
    a.announce_collector("kid-1", "https://api.example")
    assert [j.machine for j in b.collectable_here(rows)] == ["machine-b", "", "machine-c"]
    a.announce_collector("")
    assert len(b.collectable_here(rows)) == 4
    b.close()


def test_a_machine_s_tasks_of_another_key_than_its_collector_s_are_collected_elsewhere(database_url):
    """Machine A's key changed: its collector skips the tasks made with the old one, so B, which has that key,
    collects them (and still leaves A the tasks of A's current key)."""
    a, b = shared(database_url, "machine-a"), PgJournal(database_url, machine="machine-b")
    old, new = unsaved("1", "machine-a", key_id="kid-old"), unsaved("2", "machine-a", key_id="kid-new")
    a.announce_collector("kid-new", "https://api.example")
    assert [j.task_id for j in b.collectable_here([old, new])] == ["1"]
    b.close()


def test_a_row_without_a_key_id_is_left_to_a_collector_of_its_host(database_url):
    a, b = shared(database_url, "machine-a"), PgJournal(database_url, machine="machine-b")
    here, elsewhere = unsaved("1", "machine-a", key_id=""), unsaved("2", "machine-a", key_id="", base_url="https://b")
    a.announce_collector("kid-1", "https://api.example/")  # a trailing slash is the same host
    assert [j.task_id for j in b.collectable_here([here, elsewhere])] == ["2"]
    b.close()


def test_a_change_on_one_machine_is_heard_on_another_within_a_second(database_url):
    a, b = shared(database_url, "machine-a"), PgJournal(database_url, machine="machine-b")
    heard, own = [], []
    b.subscribe(heard.append)
    a.subscribe(own.append)
    time.sleep(0.3)  # the listeners are up
    a.adopt("88")
    started = time.monotonic()
    while "88" not in heard and time.monotonic() - started < 3:
        time.sleep(0.02)
    assert "88" in heard and time.monotonic() - started < 1.0
    assert own.count("88") == 1  # a machine is not told its own change twice
    b.close()


# --- the database goes away -------------------------------------------------------------------------


def test_notes_made_while_the_database_is_away_are_written_when_it_returns(postgres, database_url):
    journal = shared(database_url)
    journal.adopt("31")
    postgres.stop()
    try:
        journal.update_task("31", state="succeeded", video_url="https://x/v.mp4")
        journal.update_task("31", video_path="/out/kling_31.mp4")
        assert len(journal._pending) == 2
    finally:
        postgres.start()
    time.sleep(2.1)  # past DOWN_SECONDS: notes try again
    row = journal.by_task("31")
    assert (row.state, row.video_path, row.video_machine) == ("succeeded", "/out/kling_31.mp4", "machine-a")
    assert not journal._pending


# --- the migration ---------------------------------------------------------------------------------


def test_db_copy_keeps_every_task_and_its_cost_and_is_idempotent(tmp_path, database_url):
    from kling_omni.migrate import copy_journal
    home = tmp_path / "home"
    source = Journal(home / "journal.sqlite3")
    with FakeCometAPI(key="test-key-123") as fake:
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        tasks = submit_all([Intent(REQUEST, seed) for seed in range(3)], source, make,
                           settings=PackSettings(daily_limit_usd=0))
    source.update_task(tasks[0].task_id, state="succeeded", video_path=str(tmp_path / "v.mp4"), unit_deduction="0.8")
    source.adopt("999")
    (home / "settings.json").write_text(json.dumps({"format": 2, "daily_limit_usd": 7, "rates": {"pro": 0.3}}))
    journal = shared(database_url)
    first = copy_journal(home / "journal.sqlite3", journal, machine="old-box")
    assert (first.added, first.updated, first.unchanged) == (4, 0, 0)
    assert set(first.settings) == {"daily_limit_usd", "rates.pro"}
    again = copy_journal(home / "journal.sqlite3", journal, machine="old-box")
    assert (again.added, again.updated, again.unchanged, again.settings) == (0, 0, 4, ())
    rates = store.load_settings(home).rates
    assert recent_totals(journal, rates).today == recent_totals(source, rates).today
    assert {j.task_id for j in journal.jobs()} == {j.task_id for j in source.jobs()}
    saved = journal.by_task(tasks[0].task_id)
    assert (saved.machine, saved.video_machine, saved.unit_deduction, saved.owner) == ("old-box", "old-box", "0.8", "")
    # Used on after the copy: a second copy brings what changed, and the shared settings stay as they are.
    source.update_task(tasks[1].task_id, state="failed", message="moderation")
    store.save_settings(home, {"daily_limit_usd": 9})
    third = copy_journal(home / "journal.sqlite3", journal, machine="old-box")
    assert (third.added, third.updated, third.settings) == (0, 1, ())
    assert journal.by_task(tasks[1].task_id).state == "failed" and store.load_settings(home).daily_limit_usd == 9


def test_db_copy_of_two_machines_keeps_both_paid_tasks_of_one_intent(tmp_path, database_url):
    """Two machines on their own journals ran one intent on a host that does not refuse a repeated external id:
    two paid tasks under one (fingerprint, attempt). Both stay in the shared ledger, the copy says so, and
    copying again adds nothing."""
    from kling_omni.migrate import copy_journal
    made = []
    with FakeCometAPI(key="test-key-123", drops_external_id=True) as fake:
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        for name in ("a", "b"):
            source = Journal(tmp_path / name / "journal.sqlite3")
            made.append(submit_all([Intent(REQUEST, 1)], source, make, settings=PackSettings(daily_limit_usd=0))[0])
        assert fake.created_count == 2 and made[0].task_id != made[1].task_id
    Journal(tmp_path / "b" / "journal.sqlite3").update_task(made[1].task_id, state="succeeded",
                                                            video_path=str(tmp_path / "b.mp4"), unit_deduction="0.6")
    journal = shared(database_url)
    first = copy_journal(tmp_path / "a" / "journal.sqlite3", journal, machine="a")
    second = copy_journal(tmp_path / "b" / "journal.sqlite3", journal, machine="b")
    assert (first.twice, second.twice) == ([], [(made[0].task_id, made[1].task_id)])
    text = second.text(tmp_path / "b" / "journal.sqlite3", journal.path)
    assert f"task {made[1].task_id} beside task {made[0].task_id}" in text and "both tasks were paid" in text
    rows = {j.task_id: j for j in journal.jobs()}
    assert set(rows) == {made[0].task_id, made[1].task_id}
    intent, twin = rows[made[0].task_id], rows[made[1].task_id]
    assert (intent.fingerprint, intent.machine) == (made[0].fingerprint, "a")
    assert (twin.fingerprint, twin.external_task_id) == (f"collected:{made[1].task_id}", None)
    assert (twin.state, twin.mode, twin.seconds, twin.unit_deduction, twin.video_machine) == (
        "succeeded", "pro", 5.0, "0.6", "b")  # what it bills and where its video is
    assert recent_totals(journal, DEFAULTS.rates).today.tasks == 2
    for name in ("a", "b"):
        again = copy_journal(tmp_path / name / "journal.sqlite3", journal, machine=name)
        assert (again.added, again.updated, again.twice) == (0, 0, [])
    assert journal.count() == 2


@pytest.mark.parametrize("order", ["collected first", "intent first"])
def test_db_copy_of_a_task_collected_on_one_machine_and_made_on_another_is_one_row(tmp_path, database_url, order):
    """Machine b made the task; machine a collected it by id (a Poll given its id). In either order of the copies,
    the task is one row: the intent's, with the video a's disk holds."""
    import asyncio
    from kling_omni.collect import collect_video
    from kling_omni.migrate import copy_journal
    with FakeCometAPI(key="test-key-123") as fake:
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        maker, collector = Journal(tmp_path / "b" / "journal.sqlite3"), Journal(tmp_path / "a" / "journal.sqlite3")
        (task,) = submit_all([Intent(REQUEST, 1)], maker, make, settings=PackSettings(daily_limit_usd=0))
        saved = asyncio.run(collect_video(task.task_id, collector, make, tmp_path / "a" / "out", interval=0.02))
    assert collector.by_task(task.task_id).fingerprint == f"collected:{task.task_id}"
    journal = shared(database_url)
    copies = [("a", collector), ("b", maker)] if order == "collected first" else [("b", maker), ("a", collector)]
    for name, source in copies:
        copy_journal(source.path, journal, machine=name)
    (row,) = journal.jobs()
    assert (row.fingerprint, row.task_id, row.mode, row.machine) == (task.fingerprint, task.task_id, "pro", "b")
    assert (row.state, row.video_path, row.video_machine) == ("succeeded", str(saved.path), "a")
    for name, source in copies:  # and again: nothing more
        assert copy_journal(source.path, journal, machine=name).added == 0
    assert journal.count() == 1


def test_db_copy_from_the_command_line(tmp_path, database_url, postgres):
    import os
    import subprocess
    Journal(tmp_path / "old" / "journal.sqlite3").adopt("4242")
    env = {**os.environ, "COMETAPI_OMNI_HOME": str(tmp_path / "home")}
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "kling_omni", "db", "copy", "--from",
                           str(tmp_path / "old" / "journal.sqlite3")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 added" in done.stdout and postgres.password not in done.stdout + done.stderr
    listing = subprocess.run([sys.executable, "-m", "kling_omni", "tasks"], cwd=root, env=env, capture_output=True,
                             text=True, timeout=60)
    assert "4242" in listing.stdout and "MACHINE" in listing.stdout
    env["COMETAPI_OMNI_DATABASE_URL"] = f"postgresql://kling:{postgres.password}@127.0.0.1:1/x"
    down = subprocess.run([sys.executable, "-m", "kling_omni", "tasks"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)
    assert down.returncode == 1 and postgres.password not in down.stderr and "cannot be" in down.stderr
    del env["COMETAPI_OMNI_DATABASE_URL"]
    plain = subprocess.run([sys.executable, "-m", "kling_omni", "db", "copy", "--from", "x"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode == 1 and "COMETAPI_OMNI_DATABASE_URL" in plain.stderr


# --- the routes, with the database there and away ----------------------------------------------------


def test_routes_list_every_machine_s_tasks_and_say_a_database_away_without_its_password(tmp_path, database_url,
                                                                                            postgres):
    from tests.test_task_routes import Pack
    a = PgJournal(database_url, machine="render-01")
    a.adopt("77")
    a.update_task("77", state="succeeded", video_path="/render-01/output/kling_77.mp4")
    a.close()
    pack = Pack(tmp_path)
    pack.journal = shared(database_url)
    status, page = pack.call("GET", "/tasks")
    assert status == 200 and [(r["task_id"], r["machine"], r["saved_on"]) for r in page["tasks"]] == \
        [("77", "render-01", "render-01")]
    postgres.stop()
    try:
        answers = [pack.call("GET", "/tasks"), pack.call("GET", "/tasks/77"), pack.call("GET", "/settings"),
                   pack.call("POST", "/settings", json={"daily_limit_usd": 3}), pack.call("POST", "/tasks/77/collect", json={})]
    finally:
        postgres.start()
    for status, body in answers:
        assert status == 503, body
        assert "postgresql://kling@127.0.0.1" in body["error"] and postgres.password not in json.dumps(body)


def test_submit_with_the_database_away_sends_nothing_and_says_which_database(env, fake_server, database_url,
                                                                             postgres, caplog):
    from cometapi_kling_omni.nodes import NODE_CLASS_MAPPINGS as nodes
    from tests.comfy_exec import run

    request = run(nodes["CometOmniPrompt"], prompt=["a fox"], mode=["pro"], aspect_ratio=["16:9"], duration=[5],
                  model=["kling-video-o1"])[0]
    postgres.stop()
    try:
        with pytest.raises(Exception) as refused:
            run(nodes["CometOmniSubmit"], request=request, seed=[1], variations=[2], unique_id=["4"])
    finally:
        postgres.start()
    text = str(refused.value)
    assert "nothing was sent" in text.lower() and "postgresql://kling@127.0.0.1" in text
    assert postgres.password not in text + caplog.text
    assert fake_server.requests == []
    (tasks, ids) = run(nodes["CometOmniSubmit"], request=request, seed=[1], variations=[2], unique_id=["4"])
    assert len(set(ids)) == 2 and fake_server.created_count == 2  # back: queued again, made once


def _intent_of(journal, state, task_id=None, message=""):
    journal.begin("fp1", 1, "comfy-fp1-1", prompt="p", base_url="h", key_id="k", mode="pro", seconds=5)
    journal.settle("fp1", 1, state, task_id=task_id, message=message)


def test_db_copy_never_drops_a_paid_task_behind_a_newer_row_without_one(tmp_path, database_url):
    """Machine a made task T1 for an intent; later machine b's attempt of it was refused (no task). Copied b
    first, then a: the older row still brings its task, and the ledger counts it."""
    from kling_omni.ledger import recent_totals
    from kling_omni.migrate import copy_journal
    a, b = Journal(tmp_path / "a" / "journal.sqlite3"), Journal(tmp_path / "b" / "journal.sqlite3")
    _intent_of(a, "queued", task_id="T1")
    time.sleep(0.01)  # b's row is the newer one, by its clock
    _intent_of(b, "rejected", message="insufficient balance")
    journal = shared(database_url)
    copy_journal(b.path, journal, machine="b")
    copied = copy_journal(a.path, journal, machine="a")
    assert copied.updated == 1
    row = journal.by_task("T1")
    assert row is not None and row.state == "queued" and row.fingerprint == "fp1"
    assert recent_totals(journal, local_settings.DEFAULTS.rates).today.tasks == 1


def test_db_copy_of_an_older_row_of_the_same_task_brings_the_video_it_saved(tmp_path, database_url):
    """Both machines know task T1; a saved its video, b's row is newer but has none: a's video and charge come along."""
    from kling_omni.migrate import copy_journal
    a, b = Journal(tmp_path / "a" / "journal.sqlite3"), Journal(tmp_path / "b" / "journal.sqlite3")
    _intent_of(a, "queued", task_id="T1")
    a.update_task("T1", state="succeeded", video_url="https://x/v.mp4", video_path="/a/out/kling_T1.mp4",
                  unit_deduction="0.8")
    time.sleep(0.01)
    _intent_of(b, "processing", task_id="T1")
    journal = shared(database_url)
    copy_journal(b.path, journal, machine="b")
    copy_journal(a.path, journal, machine="a")
    row = journal.by_task("T1")
    assert (row.state, row.video_path, row.video_machine, row.unit_deduction) == (
        "succeeded", "/a/out/kling_T1.mp4", "a", "0.8")
    assert copy_journal(a.path, journal, machine="a").updated == 0  # again: nothing more to learn


def test_a_machine_whose_own_rate_is_not_the_shared_one_is_told_once(tmp_path, database_url, caplog):
    """The limit counts spend by the rates: a machine whose settings.json sets a higher rate than the shared
    one in force is told, as for the limit."""
    store.save_settings(tmp_path / "admin", {"daily_limit_usd": 5})  # the account seeded with the default rates
    home = home_with(tmp_path, "home", daily_limit_usd=5, rates={"pro": 0.3})
    for _ in range(2):
        assert store.load_settings(home).rates.pro == local_settings.DEFAULTS.rates.pro
    told = [r.getMessage() for r in caplog.records if "is not used for money" in r.getMessage()]
    assert len(told) == 1 and f"the pro rate 0.3 USD/s, shared: {local_settings.DEFAULTS.rates.pro}" in told[0], told
    assert "daily limit" not in told[0]  # the same limit: not said


def test_an_intent_left_waiting_yesterday_counts_against_today_s_limit_on_the_shared_journal(database_url,
                                                                                               monkeypatch):
    """As on SQLite (tests/test_money_guards.py): today is the database's day."""
    from kling_omni.errors import SpendLimitReached
    from kling_omni.ledger import spent_today
    from kling_omni.request import OmniRequest
    from kling_omni.submission import Intent, submit_all
    from tests.test_money_guards import _waiting_row_left_yesterday
    journal = shared(database_url)
    intent = Intent(OmniRequest(prompt="a fox runs through snow", mode="pro", duration=5), 1)
    _waiting_row_left_yesterday(journal, intent, monkeypatch)
    with FakeCometAPI(key="test-key-123") as fake:
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        with pytest.raises(SpendLimitReached):
            submit_all([intent], journal, make, settings=local_settings.PackSettings(daily_limit_usd=0.5),
                       interval=0.05)
        (task,) = submit_all([intent], journal, make, settings=local_settings.PackSettings(daily_limit_usd=1),
                             interval=0.05)
        assert task.task_id and fake.created_count == 1
    assert spent_today(journal, local_settings.DEFAULTS.rates) > 0.5


def test_a_settings_save_the_database_cannot_take_says_nothing_was_saved_not_sent(tmp_path, postgres, database_url):
    """The decision's refusal names what its caller left undone: a save of the limit is not a Submit."""
    home = home_with(tmp_path, "home", daily_limit_usd=2)
    store.load_settings(home)  # the account started from this machine's
    postgres.stop()
    try:
        with pytest.raises(JournalError) as refused:
            store.save_settings(home, {"daily_limit_usd": 7})
    finally:
        postgres.start()
    text = str(refused.value)
    assert "Nothing was saved" in text and "then try again" in text and "Nothing was sent" not in text, text
