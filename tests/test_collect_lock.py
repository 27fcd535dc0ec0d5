"""One collection of a task at a time, whoever asks: Poll and the CLI wait for the task's lock,
the background collector only tries it. Through the Poll node and collect_video, over real HTTP."""

import asyncio
import time

import pytest

from kling_omni.collect import collect_video, task_lock
from kling_omni.errors import CollectionBusy, TaskFailed, WaitCancelled
from kling_omni import errors
from kling_omni.journal import Journal
from kling_omni.client import OmniClient

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import bridge, runtime


def made_elsewhere(client):
    return client.create_task({"model_name": "kling-video-o1", "prompt": "made elsewhere", "duration": "5"}).task_id


def test_a_poll_waits_for_another_collection_of_its_task_and_says_so(env, fake_server, omni_client, status_texts):
    task_id = made_elsewhere(omni_client)
    holder = task_lock(runtime.journal(), task_id)  # e.g. the CLI or the background collector
    assert holder.try_acquire()

    async def run():
        polling = asyncio.ensure_future(NODES["CometOmniPoll"]().poll(task_id=task_id, unique_id="5"))
        deadline = time.monotonic() + 5
        while not any("another collection of this task is running" in t for t in status_texts):
            assert time.monotonic() < deadline and not polling.done()
            await asyncio.sleep(0.02)
        assert fake_server.queries_of(task_id) == 0 and fake_server.file_requests == []  # it only waits
        holder.release()
        return await polling

    result = asyncio.run(run())["result"]
    assert result[4] == task_id and result[0].shape[0] > 1
    assert len(fake_server.file_requests) == 1
    assert not task_lock(runtime.journal(), task_id).path.exists()  # on disk: the lock file is gone


def test_cancel_while_waiting_for_the_lock_ends_at_once(env, fake_server, omni_client, monkeypatch):
    task_id = made_elsewhere(omni_client)
    holder = task_lock(runtime.journal(), task_id)
    assert holder.try_acquire()
    started = time.monotonic()
    monkeypatch.setattr(bridge, "interrupted", lambda: time.monotonic() - started > 0.3)
    try:
        with pytest.raises(WaitCancelled) as err:
            asyncio.run(NODES["CometOmniPoll"]().poll(task_id=task_id, unique_id="5"))
        assert time.monotonic() - started < 1.5 and task_id in str(err.value)
    finally:
        holder.release()
    assert fake_server.queries_of(task_id) == 0


def test_a_collector_skips_a_task_whose_lock_is_held(tmp_path, fake_server, omni_client):
    journal = Journal(tmp_path / "home" / "journal.sqlite3")
    task_id = made_elsewhere(omni_client)
    holder = task_lock(journal, task_id)
    assert holder.try_acquire()

    def client():
        return OmniClient(fake_server.key, fake_server.base_url)

    try:
        with pytest.raises(CollectionBusy):
            asyncio.run(collect_video(task_id, journal, client, tmp_path / "out", wait_for_lock=False))
    finally:
        holder.release()
    assert fake_server.queries_of(task_id) == 0
    done = asyncio.run(collect_video(task_id, journal, client, tmp_path / "out", wait_for_lock=False, interval=0.02))
    assert done.path.is_file() and not holder.path.exists()


def test_the_lock_is_let_go_after_a_cancel_and_removed_after_a_failure(env, fake_server, omni_client, monkeypatch):
    fake_server.processing_seconds = 3600
    task_id = made_elsewhere(omni_client)
    monkeypatch.setattr(bridge, "interrupted", lambda: fake_server.queries_of(task_id) >= 1)
    with pytest.raises(WaitCancelled):
        asyncio.run(NODES["CometOmniPoll"]().poll(task_id=task_id, unique_id="5"))
    lock = task_lock(runtime.journal(), task_id)
    assert lock.try_acquire()  # nobody holds it any more
    lock.release()
    monkeypatch.setattr(bridge, "interrupted", lambda: False)
    fake_server.finish(task_id, failed=True)
    with pytest.raises(TaskFailed):
        asyncio.run(NODES["CometOmniPoll"]().poll(task_id=task_id, unique_id="5"))
    assert not lock.path.exists()


def test_a_first_collection_makes_the_data_folder_owner_only(env, fake_server, omni_client):
    import os
    import stat
    from pathlib import Path
    task_id = made_elsewhere(omni_client)
    old = os.umask(0o022)
    try:
        asyncio.run(NODES["CometOmniPoll"]().poll(task_id=task_id, unique_id="5"))  # the first use of the pack
    finally:
        os.umask(old)
    home = Path(env["COMETAPI_OMNI_HOME"])
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "locks").stat().st_mode) == 0o700


def test_a_poll_timed_out_behind_another_collection_says_that_one_saves_the_video(env, fake_server, omni_client):
    task_id = made_elsewhere(omni_client)
    fake_server.finish(task_id)
    holder = task_lock(runtime.journal(), task_id)
    assert holder.try_acquire()
    try:
        with pytest.raises(errors.WaitTimeout) as err:
            asyncio.run(NODES["CometOmniPoll"]().poll(task_id=task_id, timeout_minutes=0.01, unique_id="5"))
    finally:
        holder.release()
    text = str(err.value)
    assert task_id in text and "another collection" in text and "keeps running" not in text
