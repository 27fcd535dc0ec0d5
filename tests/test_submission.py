"""Submit is idempotent per intent, across restarts and network faults. Counts real tasks."""

import pytest

from kling_omni import journal as J
from kling_omni.client import OmniClient
from kling_omni.errors import BadRequest, CreationUncertain, SlotWaitTimeout
from kling_omni.journal import Journal
from kling_omni.rules import build_request
from kling_omni.submission import external_id, intent_fingerprint, submit


@pytest.fixture
def journal_path(tmp_path):
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def factory(fake_server):
    calls = []

    def make():
        calls.append(1)
        return OmniClient(fake_server.key, fake_server.base_url, timeout=(2, 2))
    make.calls = calls
    return make


def request(prompt="A fox runs through snow"):
    return build_request(prompt, "pro", "16:9", 5, None)


def test_same_intent_one_task_even_after_restart(fake_server, journal_path, factory):
    first = submit(request(), 1, Journal(journal_path), factory)
    fake_server.clear_records()
    calls_before = len(factory.calls)
    again = submit(request(), 1, Journal(journal_path), factory)  # a new Journal: as after a restart
    assert again.task_id == first.task_id
    assert fake_server.created_count == 1
    assert fake_server.requests == [] and len(factory.calls) == calls_before  # no request, no key needed


def test_changed_seed_or_request_is_a_new_task(fake_server, journal_path, factory):
    journal = Journal(journal_path)
    a = submit(request(), 1, journal, factory)
    b = submit(request(), 2, journal, factory)
    c = submit(request("A fox runs through rain"), 1, journal, factory)
    assert len({a.task_id, b.task_id, c.task_id}) == 3 and fake_server.created_count == 3


def test_failed_task_is_retried_with_a_new_external_id(fake_server, journal_path, factory):
    journal = Journal(journal_path)
    first = submit(request(), 1, journal, factory)
    fake_server.finish(first.task_id, failed=True, message="risk control")
    journal.update_task(first.task_id, state="failed")
    second = submit(request(), 1, journal, factory)
    assert second.task_id != first.task_id and fake_server.created_count == 2
    externals = [r.body["external_task_id"] for r in fake_server.requests if r.method == "POST"]
    fp = intent_fingerprint(request(), 1)
    assert externals == [external_id(fp, 1), external_id(fp, 2)]


def test_500_after_the_task_was_created_finds_it_instead_of_paying_again(fake_server, journal_path, factory):
    journal = Journal(journal_path)
    fake_server.fail_next_create_after_commit(500)
    with pytest.raises(CreationUncertain) as err:
        submit(request(), 1, journal, factory)
    assert "may" in str(err.value) and fake_server.created_count == 1
    assert journal.latest(intent_fingerprint(request(), 1)).state == J.UNCERTAIN
    task = submit(request(), 1, journal, factory)  # the user re-runs
    assert fake_server.created_count == 1
    assert task.task_id in fake_server.tasks


def test_429_before_creation_ends_as_rejected_when_the_wait_for_a_slot_times_out(fake_server, journal_path,
                                                                                 factory):
    journal = Journal(journal_path)
    fake_server.reject_next_create(429, 1303)
    with pytest.raises(SlotWaitTimeout):
        submit(request(), 1, journal, factory, timeout=0)
    assert fake_server.created_count == 0
    assert journal.latest(intent_fingerprint(request(), 1)).state == J.REJECTED
    submit(request(), 1, journal, factory)
    assert fake_server.created_count == 1


def test_server_refusal_is_recorded_and_retryable(fake_server, journal_path, factory):
    journal = Journal(journal_path)
    bad = build_request("A fox", "pro", "16:9", 5, None)
    object.__setattr__(bad, "duration", 7)  # slip past the local rules: the server refuses it
    with pytest.raises(BadRequest):
        submit(bad, 1, journal, factory)
    assert fake_server.created_count == 0


def test_intent_made_under_a_lost_journal_is_adopted_not_refused(fake_server, tmp_path, factory):
    # Same request and seed after the journal was lost (reinstall, another ComfyUI on the account):
    # the server refuses the repeated external id; the pack finds that task instead of failing.
    first = submit(request(), 1, Journal(tmp_path / "old.sqlite3"), factory)
    journal = Journal(tmp_path / "new.sqlite3")
    again = submit(request(), 1, journal, factory)
    assert again.task_id == first.task_id and fake_server.created_count == 1
    assert journal.latest(intent_fingerprint(request(), 1)).task_id == first.task_id


def crash_after_sending(journal, fake_server, client):
    """What a crash between sending and recording leaves: a 'sending' row; the task may exist."""
    req = request()
    fp = intent_fingerprint(req, 1)
    ext = external_id(fp, 1)
    journal.begin(fp, 1, ext, prompt="x", base_url=fake_server.base_url)
    return req, ext


def test_crash_after_the_task_was_created_attaches_to_it(fake_server, journal_path, factory):
    journal = Journal(journal_path)
    client = factory()
    req, ext = crash_after_sending(journal, fake_server, client)
    made = client.create_task(req.payload(external_task_id=ext))  # the request that got through
    task = submit(req, 1, Journal(journal_path), factory)
    assert task.task_id == made.task_id and fake_server.created_count == 1


def test_crash_before_anything_was_created_is_resent_only_where_provable(fake_server, journal_path, factory):
    journal = Journal(journal_path)
    req, _ = crash_after_sending(journal, fake_server, factory())
    # This host never showed that it passes external ids on: the pack cannot prove no task exists.
    with pytest.raises(CreationUncertain) as err:
        submit(req, 1, journal, factory)
    message = str(err.value)
    assert "change the seed" in message and "task_id" in message and fake_server.created_count == 0
    # Once the host has echoed an external id, a lookup miss is proof: resend under the same id.
    journal.learn_echo(fake_server.base_url, True)
    task = submit(req, 1, journal, factory)
    assert fake_server.created_count == 1 and task.task_id in fake_server.tasks


def test_echo_is_learned_from_a_real_creation(fake_server, journal_path, factory):
    journal = Journal(journal_path)
    submit(request(), 1, journal, factory)
    assert journal.echoes_external_id(fake_server.base_url)


def test_refused_resend_keeps_the_intent_uncertain_and_never_pays_twice(fake_server, journal_path, factory):
    """A host that cannot look tasks up by external id, where the first request did create one."""
    fake_server.query_by_external_id = False
    journal = Journal(journal_path)
    journal.learn_echo(fake_server.base_url, True)
    client = factory()
    req, ext = crash_after_sending(journal, fake_server, client)
    client.create_task(req.payload(external_task_id=ext))  # it got through before the crash
    for _ in range(2):  # however often the user re-runs
        with pytest.raises(CreationUncertain) as err:
            submit(req, 1, journal, factory)
        assert "refused" in str(err.value)
    assert fake_server.created_count == 1
    assert journal.latest(intent_fingerprint(req, 1)).state == J.UNCERTAIN


def test_a_host_that_drops_external_ids_is_never_trusted_with_a_resend(fake_server, journal_path, factory):
    """The echo must come from the server's answer: a gateway that drops external_task_id
    creates a duplicate on a resend, so an uncertain creation there must never be resent."""
    fake_server.drops_external_id = True
    journal = Journal(journal_path)
    submit(request("first clip"), 1, journal, factory)  # a successful creation, echo absent
    assert not journal.echoes_external_id(fake_server.base_url)
    req, _ = crash_after_sending(journal, fake_server, factory())
    factory().create_task(req.payload())  # the lost request did create a task
    for _ in range(2):
        with pytest.raises(CreationUncertain):
            submit(req, 1, journal, factory)
    assert fake_server.created_count == 2  # the first clip and the lost one: nothing paid twice


def test_same_intent_under_a_lost_journal_never_pays_twice_even_without_lookup(fake_server, tmp_path, factory):
    """The server refuses our repeated external id but cannot look it up: the intent stays
    uncertain (not 'rejected', which would let the next run pay for attempt 2)."""
    fake_server.query_by_external_id = False
    submit(request(), 1, Journal(tmp_path / "old.sqlite3"), factory)
    journal = Journal(tmp_path / "new.sqlite3")  # the old journal is gone
    for _ in range(3):
        with pytest.raises(CreationUncertain) as err:
            submit(request(), 1, journal, factory)
        assert "external id" in str(err.value)
    assert fake_server.created_count == 1
    assert journal.latest(intent_fingerprint(request(), 1)).state == J.UNCERTAIN


def test_http_200_with_a_kling_server_error_is_uncertain_not_rejected(fake_server, journal_path, factory,
                                                                      monkeypatch):
    import requests

    real_send = requests.Session.send

    def answer_5000(self, prepared, **kwargs):
        response = real_send(self, prepared, **kwargs)  # the task is created...
        if prepared.method == "POST":
            response._content = b'{"code": 5000, "message": "server internal error", "request_id": "r"}'
        return response  # ...but the answer says "internal error" with HTTP 200
    monkeypatch.setattr(requests.Session, "send", answer_5000)
    journal = Journal(journal_path)
    with pytest.raises(CreationUncertain) as err:
        submit(request(), 1, journal, factory)
    assert "Queue again" in str(err.value)
    monkeypatch.setattr(requests.Session, "send", real_send)
    task = submit(request(), 1, journal, factory)  # found by its external id, not created again
    assert fake_server.created_count == 1 and task.task_id in fake_server.tasks
