"""Nothing paid is left behind: the background collector, through the nodes and the CLI, over real HTTP.

The collector runs as in ComfyUI (its own thread and event loop, nodes/background.py) with a
short interval; tests wait on conditions (the fake server's requests, the journal), not on time.
"""

import asyncio
import logging
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import av
import pytest

from fake_cometapi.media import read_index
from kling_omni import collector as C
from kling_omni.collect import is_collecting, task_lock
from kling_omni.errors import WaitCancelled
from kling_omni.journal import Job, Journal
from kling_omni.settings import save_settings

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import background, bridge, runtime
from tests.fakeserver_fixtures import point_pack_at

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(fake_server, tmp_path, monkeypatch):
    values = point_pack_at(fake_server, tmp_path, monkeypatch, **{C.INTERVAL_ENV: "0.05"})
    runtime._journal_at.cache_clear()
    yield values
    background.stop()


def submit(prompt="A fox runs through snow", seed=0):
    async def run():
        (request,) = await NODES["CometOmniPrompt"]().build(prompt=prompt, mode="pro", aspect_ratio="16:9", duration=5)
        return (await NODES["CometOmniSubmit"]().submit(request=request, seed=seed, unique_id="4"))["result"][0][0]
    return asyncio.run(run())


def saved(task_id, timeout=15.0):
    """The task's video path once the journal records it (polled against a deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = runtime.journal().by_task(task_id)
        if job is not None and job.video_on_disk is not None:
            return job.video_on_disk
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} was not collected within {timeout} s")


def downloads_of(server, task_id):
    """File requests for this task's video (each URL token belongs to one task)."""
    tokens = {token for token, (tid, _) in server._tokens.items() if tid == task_id}
    return [r for r in server.file_requests if any(t in r.path for t in tokens)]


def assert_whole(path, server):
    with av.open(str(path)) as container:
        indexes = [read_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert indexes == list(range(round(server.video_seconds * server.video_fps)))


# --- which tasks: the pure choice ------------------------------------------------------

def job(task_id, state="queued", key_id="", base_url="http://api.example", created=0.0, video_path=""):
    return Job(fingerprint=f"f{task_id}", attempt=1, external_task_id=None, task_id=task_id, state=state, prompt="",
               base_url=base_url, node_id="", created_at=created, updated_at=created, video_url="",
               video_path=video_path, unit_deduction="", message="", key_id=key_id)


def test_the_choice_of_tasks():
    mine = C.key_id("sk-current-key-0000000000")
    jobs = [job("1"), job("2", key_id=mine, base_url="http://old.example"), job("3", state="succeeded"),
            job("4", key_id="another-key"), job("5", base_url="http://elsewhere.example"), job(None),
            job("6", key_id=mine), job("7", base_url="http://api.example/")]
    chosen = C.choose(jobs, current_key_id=mine, base_url="http://api.example", skip={"6"})
    assert chosen == ["3", "1", "2", "7"]  # the finished one first, then the oldest first


def test_the_journal_offers_unfinished_and_never_saved_tasks_of_the_last_30_days(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    states = ["queued", "processing", "succeeded", "succeeded", "failed", "rejected", "uncertain", "queued"]
    for i, state in enumerate(states):
        journal.begin(f"f{i}", 1, f"comfy-{i}", prompt="p", base_url="b")
        journal.settle(f"f{i}", 1, state, task_id=str(i) if state not in ("rejected", "uncertain") else None)
    journal.update_task("3", video_path=str(tmp_path / "kling_3.mp4"))  # saved once (deleted since: the user's call)
    with journal._connect() as db:
        db.execute("UPDATE jobs SET created_at=? WHERE task_id='7'", (time.time() - 31 * 86400,))
    assert [j.task_id for j in journal.uncollected(time.time() - 30 * 86400)] == ["0", "1", "2"]


# --- through the nodes ---------------------------------------------------------------

def test_a_cancelled_poll_s_task_is_collected_once_it_finishes(env, fake_server, monkeypatch):
    fake_server.processing_seconds = 3600
    task = submit()
    monkeypatch.setattr(bridge, "interrupted", lambda: fake_server.queries_of(task.task_id) >= 1)
    with pytest.raises(WaitCancelled):
        asyncio.run(NODES["CometOmniPoll"]().poll(task=task, unique_id="5"))
    monkeypatch.setattr(bridge, "interrupted", lambda: False)
    background.start()
    looked = fake_server.queries_of(task.task_id)
    assert fake_server.wait_until(lambda: fake_server.queries_of(task.task_id) > looked + 1)  # it keeps looking
    assert fake_server.file_requests == [] and runtime.journal().by_task(task.task_id).state == "processing"
    fake_server.finish(task.task_id)
    path = saved(task.task_id)
    assert path.parent == Path(env["COMETAPI_OMNI_OUTPUT"]) / "cometapi_omni"
    assert_whole(path, fake_server)
    job = runtime.journal().by_task(task.task_id)
    assert job.state == "succeeded" and float(job.unit_deduction) > 0
    assert len(fake_server.file_requests) == 1 and fake_server.created_count == 1
    fake_server.clear_records()
    result = asyncio.run(NODES["CometOmniPoll"]().poll(task=task, unique_id="5"))["result"]  # queued again
    assert Path(result[2].get_stream_source()) == path and fake_server.requests == [] == fake_server.file_requests


def test_a_submit_without_a_poll_is_collected(env, fake_server):
    task = submit()
    background.start()
    assert_whole(saved(task.task_id), fake_server)
    assert len(fake_server.file_requests) == 1


def test_a_task_a_poll_holds_is_skipped(env, fake_server):
    held, free = submit(seed=1), submit(seed=2)
    poll_lock = task_lock(runtime.journal(), held.task_id)  # a Poll waiting for it holds this
    assert poll_lock.try_acquire()
    try:
        background.start()
        saved(free.task_id)  # a round that saw both went by
        assert fake_server.queries_of(held.task_id) == 0 and downloads_of(fake_server, held.task_id) == []
    finally:
        poll_lock.release()
    saved(held.task_id)
    assert len(downloads_of(fake_server, held.task_id)) == 1


def test_turned_off_it_collects_nothing_but_what_it_is_asked_for(env, fake_server):
    save_settings(Path(env["COMETAPI_OMNI_HOME"]), {"background_collect": False})
    asked, left = submit(seed=1), submit(seed=2)
    background.want(asked.task_id)  # the sidebar's "collect now"
    saved(asked.task_id)
    assert fake_server.queries_of(left.task_id) == 0 and downloads_of(fake_server, left.task_id) == []
    save_settings(Path(env["COMETAPI_OMNI_HOME"]), {"background_collect": True})  # read every round
    saved(left.task_id)


def test_tasks_of_another_key_or_host_are_skipped(env, fake_server, omni_client):
    journal = runtime.journal()

    def journalled(name, **marks):
        task_id = omni_client.create_task({"model_name": "kling-video-o1", "prompt": name, "duration": "5"}).task_id
        journal.begin(name, 1, f"comfy-{name}", prompt=name, mode="pro", seconds=5, **marks)
        journal.settle(name, 1, "queued", task_id=task_id)
        return task_id

    other_key = journalled("other key", base_url=fake_server.base_url, key_id=C.key_id("sk-someone-else-000000"))
    other_host = journalled("other host", base_url="https://api.cometapi.com")
    this_key = journalled("this key", base_url="https://api.cometapi.com", key_id=C.key_id(fake_server.key))
    this_host = journalled("this host", base_url=fake_server.base_url)
    background.start()
    saved(this_key)
    saved(this_host)
    assert fake_server.queries_of(other_key) == 0 and fake_server.queries_of(other_host) == 0
    assert runtime.journal().by_task(other_key).video_path == ""


def test_a_machine_that_cannot_collect_does_not_keep_others_from_its_paid_tasks(database_url):
    """Machine A's collector is on but has no key, or only another key than the task's: it collects nothing of
    A's finished task, so it must not claim it; machine B, with the task's key, collects it. With the task's key,
    A's collector claims it and B leaves it alone."""
    from kling_omni import store
    from kling_omni.pg_journal import PgJournal
    from kling_omni.settings import PackSettings
    a, b = store.open_journal(Path("."), url=database_url), PgJournal(database_url, machine="machine-b")
    paid = replace(job("42", state="succeeded", key_id=C.key_id("sk-the-task-s-key-0000")), machine="machine-a")
    key = [None]
    collector = C.Collector(journal=lambda: a, client_factory=None, out_dir=lambda: Path("."),
                            settings=lambda: PackSettings(), key=lambda: key[0], base_url=lambda: "http://api.example")

    def left_to_a(with_key):
        key[0] = with_key
        collector._candidates(a)  # a round of A's collector: it says which tasks it collects
        return b.collectable_here([paid]) == []

    try:
        assert not left_to_a(None)
        assert left_to_a("sk-the-task-s-key-0000")
        assert not left_to_a("sk-a-new-key-000000000")  # A's key changed: the task's old key is B's to use
        assert left_to_a("sk-the-task-s-key-0000")
        collector._settings = lambda: PackSettings(background_collect=False)
        assert not left_to_a("sk-the-task-s-key-0000")
    finally:
        b.close()


def test_a_failing_task_is_tried_less_and_less_often_with_one_warning(env, fake_server, caplog):
    caplog.set_level(logging.INFO, logger="cometapi_omni")
    journal = runtime.journal()
    journal.begin("gone", 1, "comfy-gone", prompt="p", base_url=fake_server.base_url)
    journal.settle("gone", 1, "queued", task_id="4242")  # CometAPI does not know it (404)
    background.start()
    assert fake_server.wait_until(lambda: fake_server.queries_of("4242") >= 2)
    second = time.monotonic()
    assert fake_server.wait_until(lambda: fake_server.queries_of("4242") >= 3)
    assert time.monotonic() - second >= 0.15  # backed off: 0.05 s rounds, then 0.1, 0.2, 0.4 s...
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "4242" in r.getMessage()]
    assert len(warnings) == 1 and "python -m kling_omni collect 4242" in warnings[0].getMessage()
    assert "Traceback" not in caplog.text and fake_server.key not in caplog.text


def test_the_cli_and_the_collector_download_a_task_once(env, fake_server, tmp_path):
    fake_server.processing_seconds = 3600
    task = submit()
    background.start()
    cli_env = {k: v for k, v in os.environ.items()}
    cli = subprocess.Popen([sys.executable, "-m", "kling_omni", "collect", task.task_id, "--out",
                            str(tmp_path / "cli"), "--interval", "0.05"], cwd=ROOT, env=cli_env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not is_collecting(runtime.journal(), task.task_id):  # the CLI is waiting, holding the lock
            assert time.monotonic() < deadline and cli.poll() is None
            time.sleep(0.02)
        fake_server.finish(task.task_id)
        out, err = cli.communicate(timeout=60)
    finally:
        cli.kill()
    assert cli.returncode == 0, err
    path = Path(out.strip().splitlines()[-1])
    assert path.parent == tmp_path / "cli" and saved(task.task_id) == path
    assert_whole(path, fake_server)
    assert len(fake_server.file_requests) == 1
    assert not (Path(env["COMETAPI_OMNI_OUTPUT"]) / "cometapi_omni" / path.name).exists()


def test_collect_now_fetches_again_a_video_deleted_from_disk(env, fake_server):
    task = submit()
    background.start()
    path = saved(task.task_id)
    path.unlink()  # the user deleted it: the collector leaves that alone...
    assert runtime.journal().uncollected(0) == []
    background.want(task.task_id)  # ...until asked from the sidebar
    assert saved(task.task_id) == path
    assert_whole(path, fake_server)
    assert len(fake_server.file_requests) == 2
