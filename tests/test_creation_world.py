"""Creation against the web as it is: any 2xx, values that cannot be sent, an account at its
limit of tasks in flight. Through Prompt → Submit against the fake over real HTTP; every test
counts the tasks the fake server created.
"""

import asyncio
import logging
import socket
import threading
import time
import traceback

import pytest

from fake_cometapi.server import FakeCometAPI
from kling_omni import client as client_module, credentials, errors, submission
from kling_omni.client import OmniClient
from kling_omni.journal import Journal
from kling_omni.rules import build_request
from kling_omni.submission import intent_fingerprint
from kling_omni.waiting import Backoff

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import bridge, runtime

PROMPT = "A fox runs through snow"
LONG_KEY = "omni-test-0123456789-abcdefghij"  # not sk-shaped: only the pack's own redaction hides it


@pytest.fixture
def env(env, monkeypatch):
    # raising=False: the test runs (and fails) on code that has no slot wait yet
    monkeypatch.setattr(submission, "SLOT_BACKOFF", Backoff(base=0.02, cap=0.05, jitter=0.01), raising=False)
    return env


async def submit_async(seed=0, prompt=PROMPT, **widgets):
    (request,) = await NODES["CometOmniPrompt"]().build(prompt=prompt, mode="pro", aspect_ratio="16:9", duration=5)
    (task,), (task_id,) = (await NODES["CometOmniSubmit"]().submit(request=request, seed=seed, unique_id="4",
                                                                  **widgets))["result"]
    return task, task_id


def submit(seed=0, **widgets):
    return asyncio.run(submit_async(seed, **widgets))


def states():
    return [job.state for job in runtime.journal().jobs()]


def intent_state(seed):
    """The journal state of the intent (PROMPT, seed); callable inside a running event loop."""
    request = build_request(PROMPT, "pro", "16:9", 5, None)  # what the Prompt node builds
    job = runtime.journal().latest(intent_fingerprint(request, seed))
    return job.state if job else None


async def eventually(predicate, timeout=2.0):
    """Wait until predicate() holds (the journal has no change signal to wait on)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


def posts(server):
    return [r for r in server.requests if r.method == "POST"]


# --- any 2xx with a task id is a created task ------------------------------------------------------

@pytest.mark.parametrize("status", [201, 202])
def test_a_201_or_202_creation_is_the_task_and_a_requeue_sends_nothing(env, fake_server, status):
    fake_server.create_status = status
    _, task_id = submit()
    assert task_id in fake_server.tasks and states() == ["queued"]
    fake_server.clear_records()
    _, again = submit()  # the user queues the same graph again
    assert again == task_id and fake_server.created_count == 1 and fake_server.requests == []


# --- not sent is not uncertain ----------------------------------------------------------------------

def _key_env(value):
    return lambda server, monkeypatch, home: monkeypatch.setenv("COMETAPI_KEY", value(server.key))


def _key_file(value):
    def setup(server, monkeypatch, home):
        monkeypatch.delenv("COMETAPI_KEY")
        home.mkdir(parents=True, exist_ok=True)
        (home / "key").write_text(value(server.key) + "\n", encoding="utf-8")
    return setup


def _base_url(url):
    return lambda server, monkeypatch, home: monkeypatch.setenv("COMETAPI_BASE_URL", url)


NOT_SENT = {  # case: (make the bad value, what the message must name, what it must say is wrong)
    "typographic quotes around COMETAPI_KEY": (_key_env(lambda key: f"\u201c{key}\u201d"), "COMETAPI_KEY",
                                               "non-ASCII character at position 1"),
    "line break in COMETAPI_KEY": (_key_env(lambda key: key[:6] + "\n" + key[6:]), "COMETAPI_KEY", "line break"),
    "line break in the key file": (_key_file(lambda key: key[:6] + "\r\n" + key[6:]), "{home}/key", "line break"),
    "port out of range": (_base_url("http://127.0.0.1:99999"), "COMETAPI_BASE_URL", "port"),
    "port not a number": (_base_url("https://api.cometapi.com:abc"), "COMETAPI_BASE_URL", "port"),
}


@pytest.mark.parametrize("case", NOT_SENT)
def test_a_value_that_cannot_be_sent_is_refused_before_anything_is_journalled(case, env, fake_server, monkeypatch):
    setup, source, problem = NOT_SENT[case]
    home = runtime.bridge.data_dir()
    setup(fake_server, monkeypatch, home)
    with pytest.raises(errors.OmniError) as err:
        submit()
    message = str(err.value)
    assert source.format(home=home) in message and problem in message, message
    assert "nothing was sent" in message.lower()
    assert fake_server.key[:6] not in message and fake_server.key[6:] not in message
    assert fake_server.requests == [] and states() == []  # no row at all: nothing may have been paid
    # The user fixes the value and queues again: exactly one task.
    monkeypatch.setenv("COMETAPI_KEY", fake_server.key)
    monkeypatch.setenv("COMETAPI_BASE_URL", fake_server.base_url)
    _, task_id = submit()
    _, again = submit()
    assert again == task_id and fake_server.created_count == 1 and states() == ["queued"]


def forms_of(secret):
    """The key and the ways an error text could spell it: escaped, as bytes, its long fragments."""
    forms = {secret, repr(secret)[1:-1], ascii(secret)[1:-1], repr(secret.encode())[2:-1]}
    return forms | {part for part in secret.split() if len(part) >= 8}


def assert_no_trace_of(secret, *texts):
    for text in texts:
        for form in forms_of(secret):
            assert form not in text, f"{form!r} appears in {text!r}"


@pytest.fixture
def long_key_server():
    with FakeCometAPI(key=LONG_KEY) as server:
        yield server


@pytest.mark.parametrize("bad_key", [LONG_KEY[:20] + "\n" + LONG_KEY[20:], "\u201c" + LONG_KEY + "\u201d"])
def test_a_bad_key_that_slips_past_the_entry_check_is_still_not_sent_and_never_shown(
        bad_key, env, long_key_server, monkeypatch, caplog):
    """The defensive layer: the HTTP library's refusal to build the request counts as not sent."""
    caplog.set_level(logging.DEBUG)
    server = long_key_server
    monkeypatch.setenv("COMETAPI_BASE_URL", server.base_url)
    monkeypatch.setenv("COMETAPI_KEY", bad_key)
    monkeypatch.setattr(credentials, "key_problem", lambda key: "", raising=False)  # bypass the entry check
    with pytest.raises(errors.OmniError) as err:
        submit()
    assert "nothing was sent" in str(err.value).lower()
    assert server.requests == [] and states() == ["rejected"]  # not "uncertain": a re-run tries again
    journalled = runtime.journal().jobs()[0].message
    shown = "".join(traceback.format_exception(type(err.value), err.value, err.value.__traceback__))
    logged = [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    assert_no_trace_of(bad_key, str(err.value), repr(err.value), shown, journalled, *logged)
    monkeypatch.setenv("COMETAPI_KEY", LONG_KEY)
    _, task_id = submit()
    assert server.created_count == 1 and task_id in server.tasks


def test_a_bad_base_url_that_slips_past_the_entry_check_is_still_not_sent(env, fake_server, monkeypatch):
    monkeypatch.setenv("COMETAPI_BASE_URL", "http://127.0.0.1:99999")
    monkeypatch.setattr(client_module, "checked_base_url", lambda url: url, raising=False)  # bypass
    with pytest.raises(errors.OmniError) as err:
        submit()
    assert "nothing was sent" in str(err.value).lower() and states() == ["rejected"]
    monkeypatch.setenv("COMETAPI_BASE_URL", fake_server.base_url)
    submit()
    assert fake_server.created_count == 1


@pytest.mark.parametrize("bypass", [False, True], ids=["entry check", "past the entry check"])
def test_the_test_key_route_never_shows_a_multiline_key(bypass, long_key_server, tmp_path, monkeypatch, caplog):
    from tests.test_routes import call, serve
    caplog.set_level(logging.DEBUG)
    bad_key = LONG_KEY[:20] + "\n" + LONG_KEY[20:]
    monkeypatch.setenv("COMETAPI_KEY", bad_key)
    monkeypatch.setenv("COMETAPI_BASE_URL", long_key_server.base_url)
    if bypass:
        monkeypatch.setattr(credentials, "key_problem", lambda key: "", raising=False)

    async def scenario(client):
        return await call(client, "POST", "/key/test", json={})

    status, body = serve(tmp_path / "store", runtime.test_key, scenario)
    assert status == 200 and '"ok": false' in body
    if not bypass:
        assert "COMETAPI_KEY" in body and "line break" in body
    assert long_key_server.requests == []
    assert_no_trace_of(bad_key, body, *[r.getMessage() for r in caplog.records])


def test_http_to_a_host_that_is_not_loopback_is_refused_before_connecting(env, monkeypatch):
    monkeypatch.setenv("COMETAPI_BASE_URL", "http://192.0.2.10:8765")  # TEST-NET-1: routes nowhere
    started = time.monotonic()
    with pytest.raises(errors.OmniError) as err:
        submit()
    message = str(err.value)
    assert "COMETAPI_BASE_URL" in message and "https://" in message and "nothing was sent" in message.lower()
    assert time.monotonic() - started < 2 and states() == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://127.1.2.3", "http://[::1]:8765",
                                 "http://localhost:8765/", "https://api.cometapi.com", "HTTPS://Api.CometAPI.com/"])
def test_allowed_base_urls(url):
    OmniClient("k" * 20, url).close()


@pytest.mark.parametrize("url, words", [
    ("http://api.cometapi.com", "https://"),
    ("http://10.0.0.7:8765", "https://"),
    ("ftp://api.cometapi.com", "https://"),
    ("https://user:secret@api.cometapi.com", "user name or password"),
    ("https://api.cometapi.com/?x=1", "query"),
    ("https://api.cometapi.com/#top", "fragment"),
    ("https://", "host"),
    ("https://api cometapi.com", "host"),
    ("http://127.0.0.1:0", "port"),
])
def test_refused_base_urls(url, words):
    with pytest.raises(errors.OmniError) as err:
        OmniClient("k" * 20, url)
    assert "COMETAPI_BASE_URL" in str(err.value) and words in str(err.value)
    assert "secret" not in str(err.value)


def test_the_localhost_name_reaches_a_loopback_server(env, fake_server, monkeypatch):
    monkeypatch.setenv("COMETAPI_BASE_URL", fake_server.base_url.replace("127.0.0.1", "localhost"))
    submit()
    assert fake_server.created_count == 1


# --- an account at its limit: wait for a slot, create once -------------------------------------------

def test_two_429_1303_answers_then_one_task_after_the_retry_after(env, fake_server, texts):
    fake_server.retry_after = 0.3
    fake_server.reject_next_create(429, 1303)
    fake_server.reject_next_create(429, 1303)
    _, task_id = submit()
    assert fake_server.created_count == 1 and task_id in fake_server.tasks
    first, second = fake_server.refused_creates
    assert second - first >= 0.3 and fake_server.tasks[task_id].created_mono - second >= 0.3
    sent = posts(fake_server)
    assert len(sent) == 3 and len({r.body["external_task_id"] for r in sent}) == 1  # one attempt, resent
    waiting = [text for node, text in texts if node == "4" and "waiting for a free slot" in text]
    assert waiting and "429" in waiting[0] and "1303" in waiting[0] and "next try in" in waiting[0]
    assert states() == ["queued"]


def test_a_plain_429_without_a_kling_body_also_waits(env, fake_server):
    fake_server.reject_next_create(429, 9999)  # a code this pack does not know: still "too many requests"
    submit()
    assert fake_server.created_count == 1 and len(posts(fake_server)) == 2


def test_a_full_account_waits_for_a_running_task_to_end_then_creates_once(env, fake_server, texts):
    fake_server.max_in_flight = 1
    fake_server.processing_seconds = 3600
    _, running = submit(seed=0)

    async def run():
        second = asyncio.ensure_future(submit_async(seed=1))
        assert await asyncio.to_thread(fake_server.wait_until, lambda: len(fake_server.refused_creates) >= 1)
        assert not second.done()
        fake_server.finish(running)  # the running task ends: its slot frees
        return await second

    _, task_id = asyncio.run(run())
    assert task_id != running and fake_server.created_count == 2 and intent_state(1) == "queued"


def _blocked_second_submit(fake_server, monkeypatch):
    fake_server.max_in_flight = 1
    fake_server.processing_seconds = 3600
    submit(seed=0)
    monkeypatch.setattr(submission, "SLOT_BACKOFF", Backoff(base=30, cap=30, jitter=0), raising=False)


def test_cancel_while_waiting_for_a_slot_ends_submit_within_a_second(env, fake_server, monkeypatch):
    _blocked_second_submit(fake_server, monkeypatch)
    stop = {"now": False}
    monkeypatch.setattr(bridge, "interrupted", lambda: stop["now"])

    async def run():
        second = asyncio.ensure_future(submit_async(seed=1))
        assert await asyncio.to_thread(fake_server.wait_until, lambda: len(fake_server.refused_creates) >= 1)
        await eventually(lambda: intent_state(1) == "waiting")  # a crash while waiting leaves a row: not sent
        stop["now"] = True
        started = time.monotonic()
        with pytest.raises(errors.OmniError) as err:
            await second
        return time.monotonic() - started, err.value

    elapsed, error = asyncio.run(run())
    assert elapsed < 1.0 and "nothing was created" in str(error).lower()
    assert fake_server.created_count == 1 and intent_state(1) == "rejected"


def test_the_timeout_ends_the_wait_for_a_slot_with_a_clear_message(env, fake_server, monkeypatch):
    _blocked_second_submit(fake_server, monkeypatch)
    started = time.monotonic()
    with pytest.raises(errors.OmniError) as err:
        submit(seed=1, timeout_minutes=0.01)  # 0.6 s; the widget's minimum is 1 minute
    elapsed = time.monotonic() - started
    message = str(err.value)
    assert 0.5 < elapsed < 2 and "nothing was created" in message.lower() and "timeout_minutes" in message
    assert "1303" in message and fake_server.created_count == 1 and intent_state(1) == "rejected"


def test_submit_has_a_timeout_widget_last():
    optional = NODES["CometOmniSubmit"].INPUT_TYPES()["optional"]
    name, (kind, options) = list(optional.items())[-1]
    assert (name, kind, options["default"], options["min"], options["max"]) == ("timeout_minutes", "INT", 30, 1, 1440)
    assert "nothing is created" in options["tooltip"]


# --- the fake server's account behaviours, spoken to with plain requests -----------------------------

def test_fake_in_flight_limit_frees_a_slot_when_a_task_ends():
    import requests
    from fake_cometapi.server import API_PATH

    with FakeCometAPI(max_in_flight=1, processing_seconds=10, retry_after=2) as server:
        def create():
            return requests.post(server.base_url + API_PATH, json={"prompt": "x"}, timeout=5,
                                 headers={"Authorization": f"Bearer {server.key}"})
        assert create().status_code == 200
        refused = create()
        assert refused.status_code == 429 and refused.json()["code"] == 1303
        assert refused.headers["Retry-After"] == "2" and server.created_count == 1
        server.advance(11)  # the running task ends on the server's clock
        assert create().status_code == 200 and server.created_count == 2


@pytest.mark.parametrize("header, low, high", [
    ("7", 7, 7), ("0.25", 0.25, 0.25), (" 3 ", 3, 3), ("", None, None), ("soon", None, None), ("-5", 0, 0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0, 0),  # a date in the past: try now
])
def test_retry_after_header_forms(header, low, high):
    from kling_omni.responses import retry_after_seconds
    seconds = retry_after_seconds(header)
    assert seconds == low if low is None else low <= seconds <= high


def test_retry_after_as_an_http_date():
    from email.utils import formatdate
    from kling_omni.responses import retry_after_seconds
    assert 25 <= retry_after_seconds(formatdate(time.time() + 30, usegmt=True)) <= 30


def test_an_answer_the_http_library_cannot_parse_is_uncertain_not_unsent(tmp_path):
    """The host got the POST, then answered with conflicting Content-Length values (a buggy proxy):
    requests raises a ValueError, but only after sending. Queued again, it must not be sent again."""
    posts = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            posts.append(conn.recv(65536)[:4])
            body = b'{"code":0,"data":{"task_id":"t1","task_status":"submitted"}}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d, %d\r\nConnection: close\r\n\r\n"
                         % (len(body), len(body) + 1) + body)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    journal = Journal(tmp_path / "j.sqlite3")
    request = build_request(PROMPT, "pro", "16:9", 5, None)
    try:
        for _ in range(2):
            with pytest.raises(errors.CreationUncertain):
                submission.submit(request, 7, journal, lambda: OmniClient(LONG_KEY, base, timeout=(2, 3)))
    finally:
        listener.close()
    assert posts.count(b"POST") == 1, "the same intent was sent twice"  # the second run only looks it up
