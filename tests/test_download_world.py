"""Downloads against file hosts as they are: any 2xx, any framing or encoding, broken and cut
bodies, a trickle; result URLs that must not be trusted; files a user can find.

Through the Poll node (and Prompt → Submit → Poll) or the command line, over real HTTP
against the fake server's file host. Each test checks that the final MP4 is whole.
"""

import asyncio
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest
import requests

from fake_cometapi.media import read_index
from kling_omni import errors
from kling_omni.verify import check_video

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import bridge

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def task_id(fake_server, omni_client):
    """A finished task made elsewhere (another machine, the CometAPI console)."""
    state = omni_client.create_task({"model_name": "kling-video-o1", "prompt": "made elsewhere", "duration": "5"})
    return state.task_id


def poll(**kwargs):
    return asyncio.run(NODES["CometOmniPoll"]().poll(unique_id="5", **kwargs))["result"]


def assert_whole(path, server):
    with av.open(str(path)) as container:
        indexes = [read_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert indexes == list(range(round(server.video_seconds * server.video_fps)))


def kept_aside(folder: Path) -> list:
    return sorted(folder.rglob("*.mp4.broken-*"))


@pytest.fixture
def release_later(fake_server):
    """release_later(seconds): a safety net for a test of a fix, which without the fix would
    trickle for hours. Cancelled when the test ends."""
    timers = []

    def start(seconds):
        timers.append(threading.Timer(seconds, fake_server.release_delays))
        timers[-1].daemon = True
        timers[-1].start()
    yield start
    for timer in timers:
        timer.cancel()


# --- any 2xx, with or without a length, any encoding ------------------------------------------

def test_a_chunked_cdn_reaches_the_graph_and_shows_bytes(env, fake_server, task_id, status_texts, monkeypatch):
    fake_server.file_framing = "chunked"
    fake_server.file_trickle = (2048, 0.05)  # slow enough for the status text to show it
    bars = []
    monkeypatch.setattr(bridge, "progress_bar", lambda node_id, total: bars.append(total))
    frames, _, video, *_ = poll(task_id=task_id)
    assert_whole(video.get_stream_source(), fake_server)
    assert frames.shape[0] == round(fake_server.video_seconds * fake_server.video_fps)
    assert fake_server.file_requests[0].header("Range") is None
    downloading = [t for t in status_texts if t.startswith("downloading")]
    assert downloading and all(" MB" in t and "%" not in t for t in downloading)
    assert all(isinstance(total, int) and total > 0 for total in bars)  # no bar for an unknown total


def test_a_gzipping_cdn_gives_the_decoded_file(env, fake_server, task_id):
    fake_server.file_encoding = "gzip"  # despite Accept-Encoding: identity; its length is the gzip's
    _, _, video, *_ = poll(task_id=task_id)
    assert_whole(video.get_stream_source(), fake_server)
    assert fake_server.file_requests[0].header("Accept-Encoding") == "identity"


def test_a_gzipped_download_that_breaks_starts_over(env, fake_server, task_id):
    fake_server.file_encoding = "gzip"
    fake_server.file_framing = "chunked"
    fake_server.cut_next_downloads(1)
    _, _, video, *_ = poll(task_id=task_id)
    assert_whole(video.get_stream_source(), fake_server)
    # byte offsets of a decoded body say nothing about the encoded one: no Range
    assert [r.header("Range") for r in fake_server.file_requests] == [None, None]


def test_a_203_from_a_proxy_is_a_success(env, fake_server, task_id):
    fake_server.file_status = 203
    _, _, video, *_ = poll(task_id=task_id)
    assert_whole(video.get_stream_source(), fake_server)


# --- a file is recorded only once proven whole --------------------------------------------------

@pytest.mark.parametrize("kind", ["empty", "html", "cut"])
def test_a_broken_body_is_kept_aside_and_fetched_again(env, fake_server, status_texts, caplog, kind):
    fake_server.break_next_files(kind)
    caplog.set_level(logging.WARNING, logger="cometapi_omni")

    async def chain():
        (request,) = await NODES["CometOmniPrompt"]().build(prompt="A fox", mode="pro", aspect_ratio="16:9",
                                                             duration=5)
        (task,), (_,) = (await NODES["CometOmniSubmit"]().submit(request=request, seed=0, unique_id="4"))["result"]
        return (await NODES["CometOmniPoll"]().poll(task=task, unique_id="5"))["result"]

    _, _, video, _, tid, _ = asyncio.run(chain())
    assert_whole(video.get_stream_source(), fake_server)
    assert fake_server.created_count == 1 and len(fake_server.file_requests) == 2
    (kept,) = kept_aside(Path(env["COMETAPI_OMNI_OUTPUT"]))
    assert kept.name.startswith(f"kling_{tid}.mp4.broken-")
    if kind == "html":
        assert kept.read_bytes().startswith(b"<html>")
    elif kind == "empty":
        assert kept.stat().st_size == 0
    else:
        assert 0 < kept.stat().st_size < Path(video.get_stream_source()).stat().st_size
    assert any(kept.name in r.getMessage() for r in caplog.records)
    assert any(kept.name in t for t in status_texts)


def test_a_host_that_keeps_serving_broken_bodies_gives_up_with_the_task_and_the_files(env, fake_server, task_id):
    fake_server.break_next_files("html", 100)
    with pytest.raises(errors.DownloadError) as err:
        poll(task_id=task_id)
    kept = kept_aside(Path(env["COMETAPI_OMNI_OUTPUT"]))
    assert 1 <= len(fake_server.file_requests) <= 3 and len(kept) == len(fake_server.file_requests)
    message = str(err.value)
    assert task_id in message and kept[-1].name in message and "paid" in message
    assert not (Path(env["COMETAPI_OMNI_OUTPUT"]) / "cometapi_omni" / f"kling_{task_id}.mp4").exists()


@pytest.mark.parametrize("damage", ["power cut", "html page", "cut file"])
def test_a_broken_file_on_disk_is_kept_aside_named_and_fetched_again(env, fake_server, task_id, status_texts,
                                                                       caplog, damage):
    _, _, video, _, _, old_url = poll(task_id=task_id)
    path = Path(video.get_stream_source())
    whole = path.read_bytes()
    damaged = {"power cut": b"", "html page": b"<html><body>Service Unavailable</body></html>",
               "cut file": whole[: len(whole) // 2]}[damage]
    path.write_bytes(damaged)  # what an earlier run (or an older version) left behind
    fake_server.expire_urls()  # and the URL in the journal has expired since
    fake_server.clear_records()
    caplog.set_level(logging.WARNING, logger="cometapi_omni")

    _, _, again, *_ = poll(task_id=task_id)
    assert Path(again.get_stream_source()) == path and path.read_bytes() == whole
    assert_whole(path, fake_server)
    (kept,) = kept_aside(path.parent)
    assert kept.read_bytes() == damaged and kept.name.startswith(f"kling_{task_id}.mp4.broken-")
    assert any(kept.name in r.getMessage() for r in caplog.records)
    assert any(kept.name in t for t in status_texts)
    assert fake_server.queries_of(task_id) >= 1 and len(fake_server.file_requests) == 1
    assert not old_url.endswith(fake_server.file_requests[0].path)  # a fresh URL, not the expired one
    # ...and from now on it is served from disk again, with no request
    fake_server.clear_records()
    poll(task_id=task_id)
    assert fake_server.requests == [] and fake_server.file_requests == []


def test_the_whole_file_check_catches_cuts_anywhere(fake_server, omni_client, task_id, tmp_path):
    url = omni_client.get_task(task_id).video.url
    whole = requests.get(url, timeout=5).content
    path = tmp_path / "v.mp4"
    path.write_bytes(whole)
    check_video(path)
    check_video(path, expected_size=len(whole))
    with pytest.raises(errors.BrokenVideo):
        check_video(path, expected_size=len(whole) + 1)
    for cut in [1, 7, 100, len(whole) // 3, len(whole) // 2, len(whole) - 900, len(whole) - 200,
                len(whole) - 1]:
        path.write_bytes(whole[:cut])
        with pytest.raises(errors.BrokenVideo):
            check_video(path)


# --- the timeout covers the download; Cancel still ends it at once -------------------------------

def test_a_trickling_host_ends_at_the_nodes_timeout_naming_the_task(env, fake_server, task_id, release_later):
    fake_server.file_trickle = (1, 1.5)  # one byte every 1.5 s: no read timeout ever fires
    release_later(6)
    started = time.monotonic()
    with pytest.raises(errors.WaitTimeout) as err:
        poll(task_id=task_id, timeout_minutes=1 / 60)  # 1 s
    assert time.monotonic() - started < 2.5
    assert isinstance(err.value, errors.WaitStopped) and err.value.task_id == task_id
    message = str(err.value)
    assert task_id in message and "paid" in message and "collect" in message
    assert "keeps running" not in message  # it is finished: only the download stopped


def test_cancel_during_a_trickle_ends_the_node_within_a_second(env, fake_server, task_id, monkeypatch):
    fake_server.file_trickle = (1, 1.5)
    pressed = threading.Event()
    pressed_at = []

    def press_cancel():
        fake_server.wait_until(lambda: fake_server.file_requests)
        pressed_at.append(time.monotonic())
        pressed.set()
    threading.Thread(target=press_cancel, daemon=True).start()
    monkeypatch.setattr(bridge, "interrupted", pressed.is_set)
    try:
        with pytest.raises(errors.DownloadCancelled) as err:
            poll(task_id=task_id)
        assert time.monotonic() - pressed_at[0] < 1.0
        assert task_id in str(err.value) and "paid" in str(err.value)
    finally:
        fake_server.release_delays()


# --- result URLs that must not be trusted ---------------------------------------------------------

@pytest.mark.parametrize("url", [
    "file:///etc/passwd?X-Amz-Signature=s3cr3t&t={token}",
    "ftp://cdn.example/{token}.mp4?X-Amz-Signature=s3cr3t",
    "javascript:alert(1)//{token}?X-Amz-Signature=s3cr3t",
    "http:///videos/{token}.mp4?X-Amz-Signature=s3cr3t",
])
def test_a_result_url_that_is_not_http_gets_a_clear_error_without_its_query(env, fake_server, task_id, url):
    fake_server.result_url = url
    with pytest.raises(errors.DownloadError) as err:
        poll(task_id=task_id)
    message = str(err.value) + "".join(str(c) for c in (err.value.__cause__, err.value.__context__) if c)
    assert task_id in str(err.value) and "http" in str(err.value)
    assert "s3cr3t" not in message and "Signature" not in message
    assert fake_server.file_requests == []


# --- the command line -------------------------------------------------------------------------------

def cli(*args, env, cwd=ROOT, umask=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "kling_omni", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, umask=-1 if umask is None else umask)


def environment(server, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMETAPI")}
    env.update(COMETAPI_BASE_URL=server.base_url, COMETAPI_OMNI_HOME=str(home), COMETAPI_KEY=server.key,
               PYTHONPATH=str(ROOT))
    return env


def test_cli_timeout_bounds_a_trickling_download(fake_server, task_id, tmp_path, release_later):
    fake_server.file_trickle = (1, 1.5)
    release_later(15)
    started = time.monotonic()
    done = cli("collect", task_id, "--out", str(tmp_path), "--timeout", "0.02", "--interval", "0.05",
               env=environment(fake_server, tmp_path / "home"))
    assert time.monotonic() - started < 12
    assert done.returncode == 1 and task_id in done.stderr and "paid" in done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.glob("*.mp4"))


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_the_mp4_follows_the_umask(fake_server, task_id, tmp_path, umask, mode):
    done = cli("collect", task_id, "--out", str(tmp_path / "videos"), "--interval", "0.05",
               env=environment(fake_server, tmp_path / "home"), umask=umask)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip().splitlines()[-1])
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_collect_out_here_records_an_absolute_path_found_from_anywhere(fake_server, task_id, tmp_path):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    env = environment(fake_server, tmp_path / "home")
    done = cli("collect", task_id, "--out", ".", "--interval", "0.05", env=env, cwd=here)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path.is_absolute() and path.parent == here
    listing = cli("tasks", env=env, cwd=elsewhere)
    assert listing.returncode == 0 and str(path) in listing.stdout


def test_a_host_broken_for_days_keeps_only_the_newest_broken_bodies(env, fake_server, task_id):
    """Each run (a Poll, the background collector's next round) fetches again; the disk must not fill."""
    fake_server.break_next_files("html", 100)
    for _ in range(3):  # three runs, three bodies each
        with pytest.raises(errors.DownloadError):
            poll(task_id=task_id)
    kept = kept_aside(Path(env["COMETAPI_OMNI_OUTPUT"]))
    assert len(fake_server.file_requests) > 3 and len(kept) == 3
