"""The shared journal's database goes away at the worst moments of a Submit: a paid task is never made to look
unpaid, the error names it, and once the database is back the task is one row, paid once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fake_cometapi.server import FakeCometAPI
from kling_omni import store
from kling_omni.client import OmniClient
from kling_omni.errors import JournalError
from kling_omni.request import OmniRequest
from kling_omni.settings import PackSettings
from kling_omni.submission import Intent, submit_all

REQUEST = OmniRequest(prompt="a fox runs through snow", mode="pro", duration=5)
SETTINGS = PackSettings(daily_limit_usd=0)


class StopsDatabaseAtCreation:
    """A client whose creation answer (the `at`-th of its run) arrives while the shared database is away."""

    def __init__(self, client, postgres, at: int = 1):
        self._client, self._postgres, self._left = client, postgres, at

    def __getattr__(self, name):
        return getattr(self._client, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._client.close()

    def create_task(self, payload):
        state = self._client.create_task(payload)
        self._left -= 1
        if self._left == 0:
            self._postgres.stop()
        return state


def _submit_while_the_database_goes(fake, postgres, journal, intents, at=1):
    factory = lambda: StopsDatabaseAtCreation(OmniClient(fake.key, fake.base_url), postgres, at)  # noqa: E731
    try:
        with pytest.raises(JournalError) as failed:
            submit_all(intents, journal, factory, settings=SETTINGS, interval=0.05)
    finally:
        postgres.start()
    return str(failed.value)


def test_db_away_when_the_creation_answer_arrives_names_the_paid_task(database_url, postgres):
    journal = store.open_journal(Path("."), url=database_url)
    with FakeCometAPI(key="k-123456789") as fake:
        text = _submit_while_the_database_goes(fake, postgres, journal, [Intent(REQUEST, 1)])
        assert fake.created_count == 1
        (task_id,) = fake._tasks
    assert f"created Kling task {task_id}" in text and "billed" in text  # paid, and said so
    assert "cannot be written" in text  # what happened
    assert f"task_id input set to {task_id}" in text and "queue again" in text  # and how it is collected
    assert postgres.password not in text


def test_in_a_batch_the_task_made_as_the_db_went_away_is_listed_as_created(database_url, postgres):
    journal = store.open_journal(Path("."), url=database_url)
    with FakeCometAPI(key="k-123456789") as fake:
        text = _submit_while_the_database_goes(fake, postgres, journal, [Intent(REQUEST, seed) for seed in (1, 2, 3)],
                                               at=2)
        assert fake.created_count == 2
        made = list(fake._tasks)
    assert f"created Kling task {made[1]}" in text
    assert f"So far, 2 of 3 tasks of the batch were created ({made[0]}, {made[1]})" in text


def test_after_the_db_returns_the_task_is_one_row_not_two(database_url, postgres):
    """The task's adoption, kept in memory while the database was away, is written when it returns; the intent,
    queued again, finds the task by its external id: one row holds it, paid once."""
    journal = store.open_journal(Path("."), url=database_url)
    with FakeCometAPI(key="k-123456789") as fake:
        _submit_while_the_database_goes(fake, postgres, journal, [Intent(REQUEST, 1)])
        assert journal._pending  # the adoption, kept
        plain = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        (task,) = submit_all([Intent(REQUEST, 1)], journal, plain, settings=SETTINGS, interval=0.05)
        assert fake.created_count == 1 and task.task_id == next(iter(fake._tasks))  # paid once
    assert not journal._pending
    rows = [j for j in journal.jobs() if j.task_id == task.task_id]
    assert [(j.fingerprint, j.attempt) for j in rows] == [(Intent(REQUEST, 1).fingerprint, 1)]
    assert journal.count() == 1


def test_a_lost_commit_answer_after_marking_sending_does_not_leave_the_intent_uncertain(database_url, monkeypatch):
    """The decision that marks an intent sending commits, but its answer is lost: the run stops, saying nothing was
    sent, and nothing was. The row says 'sending'; queued again in this process, the intent is sent (once),
    not reported as an unanswered creation a new seed must replace."""
    from contextlib import contextmanager
    from kling_omni import journal as J
    from kling_omni.errors import DatabaseUnavailable
    journal = store.open_journal(Path("."), url=database_url)
    real = journal.decide

    intent = Intent(REQUEST, 1)

    @contextmanager
    def answer_lost():
        with real() as tx:
            yield tx
        if journal.latest(intent.fingerprint).state == J.SENDING:  # committed; its answer is lost
            raise journal._decision_error(DatabaseUnavailable("The shared journal's database cannot be written "
                                                              "(server closed the connection).", path=journal.path))

    with FakeCometAPI(key="k-123456789") as fake:
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        monkeypatch.setattr(journal, "decide", answer_lost)
        with pytest.raises(JournalError, match="Nothing was sent"):
            submit_all([intent], journal, make, settings=SETTINGS, interval=0.05)
        monkeypatch.undo()
        assert fake.created_count == 0 and journal.latest(intent.fingerprint).state == J.SENDING
        (task,) = submit_all([intent], journal, make, settings=SETTINGS, interval=0.05)
        assert fake.created_count == 1
    row = journal.latest(intent.fingerprint)
    assert (row.attempt, row.task_id, row.state) == (1, task.task_id, "queued")


def test_a_sending_row_changed_since_this_process_marked_it_stays_uncertain(database_url, monkeypatch):
    """What this process knows of a row it marked sending holds only while nobody changed the row: a run that took
    it over meanwhile may have sent it, so it is resolved as an unanswered creation, never resent blindly."""
    from kling_omni.errors import CreationUncertain
    journal = store.open_journal(Path("."), url=database_url)
    intent = Intent(REQUEST, 1)
    run = journal.owners().start_run()
    with journal.decide() as tx:
        tx.add_waiting(intent.fingerprint, 1, "comfy-x-1", owner=run, prompt="p", base_url="h", key_id="k",
                       mode="pro", seconds=5)
        assert tx.mark_sending(intent.fingerprint, 1, run)
        journal.never_sent[(intent.fingerprint, 1)] = tx.stamp - 1  # marked by this process, then changed by another
    journal.owners().end_run(run)
    with FakeCometAPI(key="k-123456789") as fake:
        with pytest.raises(CreationUncertain):
            submit_all([intent], journal, lambda: OmniClient(fake.key, fake.base_url), settings=SETTINGS, interval=0.05)
        assert fake.created_count == 0


# --- what a second review found in the fixes above --------------------------------------------------


def _journalled_and_sending(journal):
    run = journal.owners().start_run()
    with journal.decide() as tx:
        tx.add_waiting("fp1", 1, "comfy-fp1-1", owner=run, prompt="p", base_url="h", key_id="k", mode="pro", seconds=5)
        assert tx.mark_sending("fp1", 1, run)
    return run


def test_a_collection_that_waits_for_the_fold_of_its_row_is_written_to_the_intent_s_row(database_url, monkeypatch):
    """The intent learns its task T9 while another machine, given the id, collects T9 on its own row: the fold
    holds that row until it commits, and the collection that waited for it is written to the intent's row."""
    import threading

    from kling_omni import journal as J
    from kling_omni.pg_journal import PgJournal
    journal = store.open_journal(Path("."), url=database_url)
    other, watcher = PgJournal(database_url, machine="machine-b"), PgJournal(database_url, machine="watcher")
    try:
        _journalled_and_sending(journal)
        other.adopt("T9", base_url="h")  # a Poll on machine b given the id
        other.update_task("T9", state="succeeded", video_url="https://x/v.mp4")
        real, collection = J.fold_adopted, []

        def folding_while_b_collects(db, fingerprint, attempt, task_id):
            class Db:  # the fold's statements, with machine b's collection coming just after its read
                ROW_LOCK = db.ROW_LOCK

                def execute(self, sql, params=()):
                    cursor = db.execute(sql, params)
                    if sql.startswith("SELECT * FROM jobs WHERE fingerprint=? AND attempt=0") and not collection:
                        collection.append(threading.Thread(target=other.update_task, args=("T9",), kwargs=dict(
                            video_path="/b/out/kling_T9.mp4", unit_deduction="0.8")))
                        collection[0].start()
                        deadline = time.monotonic() + 10  # until b's write waits on the fold's lock
                        while not watcher._read("SELECT 1 FROM pg_stat_activity WHERE wait_event_type='Lock'", ()):
                            assert time.monotonic() < deadline, "machine b's write never waited for the fold"
                    return cursor
            return real(Db(), fingerprint, attempt, task_id)

        monkeypatch.setattr(J, "fold_adopted", folding_while_b_collects)
        journal.settle("fp1", 1, "queued", task_id="T9")
        collection[0].join(10)
        (row,) = [j for j in journal.jobs() if j.task_id == "T9"]
        assert (row.fingerprint, row.video_path, row.unit_deduction) == ("fp1", "/b/out/kling_T9.mp4", "0.8")
    finally:
        other.close()
        watcher.close()


def test_sqlite_unsend_finds_the_stamp_its_own_mark_wrote(tmp_path, monkeypatch):
    """unsend() matches the updated_at the mark wrote: written as a bound value, not a SQL literal (SQLite reads
    a few float literals one bit off, e.g. this one, and the unsent intent then looked unanswered)."""
    from kling_omni import journal as J
    journal = J.Journal(tmp_path / "journal.sqlite3")
    with journal.decide() as tx:
        tx.add_waiting("fp1", 1, "comfy-fp1-1", owner="r1", prompt="p", base_url="h", key_id="k", mode="pro",
                       seconds=5)
    with monkeypatch.context() as patched:
        patched.setattr(J.time, "time", lambda: 1796051671.444224)
        with journal.decide() as tx:
            assert tx.mark_sending("fp1", 1, "r1")
            stamp = tx.stamp
    with journal.decide() as tx:
        assert tx.unsend(tx.latest("fp1"), "r2", stamp), "the row this process marked is not recognised"


def test_the_never_sent_memory_outlives_a_decision_that_was_rolled_back(tmp_path):
    """A batch whose other intent crosses the daily limit rolls its decision back, the unsend with it: the memory
    that the intent was never sent stays, so queued alone next it is sent, not reported as unanswered."""
    from kling_omni.errors import SpendLimitReached
    from kling_omni.journal import Journal
    request = OmniRequest(prompt="a fox runs through snow", mode="pro", duration=5)
    journal = Journal(tmp_path / "journal.sqlite3")
    intent, other = Intent(request, 1), Intent(request, 2)
    owners = journal.owners()
    run = owners.start_run()
    with journal.decide() as tx:  # as claim_slot does, its commit's answer then lost
        tx.add_waiting(intent.fingerprint, 1, "comfy-x-1", owner=run, prompt="p", base_url="h", key_id="k",
                       mode="pro", seconds=5)
        assert tx.mark_sending(intent.fingerprint, 1, run)
        journal.never_sent[(intent.fingerprint, 1)] = tx.stamp
    owners.end_run(run)
    with FakeCometAPI(key="k-123456789") as fake:
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        with pytest.raises(SpendLimitReached):
            submit_all([intent, other], journal, make, settings=PackSettings(daily_limit_usd=0.5), interval=0.05)
        assert (intent.fingerprint, 1) in journal.never_sent, "forgotten by a decision that was rolled back"
        task = submit_all([intent], journal, make, settings=PackSettings(daily_limit_usd=0), interval=0.05)[0]
        assert task.task_id and fake.created_count == 1
