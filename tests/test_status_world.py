"""Status words the pack does not know, through Prompt → Submit → Poll against the fake over real HTTP.

A terminal word ends the wait with an error naming it and the task; failure-like words are
failures; a word that is not terminal keeps the wait going and is shown as the server says it.
"""

import asyncio
import time

import pytest

from fake_cometapi.server import FakeCometAPI
from kling_omni import errors, responses, waiting
from kling_omni.task import ENDED, FAILED, PROCESSING, SUCCEEDED

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import runtime


@pytest.fixture(params=["A", "B", "C"])
def variant(request):
    return request.param


@pytest.fixture
def server_for(tmp_path, monkeypatch):
    """server_for(variant): a running fake (tasks take an hour unless told otherwise), env pointed at it."""
    started = []

    def make(variant="A"):
        server = FakeCometAPI(variant=variant, processing_seconds=3600).start()
        started.append(server)
        for key, value in {"COMETAPI_KEY": server.key, "COMETAPI_BASE_URL": server.base_url,
                           "COMETAPI_OMNI_HOME": str(tmp_path / "home"),
                           "COMETAPI_OMNI_OUTPUT": str(tmp_path / "output"),
                           "COMETAPI_OMNI_POLL_SECONDS": "0.02"}.items():
            monkeypatch.setenv(key, value)
        return server

    yield make
    for server in started:
        server.stop()


async def submit_async(seed=0):
    (request,) = await NODES["CometOmniPrompt"]().build(prompt="A fox runs through snow", mode="pro",
                                                        aspect_ratio="16:9", duration=5)
    (task,), (task_id,) = (await NODES["CometOmniSubmit"]().submit(request=request, seed=seed, unique_id="4"))["result"]
    return task, task_id


def submit():
    return asyncio.run(submit_async())


def poll(task, **widgets):
    return asyncio.run(NODES["CometOmniPoll"]().poll(task=task, unique_id="5", **widgets))["result"]


@pytest.mark.parametrize("word", ["ARCHIVED", "settled"])
@pytest.mark.parametrize("shape", ["B", "C"])  # the wrapper's finish_time and progress show the end
def test_an_unknown_terminal_status_ends_the_wait_naming_the_word_and_the_task(shape, word, server_for):
    server = server_for(shape)
    task, task_id = submit()
    server.set_status(task_id, word, terminal=True)
    started = time.monotonic()
    with pytest.raises(errors.TaskFailed) as err:
        poll(task, timeout_minutes=0.05)  # 3 s: the old code waited all of it
    assert time.monotonic() - started < 2
    assert word in str(err.value) and task_id in str(err.value) and "change the seed" in str(err.value)
    assert runtime.journal().by_task(task_id).state == ENDED  # it may have been billed: not retried on its own
    again, _ = submit()  # queued again: the same task, and nothing paid for a second one
    assert again.task_id == task_id and server.created_count == 1


@pytest.mark.parametrize("word", ["EXPIRED", "canceled", "RISK_CONTROL_FAILED", "content_moderation", "timed_out",
                                  "TIMEOUT", "rejected", "BlockedByPolicy", "violation", "sensitive_content",
                                  "censored", "aborted", "deleted", "refused", "access_denied"])
def test_failure_like_words_are_failures(word, server_for):
    server = server_for("A")  # Kling's own shape: nothing but the word says the task ended
    task, task_id = submit()
    server.set_status(task_id, word, message="")
    with pytest.raises(errors.TaskFailed) as err:
        poll(task, timeout_minutes=0.05)
    assert word in str(err.value) and task_id in str(err.value)


def test_an_unknown_word_that_is_not_terminal_is_shown_and_the_wait_goes_on(variant, server_for, texts):
    server = server_for(variant)
    task, task_id = submit()
    server.set_status(task_id, "QUEUING_ON_GPU")

    async def run():
        polling = asyncio.ensure_future(NODES["CometOmniPoll"]().poll(task=task, unique_id="5"))
        deadline = time.monotonic() + 3
        while not any("QUEUING_ON_GPU" in text for node, text in texts if node == "5"):
            assert time.monotonic() < deadline and not polling.done(), texts
            await asyncio.sleep(0.02)
        server.finish(task_id)
        return (await polling)["result"]

    frames, _, video, _, tid, _ = asyncio.run(run())
    assert tid == task_id and frames.shape[0] == round(server.video_seconds * server.video_fps)


@pytest.mark.parametrize("terminal", [True, False])
def test_an_unknown_word_with_a_video_is_collected(variant, terminal, server_for):
    server = server_for(variant)
    task, task_id = submit()
    server.set_status(task_id, "ARCHIVED", terminal=terminal, video=True)
    frames, *_ = poll(task, timeout_minutes=0.05)
    assert frames.shape[0] == round(server.video_seconds * server.video_fps)


def test_status_queries_honour_retry_after(server_for, monkeypatch):
    monkeypatch.setattr(waiting, "DEFAULT_BACKOFF", waiting.Backoff(base=0.01, cap=0.02, jitter=0.005))
    server = server_for("A")
    server.processing_seconds = 0
    server.retry_after = 0.4
    task, task_id = submit()
    server.status_storm([429])
    started = time.monotonic()
    poll(task)
    assert time.monotonic() - started >= 0.4 and server.queries_of(task_id) == 2


# --- the parser itself, on bodies no fake produces ------------------------------------------------

def wrapper(status, **fields):
    return {"code": "success", "data": {"task_id": "t1", "status": status, **fields}}


@pytest.mark.parametrize("body, status", [
    (wrapper("ARCHIVED", progress="100%"), ENDED),  # ended (100%) without a video
    (wrapper("ARCHIVED", finished_at=1773300090), ENDED),
    (wrapper("ARCHIVED", end_time=1773300090), ENDED),
    (wrapper("ARCHIVED", completed_at="2026-03-12T10:00:00Z"), ENDED),
    (wrapper("ARCHIVED", finish_time=0, progress="40%"), PROCESSING),
    (wrapper("IN_PROGRESS", progress="100%"), PROCESSING),  # a known word: trusted as is
    (wrapper("UNKNOWN", finish_time=0), "queued"),  # the contract: UNKNOWN means keep polling
    ({"code": 0, "data": {"task_id": "t1", "task_status": "riskControl"}}, FAILED),
    ({"code": 0, "data": {"task_id": "t1", "task_status": "ARCHIVED",
                          "task_result": {"videos": [{"url": "https://cdn.example/v.mp4"}]}}}, SUCCEEDED),
])
def test_parse_unknown_words(body, status):
    state = responses.parse_task(body, task_id="t1")
    assert state.status == status
    if status == FAILED:
        assert state.raw_status in state.message
