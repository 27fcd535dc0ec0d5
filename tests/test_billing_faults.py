"""Never pay twice, never lose a paid video: every fault, through the nodes users run.

Each test counts the tasks the fake server created and checks that the final MP4 decodes
whole (every frame, in order).
"""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from fake_cometapi.media import read_index
from kling_omni.errors import CreationUncertain, DecodeCancelled

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import bridge

CHAIN = Path(__file__).resolve().parent / "run_chain.py"


def chain(prompt="A fox runs through snow", seed=0):
    async def run():
        (request,) = await NODES["CometOmniPrompt"]().build(prompt=prompt, mode="pro", aspect_ratio="16:9", duration=5)
        (task,), (_,) = (await NODES["CometOmniSubmit"]().submit(request=request, seed=seed, unique_id="4"))["result"]
        return (await NODES["CometOmniPoll"]().poll(task=task, unique_id="5"))["result"]
    return asyncio.run(run())


def assert_whole(path, server):
    with av.open(str(path)) as container:
        indexes = [read_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert indexes == list(range(round(server.video_seconds * server.video_fps)))


def test_download_cut_halfway_is_resumed(env, fake_server):
    fake_server.cut_next_downloads(2, 0.5)
    frames, _, video, *_ = chain()
    assert_whole(video.get_stream_source(), fake_server)
    assert fake_server.created_count == 1
    assert any(r.header("Range") for r in fake_server.file_requests)


def test_expired_url_is_refreshed_once(env, fake_server):
    fake_server.expire_urls()  # every URL handed out so far, and the first one of the new task
    (request,) = asyncio.run(NODES["CometOmniPrompt"]().build(prompt="x y", mode="pro", aspect_ratio="16:9", duration=5))
    (task,), (task_id,) = asyncio.run(NODES["CometOmniSubmit"]().submit(request=request, seed=0, unique_id="4"))["result"]
    fake_server.finish(task_id)
    fake_server.expire_urls()  # the URL the first status query will give is dead
    _, _, video, _, _, url = asyncio.run(NODES["CometOmniPoll"]().poll(task=task, unique_id="5"))["result"]
    assert_whole(video.get_stream_source(), fake_server)
    assert fake_server.created_count == 1


def test_status_storm_is_ridden_out(env, fake_server, monkeypatch):
    from kling_omni import waiting
    monkeypatch.setattr(waiting, "DEFAULT_BACKOFF", waiting.Backoff(base=0.01, cap=0.05, jitter=0.005))
    fake_server.status_storm([429, 503, 429, 500, 503])
    _, _, video, *_ = chain()
    assert_whole(video.get_stream_source(), fake_server)
    assert fake_server.created_count == 1


def test_creation_500_after_commit_is_never_paid_twice(env, fake_server):
    fake_server.fail_next_create_after_commit(500)
    with pytest.raises(CreationUncertain):
        chain()
    _, _, video, *_ = chain()  # the user queues again: the task is found by its external id
    assert fake_server.created_count == 1
    assert_whole(video.get_stream_source(), fake_server)


def test_creation_429_before_is_waited_out_then_created_once(env, fake_server, monkeypatch):
    from kling_omni import submission
    monkeypatch.setattr(submission, "SLOT_BACKOFF", submission.Backoff(base=0.01, cap=0.05, jitter=0.005))
    fake_server.reject_next_create(429, 1303)
    _, _, video, *_ = chain()
    assert fake_server.created_count == 1
    assert_whole(video.get_stream_source(), fake_server)


def test_a_task_that_takes_minutes(env, fake_server):
    fake_server.processing_seconds = 300  # five minutes on the server's clock

    async def run():
        (request,) = await NODES["CometOmniPrompt"]().build(prompt="slow", mode="pro", aspect_ratio="16:9", duration=5)
        (task,), (tid,) = (await NODES["CometOmniSubmit"]().submit(request=request, seed=0, unique_id="4"))["result"]
        waiting = asyncio.ensure_future(NODES["CometOmniPoll"]().poll(task=task, unique_id="5"))
        for _ in range(5):  # a minute passes between status queries
            before = fake_server.queries_of(tid)
            await asyncio.to_thread(fake_server.wait_until, lambda: fake_server.queries_of(tid) > before)
            assert fake_server.status_of(tid) in ("submitted", "processing") and not waiting.done()
            fake_server.advance(61)
        return (await waiting)["result"]

    _, _, video, *_ = asyncio.run(run())
    assert_whole(video.get_stream_source(), fake_server)
    assert fake_server.created_count == 1


def test_cancel_during_decode_keeps_the_paid_video(env, fake_server, monkeypatch):
    out = Path(env["COMETAPI_OMNI_OUTPUT"])
    monkeypatch.setattr(bridge, "interrupted", lambda: any(out.rglob("*.mp4")))
    with pytest.raises(DecodeCancelled) as err:
        chain()
    task_id = next(iter(fake_server.tasks))
    assert task_id in str(err.value) and "paid" in str(err.value)
    monkeypatch.setattr(bridge, "interrupted", lambda: False)
    fake_server.clear_records()
    frames, *_ = chain()  # queued again: from disk, nothing sent
    assert frames.shape[0] > 1 and fake_server.requests == [] and fake_server.file_requests == []


def test_killed_while_polling_then_restarted_costs_one_task(env, fake_server):
    """A ComfyUI process killed mid-wait, then the same graph queued after a restart."""
    fake_server.processing_seconds = 3600
    run = [sys.executable, str(CHAIN), "A fox runs through snow", "3"]
    first = subprocess.Popen(run, env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    try:
        task_id = json.loads(first.stdout.readline())["submitted"]
        assert fake_server.wait_until(lambda: fake_server.queries_of(task_id) >= 2)
    finally:
        first.kill()  # no clean-up, no goodbye: as a crash
        first.wait()
    second = subprocess.Popen(run, env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(second.stdout.readline())["submitted"] == task_id  # same task, not a new one
        queries = fake_server.queries_of(task_id)
        assert fake_server.wait_until(lambda: fake_server.queries_of(task_id) > queries)  # polling again
        fake_server.finish(task_id)
        result = json.loads(second.stdout.readline())
        assert second.wait(timeout=60) == 0
    finally:
        second.kill()
    assert fake_server.created_count == 1
    assert result["task_id"] == task_id and result["frames"] == round(fake_server.video_seconds * fake_server.video_fps)
    assert_whole(result["path"], fake_server)
    posts = [r for r in fake_server.requests if r.method == "POST"]
    assert len(posts) == 1  # the restart sent no creation request at all


def test_two_polls_of_one_task_share_one_download(env, fake_server):
    """One Submit wired to two Polls (full frames and a preview): one download, one whole MP4."""
    async def run():
        (request,) = await NODES["CometOmniPrompt"]().build(prompt="twice", mode="pro", aspect_ratio="16:9", duration=5)
        (task,), (_,) = (await NODES["CometOmniSubmit"]().submit(request=request, seed=0, unique_id="4"))["result"]
        return await asyncio.gather(NODES["CometOmniPoll"]().poll(task=task, unique_id="5"),
                                    NODES["CometOmniPoll"]().poll(task=task, unique_id="6", max_frames=3))

    full, preview = asyncio.run(run())
    assert full["result"][2].get_stream_source() == preview["result"][2].get_stream_source()
    assert_whole(full["result"][2].get_stream_source(), fake_server)
    assert preview["result"][0].shape[0] == 3
    assert len(fake_server.file_requests) == 1 and fake_server.created_count == 1


def test_requeue_right_after_cancelling_a_download_gets_a_whole_video(env, fake_server, monkeypatch):
    """Cancel during a stalled download, queue again at once: the paid video arrives whole."""
    fake_server.file_stall = 1.5  # every file answer stalls halfway
    stop = {"now": False}
    monkeypatch.setattr(bridge, "interrupted", lambda: stop["now"])

    async def run():
        (request,) = await NODES["CometOmniPrompt"]().build(prompt="again", mode="pro", aspect_ratio="16:9", duration=5)
        (task,), (_,) = (await NODES["CometOmniSubmit"]().submit(request=request, seed=0, unique_id="4"))["result"]
        first = asyncio.ensure_future(NODES["CometOmniPoll"]().poll(task=task, unique_id="5"))
        await asyncio.to_thread(fake_server.wait_until, lambda: len(fake_server.file_requests) >= 1)
        stop["now"] = True
        with pytest.raises(Exception):
            await first
        stop["now"] = False
        return await NODES["CometOmniPoll"]().poll(task=task, unique_id="5")

    _, _, video, *_ = asyncio.run(run())["result"]
    assert_whole(video.get_stream_source(), fake_server)
