"""The money guards hold across threads and processes: every money decision is one atomic step
in the journal, and a run only sends, or gives up, rows of its own.

Each fault here was reproduced first, on the version before this change, by the same test:
two processes on one user folder paid twice (8 tasks for 4 intents with a host that does not
enforce external_task_id) or failed with "UNIQUE constraint failed"; two processes both passed
a daily limit that fits one batch; two Submits in one process both took the last slot; a task
the host no longer finds held its slot until the wait timed out.
"""

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from fake_cometapi.server import FakeCometAPI
from kling_omni import journal as J
from kling_omni.client import OmniClient
from kling_omni.errors import SlotWaitTimeout
from kling_omni.journal import Journal
from kling_omni.owners import Owners
from kling_omni.request import OmniRequest
from kling_omni.settings import PackSettings
from kling_omni.submission import Intent, external_id, submit_all
from tests import money_processes
from tests.fakeserver_fixtures import point_pack_at
from tests.money_processes import SPAWN, together

REQUEST = OmniRequest(prompt="a fox runs through snow", mode="pro", duration=5)


def test_two_processes_on_one_folder_make_one_task_per_intent(tmp_path, monkeypatch):
    """Same batch, same moment, a pace of 1, a host that does not enforce external_task_id:
    each intent is sent once, by the process that journalled it; the other adopts its task."""
    with FakeCometAPI(key="test-key-123", drops_external_id=True, submitted_seconds=0.1,
                      processing_seconds=0.2) as fake:
        env = point_pack_at(fake, tmp_path, monkeypatch)
        home = Path(env["COMETAPI_OMNI_HOME"])
        from kling_omni.settings import save_settings
        save_settings(home, {"max_in_flight": 1, "daily_limit_usd": 0})
        reports = together(money_processes.chain, [(env, "a fox runs through snow", 0, 4),
                                                    (env, "a fox runs through snow", 0, 4)])
        first, second = reports
        assert first["ids"] == second["ids"] and len(set(first["ids"])) == 4
        assert fake.created_count == 4  # one paid task per intent, no more
        assert fake.refused_creates == []  # and never more than 1 in flight
        rows = Journal(home / "journal.sqlite3").jobs(limit=50)
        assert sorted(j.task_id for j in rows) == sorted(first["ids"])  # every task is journalled
        assert all(j.state == "succeeded" and j.video_on_disk for j in rows)  # and every video collected
        assert all(j.owner == "" for j in rows)  # handed back when each run ended


def test_two_processes_never_both_pass_a_limit_that_fits_one_batch(tmp_path):
    """$3 a day, two processes each submitting 3 × 5 s pro (≈ $1.68) at the same moment, 100 times."""
    rounds = 100
    with FakeCometAPI(key="test-key-123") as fake:
        folders = [str(tmp_path / f"round{r}") for r in range(rounds)]
        reports = together(money_processes.budget_rounds,
                           [({}, fake.base_url, fake.key, folders, [0, 1, 2], 3.0),
                            ({}, fake.base_url, fake.key, folders, [10, 11, 12], 3.0)], timeout=240)
        per_round = list(zip(reports[0]["outcomes"], reports[1]["outcomes"]))
        assert len(per_round) == rounds
        assert all(sorted(pair) == ["passed", "refused"] for pair in per_round), per_round
        assert fake.created_count == 3 * rounds


def test_two_submits_in_one_process_never_pass_the_in_flight_limit(tmp_path):
    """The count and the 'sending' mark are one step: at a limit of 1, four Submits started together
    send one at a time, and the account never refuses one for being full."""
    with FakeCometAPI(key="test-key-123", max_in_flight=1, submitted_seconds=0.05, processing_seconds=0.1) as fake:
        journal = Journal(tmp_path / "journal.sqlite3")
        settings = PackSettings(max_in_flight=1, daily_limit_usd=0)
        start, failures = threading.Barrier(4), []

        def one(seed):
            start.wait()
            try:
                submit_all([Intent(REQUEST, seed)], journal, lambda: OmniClient(fake.key, fake.base_url),
                           settings=settings, interval=0.02)
            except Exception as exc:
                failures.append(exc)

        threads = [threading.Thread(target=one, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == [] and fake.created_count == 4
        assert fake.refused_creates == []


def test_a_task_the_host_no_longer_finds_stops_holding_a_slot(tmp_path):
    with FakeCometAPI(key="test-key-123") as fake:
        journal = Journal(tmp_path / "journal.sqlite3")
        with OmniClient(fake.key, fake.base_url) as client:
            key_id = client.key_id
        journal.begin("gone", 1, "comfy-gone-1", prompt="p", base_url=fake.base_url, key_id=key_id, mode="pro",
                      seconds=5)
        journal.settle("gone", 1, "processing", task_id="999999999")  # a task this host does not know
        started = time.monotonic()
        (task,) = submit_all([Intent(REQUEST, 1)], journal, lambda: OmniClient(fake.key, fake.base_url),
                             settings=PackSettings(max_in_flight=1, daily_limit_usd=0), interval=0.05, timeout=20)
        assert time.monotonic() - started < 10 and task.task_id and fake.created_count == 1
        gone = journal.by_task("999999999")
        # It keeps its state (it may be billed, and may yet be found): only its slot is freed.
        assert gone.state == "processing" and gone.missing_since is not None
        assert [j.task_id for j in journal.uncollected(0)].count("999999999") == 1


# --- the journal's own steps -----------------------------------------------------------------


def two_processes(tmp_path):
    """Two Owners of one folder as two processes see it (each holds its own OS lock)."""
    return Owners(tmp_path), Owners(tmp_path)


def test_a_run_gives_up_only_its_own_waiting_rows(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    a, b = two_processes(tmp_path)
    run_a, run_b = a.start_run(), b.start_run()
    with journal.decide() as tx:
        tx.add_waiting("fa", 1, "comfy-fa-1", owner=run_a, prompt="p", base_url="h")
        tx.add_waiting("fb", 1, "comfy-fb-1", owner=run_b, prompt="p", base_url="h")
    journal.give_up(run_b, ["fa", "fb"], "stopped")
    assert journal.latest("fa").state == J.WAITING  # the other run's row is left alone
    assert journal.latest("fb").state == J.REJECTED
    assert a.alive(run_a) and b.alive(run_a)  # alive in its own process, and as seen from the other
    a.end_run(run_a)
    assert not a.alive(run_a)


def test_a_row_with_a_task_id_is_never_marked_sending(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    owner = Owners(tmp_path).start_run()
    with journal.decide() as tx:
        tx.add_waiting("f", 1, "comfy-f-1", owner=owner, prompt="p", base_url="h")
    with sqlite3.connect(journal.path) as db:  # a task id arrived (e.g. another run adopted one)
        db.execute("UPDATE jobs SET task_id='77' WHERE fingerprint='f'")
    with journal.decide() as tx:
        assert tx.mark_sending("f", 1, owner) is False
        assert tx.mark_sending("f", 1, "someone-else") is False
    assert journal.latest("f").state == J.WAITING


def test_a_dead_processes_rows_are_taken_over_and_a_live_ones_are_followed(tmp_path, monkeypatch):
    with FakeCometAPI(key="test-key-123") as fake:
        env = point_pack_at(fake, tmp_path, monkeypatch)
        journal = Journal(Path(env["COMETAPI_OMNI_HOME"]) / "journal.sqlite3")
        held = SPAWN.Event()
        child = SPAWN.Process(target=money_processes.reserve_and_hold,
                              args=(env, str(journal.path), fake.base_url, [5, 6], held))
        child.start()
        try:
            assert held.wait(60)
            intents = [Intent(REQUEST, 5), Intent(REQUEST, 6)]
            client = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
            # Alive: its rows are its own to send; this run waits for them and sends nothing.
            with pytest.raises(SlotWaitTimeout) as waited:
                submit_all(intents, journal, client, settings=PackSettings(daily_limit_usd=0), interval=0.05,
                           timeout=1.5)
            assert "another run" in str(waited.value) and fake.created_count == 0
            assert {journal.latest(i.fingerprint).state for i in intents} == {J.WAITING}
            child.kill()  # gone without handing anything back: the OS frees its lock
            child.join(10)
            tasks = submit_all(intents, journal, client, settings=PackSettings(daily_limit_usd=0), interval=0.05)
            assert len({t.task_id for t in tasks}) == 2 and fake.created_count == 2
            assert all(journal.latest(i.fingerprint).attempt == 1 for i in intents)  # the same intents, not new ones
        finally:
            child.kill()
            child.join(10)


# --- what the review of the change found (each failed before its fix) -------------------------------


def test_a_run_stays_alive_for_other_processes_after_its_lock_file_is_removed(tmp_path):
    a, b = two_processes(tmp_path)
    run = a.start_run()
    import shutil
    shutil.rmtree(tmp_path / "owners")  # a clean-up of the data folder's clutter while ComfyUI runs
    a.keep(run)  # its next decision locks a new file
    assert b.alive(run)
    later = a.start_run()
    assert b.alive(later)
    a.end_run(run)
    assert not b.alive(run) and not a.alive(run)


def test_a_row_that_holds_a_task_is_never_given_up_nor_paid_again(tmp_path):
    """A row 'waiting' with a task id (another writer recorded the task): the task is reused, never rejected."""
    with FakeCometAPI(key="test-key-123") as fake:
        journal = Journal(tmp_path / "journal.sqlite3")
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        intent = Intent(REQUEST, 1)
        from kling_omni.submission import external_id
        with make() as client:
            key_id = client.key_id
            state = client.create_task(REQUEST.payload(external_task_id=external_id(intent.fingerprint, 1)))
        journal.begin(intent.fingerprint, 1, external_id(intent.fingerprint, 1), prompt="p", base_url=fake.base_url,
                      key_id=key_id, mode="pro", seconds=5, state=J.WAITING)
        with sqlite3.connect(journal.path) as db:
            db.execute("UPDATE jobs SET task_id=? WHERE fingerprint=?", (state.task_id, intent.fingerprint))
        for _ in range(2):
            (task,) = submit_all([intent], journal, make, settings=PackSettings(daily_limit_usd=0), interval=0.05)
            assert task.task_id == state.task_id
        assert fake.created_count == 1 and journal.by_task(state.task_id).state != J.REJECTED
        journal.give_up("", [intent.fingerprint], "x")
        assert journal.settle(intent.fingerprint, 1, J.REJECTED, message="x") is False  # a task stays a task


def test_a_run_following_another_waits_as_long_as_that_one_makes_progress(tmp_path):
    """Two Submits of the same 4 variations at a pace of 1: the second follows the first, and each task
    the first creates restarts its clock; both end with the same 4 tasks."""
    with FakeCometAPI(key="test-key-123", max_in_flight=1, submitted_seconds=0.3, processing_seconds=0.6) as fake:
        journal = Journal(tmp_path / "journal.sqlite3")
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        settings = PackSettings(max_in_flight=1, daily_limit_usd=0)
        intents = [Intent(REQUEST, seed) for seed in range(4)]
        out = {}

        def run(name):
            try:
                out[name] = [t.task_id for t in submit_all(intents, journal, make, settings=settings, interval=0.05,
                                                           timeout=1.5)]
            except Exception as exc:
                out[name] = exc

        first = threading.Thread(target=run, args=("a",))
        first.start()
        assert fake.wait_until(lambda: fake.created_count >= 1, timeout=30)  # the first run holds the batch
        second = threading.Thread(target=run, args=("b",))
        second.start()
        first.join(60)
        second.join(60)
        assert out["a"] == out["b"] and len(set(out["a"])) == 4 and fake.created_count == 4


def test_a_5xx_that_names_no_channel_after_the_task_was_made_is_uncertain_not_refused(tmp_path, monkeypatch):
    import fake_cometapi.server as S
    from kling_omni.errors import CreationUncertain
    monkeypatch.setitem(S._KLING_MESSAGES, 5002, "upstream timeout; retry: No available channel for model "
                                                 "kling-video-o1 under group default")
    with FakeCometAPI(key="test-key-123") as fake:
        journal = Journal(tmp_path / "journal.sqlite3")
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        fake.fail_next_create_after_commit(502)
        with pytest.raises(CreationUncertain):
            submit_all([Intent(REQUEST, 1)], journal, make, settings=PackSettings(daily_limit_usd=0))
        (task,) = submit_all([Intent(REQUEST, 1)], journal, make, settings=PackSettings(daily_limit_usd=0))
        assert fake.created_count == 1 and task.task_id  # found by its external id, not paid again


def test_a_run_that_could_not_hand_back_leaves_nothing_blocked(tmp_path, monkeypatch):
    from kling_omni.submission import _Run, _SlotWait
    from kling_omni import owners as O
    with FakeCometAPI(key="test-key-123") as fake:
        journal = Journal(tmp_path / "journal.sqlite3")
        first, second = two_processes(journal.path.parent)

        class Offline:
            base_url, key_id = fake.base_url, "k"

        run = _Run(journal, Offline(), _SlotWait(60, None, None), PackSettings(daily_limit_usd=0), 0.05, first,
                   node="CometOmniSubmit", node_id="9")
        intents = [Intent(REQUEST, 7)]
        run.reserve(intents)

        def full(*args, **kwargs):
            raise J.JournalError("The job journal cannot be written (database or disk is full).", path=journal.path)

        monkeypatch.setattr(journal, "give_up", full)
        monkeypatch.setattr(journal, "hand_back", full)
        with pytest.raises(J.JournalError):  # the run's lock is let go all the same
            run.end([i.fingerprint for i in intents])
        monkeypatch.undo()
        monkeypatch.setitem(O._registry, journal.path.absolute().parent, second)  # now as another process
        (task,) = submit_all(intents, journal, lambda: OmniClient(fake.key, fake.base_url),
                             settings=PackSettings(daily_limit_usd=0), interval=0.05, timeout=5)
        assert fake.created_count == 1 and task.task_id


def test_one_not_found_while_waiting_for_a_slot_keeps_the_task_collectable(tmp_path, monkeypatch):
    from fake_cometapi import server as S
    with FakeCometAPI(key="test-key-123", max_in_flight=1, submitted_seconds=0.2, processing_seconds=1.5) as fake:
        journal = Journal(tmp_path / "journal.sqlite3")
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        settings = PackSettings(max_in_flight=1, daily_limit_usd=0)
        (first,) = submit_all([Intent(REQUEST, 1)], journal, make, settings=settings)
        real, hiccups = S.FakeCometAPI._query, [1]

        def query(self, task_id):
            if hiccups:
                hiccups.pop()
                return 404, {"code": 1203, "message": f"task {task_id} does not exist"}
            return real(self, task_id)

        monkeypatch.setattr(S.FakeCometAPI, "_query", query)
        submit_all([Intent(REQUEST, 2)], journal, make, settings=settings, interval=0.05, timeout=10)
        row = journal.by_task(first.task_id)
        assert row.state in ("queued", "processing") and row.missing_since is not None
        assert first.task_id in {j.task_id for j in journal.uncollected(0)}  # the collector still collects it
        journal.update_task(first.task_id, state="processing")  # the host knows it again
        assert journal.by_task(first.task_id).missing_since is None


def test_following_a_row_that_vanished_reserves_again_instead_of_crashing(tmp_path):
    from kling_omni.owners import owners_of
    from kling_omni.submission import _Run, _SlotWait

    journal = Journal(tmp_path / "journal.sqlite3")

    class Offline:
        base_url, key_id = "http://127.0.0.1:9", "k"

    run = _Run(journal, Offline(), _SlotWait(5, None, None), PackSettings(daily_limit_usd=0), 0.05,
               owners_of(journal.path), node="CometOmniSubmit", node_id="9")
    try:
        run.interval = 1.5  # the row is first looked at again after a second
        run.follow([Intent(REQUEST, 3)])  # its row is gone (the journal deleted after reserve said "theirs")
    finally:
        run.end([])


def test_an_uncertain_creation_collected_by_id_then_queued_again_is_one_row(tmp_path):
    """The creation's answer was lost; the user collects the task by id from the CometAPI log (a Poll: a
    'collected:' row with its video), then queues the intent again, which finds the task by its external id.
    One task is one row: the intent's, billed once, with the video the Poll saved."""
    import asyncio
    from kling_omni.collect import collect_video
    from kling_omni.errors import CreationUncertain
    with FakeCometAPI(key="test-key-123") as fake:
        journal = Journal(tmp_path / "journal.sqlite3")
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        fake.fail_next_create_after_commit(502)
        with pytest.raises(CreationUncertain):
            submit_all([Intent(REQUEST, 1)], journal, make, settings=PackSettings(daily_limit_usd=0))
        (task_id,) = fake._tasks
        saved = asyncio.run(collect_video(task_id, journal, make, tmp_path / "out", interval=0.02))
        assert journal.count() == 2  # the intent, uncertain, and the task collected by id
        (task,) = submit_all([Intent(REQUEST, 1)], journal, make, settings=PackSettings(daily_limit_usd=0))
        assert fake.created_count == 1 and task.task_id == task_id
    (row,) = journal.jobs()
    assert (row.fingerprint, row.task_id, row.mode) == (task.fingerprint, task_id, "pro")
    assert (row.state, row.video_path) == ("succeeded", str(saved.path))


def _waiting_row_left_yesterday(journal, intent, monkeypatch):
    """An intent journalled as waiting (its cost reserved) yesterday by a run that then died: never sent."""
    owners = journal.owners()
    run = owners.start_run()
    yesterday = time.time() - 86400
    with monkeypatch.context() as patched:
        patched.setattr(J.time, "time", lambda: yesterday)
        with journal.decide() as tx:
            tx.add_waiting(intent.fingerprint, 1, external_id(intent.fingerprint, 1), owner=run, prompt="p",
                           base_url="h", key_id="k", mode="pro", seconds=5)
    owners.end_run(run)


def test_an_intent_left_waiting_yesterday_counts_against_today_s_limit_when_it_is_sent_today(tmp_path, monkeypatch):
    """Its cost was reserved in yesterday's spend; sent today, it is billed today: it must fit today's limit
    (else nothing is sent), and once sent it counts in today's spend."""
    from kling_omni.errors import SpendLimitReached
    from kling_omni.ledger import spent_today
    from kling_omni.settings import DEFAULTS
    journal = Journal(tmp_path / "journal.sqlite3")
    intent = Intent(REQUEST, 1)  # pro 5 s ≈ $0.56
    _waiting_row_left_yesterday(journal, intent, monkeypatch)
    assert spent_today(journal, DEFAULTS.rates) == 0
    with FakeCometAPI(key="test-key-123") as fake:
        make = lambda: OmniClient(fake.key, fake.base_url)  # noqa: E731
        with pytest.raises(SpendLimitReached):
            submit_all([intent], journal, make, settings=PackSettings(daily_limit_usd=0.5), interval=0.05)
        assert fake.created_count == 0
        (task,) = submit_all([intent], journal, make, settings=PackSettings(daily_limit_usd=1), interval=0.05)
        assert task.task_id and fake.created_count == 1
    assert spent_today(journal, DEFAULTS.rates) > 0.5  # billed today, counted today


def test_a_batch_stopped_before_it_reached_another_run_s_intent_does_not_call_that_one_unbilled(tmp_path):
    """Intent A is this run's and waits for the account's only slot; intent B, later in the batch, is being
    created by another live run. Cancelled while A waits: B is said to be another run's (billed once, there),
    not 'not created and not billed'."""
    from kling_omni.credentials import key_id
    from kling_omni.errors import SlotWaitCancelled
    journal = Journal(tmp_path / "journal.sqlite3")
    a, b = Intent(REQUEST, 1), Intent(REQUEST, 2)
    other = journal.owners().start_run()  # another Submit of this process, alive
    with FakeCometAPI(key="test-key-123") as fake:
        with journal.decide() as tx:
            tx.add_waiting(b.fingerprint, 1, external_id(b.fingerprint, 1), owner=other, prompt="p",
                           base_url=fake.base_url, key_id=key_id(fake.key), mode="pro", seconds=5)
            tx.add_waiting("busy", 1, external_id("busy", 1), owner=other, prompt="p", base_url=fake.base_url,
                           key_id=key_id(fake.key), mode="pro", seconds=5)
            assert tx.mark_sending("busy", 1, other)  # the account's one slot, taken
        with pytest.raises(SlotWaitCancelled) as stopped:
            submit_all([a, b], journal, lambda: OmniClient(fake.key, fake.base_url), interval=0.02,
                       settings=PackSettings(max_in_flight=1, daily_limit_usd=0), should_stop=lambda: True)
        assert fake.created_count == 0
    text = str(stopped.value)
    assert "1 is being created by another run" in text and "The other 1 was not created" in text, text
