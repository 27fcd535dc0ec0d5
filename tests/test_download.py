"""download_file and fetch_video against the fake server's file host (a second port)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import av
import pytest
import requests

from fake_cometapi.server import API_PATH
from kling_omni import errors
from kling_omni.download import download_file
from kling_omni.waiting import fetch_video, wait_for_task
from tests.fakeserver_fixtures import fake_server, omni_client  # noqa: F401


@pytest.fixture
def finished(fake_server, omni_client):
    """A succeeded task's state, and the exact bytes its URL serves."""
    task_id = omni_client.create_task({"prompt": "x"}).task_id
    state = asyncio.run(wait_for_task(omni_client, task_id, interval=0.05, timeout=5))
    expected = requests.get(state.video.url, timeout=5).content
    fake_server.clear_records()  # count only the requests of the test itself
    return state, expected


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def no_leftovers(dest: Path) -> bool:
    return not any(dest.parent.glob("*.part"))


def test_plain_download_is_complete_and_reports_progress(fake_server, finished, tmp_path):
    state, expected = finished
    progress = []
    dest = download_file(state.video.url, tmp_path / "out.mp4", on_progress=lambda d, t: progress.append((d, t)),
                         chunk_size=4096)
    assert dest.read_bytes() == expected and no_leftovers(dest)
    assert progress[-1] == (len(expected), len(expected)) and len(progress) > 1
    assert frame_count(dest) == fake_server.video_seconds * fake_server.video_fps


def test_cut_connection_is_resumed_with_range(fake_server, finished, tmp_path):
    state, expected = finished
    fake_server.cut_next_downloads(2)  # the first answer and the first resumption both break
    dest = download_file(state.video.url, tmp_path / "out.mp4", chunk_size=1024)
    assert dest.read_bytes() == expected and no_leftovers(dest)
    ranges = [r.header("Range") for r in fake_server.file_requests]
    assert len(ranges) == 3 and ranges[0] is None
    first, second = (int(r.split("=")[1].rstrip("-")) for r in ranges[1:])
    assert 0 < first <= len(expected) // 2 < second < len(expected)
    assert frame_count(dest) == fake_server.video_seconds * fake_server.video_fps


def test_connection_that_keeps_breaking_fails_cleanly(fake_server, finished, tmp_path):
    state, _ = finished
    fake_server.cut_next_downloads(10)
    dest = tmp_path / "out.mp4"
    with pytest.raises(errors.DownloadError) as info:
        download_file(state.video.url, dest, attempts=3)
    assert "3 tries" in str(info.value)
    assert not dest.exists() and no_leftovers(dest)
    assert len(fake_server.file_requests) == 3


def test_expired_url_raises_url_expired(fake_server, finished, tmp_path):
    state, _ = finished
    fake_server.expire_urls()
    dest = tmp_path / "out.mp4"
    with pytest.raises(errors.UrlExpired) as info:
        download_file(state.video.url, dest)
    assert info.value.status == 403 and not dest.exists() and no_leftovers(dest)


def test_stop_cancels_between_chunks_and_removes_the_part(finished, tmp_path):
    state, _ = finished
    calls = []
    dest = tmp_path / "out.mp4"
    with pytest.raises(errors.DownloadCancelled):
        download_file(state.video.url, dest, chunk_size=1024, on_progress=lambda d, t: calls.append(d),
                      should_stop=lambda: len(calls) >= 2)
    assert len(calls) == 2 and not dest.exists() and no_leftovers(dest)


def test_a_session_with_the_key_does_not_leak_it_to_the_file_host(fake_server, finished, tmp_path):
    state, expected = finished
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {fake_server.key}"  # a careless caller
    dest = download_file(state.video.url, tmp_path / "out.mp4", session=session)
    assert dest.read_bytes() == expected
    assert all(r.header("Authorization") is None for r in fake_server.file_requests)


def test_fetch_video_never_sends_the_key_to_the_file_host(fake_server, omni_client, finished, tmp_path):
    state, expected = finished
    dest = asyncio.run(fetch_video(omni_client, state, tmp_path / "v.mp4"))
    assert dest.read_bytes() == expected
    assert fake_server.file_requests
    for request in fake_server.file_requests:
        assert request.header("Authorization") is None
        assert all(fake_server.key not in value for value in request.headers.values())
    # ...while every API request did carry it
    assert all(r.header("Authorization") == f"Bearer {fake_server.key}" for r in fake_server.requests)


def test_fetch_video_refreshes_an_expired_url_once(fake_server, omni_client, finished, tmp_path):
    state, expected = finished
    fake_server.expire_urls()
    dest = asyncio.run(fetch_video(omni_client, state, tmp_path / "v.mp4"))
    assert dest.read_bytes() == expected
    assert fake_server.queries_of(state.task_id) == 1
    old, new = fake_server.file_requests
    assert old.path != new.path and state.video.url.endswith(old.path)


def test_fetch_video_gives_up_after_one_refresh(fake_server, omni_client, finished, tmp_path):
    state, _ = finished
    fake_server.files_forbidden = True
    with pytest.raises(errors.DownloadError) as info:
        asyncio.run(fetch_video(omni_client, state, tmp_path / "v.mp4"))
    assert not isinstance(info.value, errors.UrlExpired)
    assert state.task_id in str(info.value) and "fresh" in str(info.value)
    assert fake_server.queries_of(state.task_id) == 1
    assert len(fake_server.file_requests) == 2


def test_fetch_video_resumes_a_cut_download(fake_server, omni_client, finished, tmp_path):
    state, expected = finished
    fake_server.cut_next_downloads(1)
    progress = []
    dest = asyncio.run(fetch_video(omni_client, state, tmp_path / "v.mp4",
                                   on_progress=lambda d, t: progress.append((d, t))))
    assert dest.read_bytes() == expected and len(fake_server.file_requests) == 2
    assert progress[-1] == (len(expected), len(expected))


async def _cancel_fetch(state, client, dest, stop, started):
    try:
        await fetch_video(client, state, dest, should_stop=stop.is_set,
                          on_progress=lambda d, t: started.set())
    except errors.DownloadCancelled as exc:
        return exc


def test_fetch_video_cancel(fake_server, omni_client, finished, tmp_path):
    state, _ = finished
    stop, started = threading.Event(), threading.Event()
    stop.set()  # cancelled before the first chunk arrives
    dest = tmp_path / "v.mp4"
    exc = asyncio.run(_cancel_fetch(state, omni_client, dest, stop, started))
    assert isinstance(exc, errors.DownloadCancelled)
    assert not dest.exists() and no_leftovers(dest)


async def _cancel_stalled_fetch(server, state, client, dest, stop):
    try:
        await fetch_video(client, state, dest, should_stop=stop.is_set)
    except errors.DownloadCancelled as exc:
        return exc, time.monotonic()
    finally:
        server.release_delays()  # let the abandoned download thread run out


def test_fetch_video_cancel_while_the_download_stalls(fake_server, omni_client, finished, tmp_path):
    state, _ = finished
    fake_server.file_stall = 30
    stop = threading.Event()
    stopped_at = []

    def cancel():
        fake_server.wait_until(lambda: fake_server.file_requests)
        stopped_at.append(time.monotonic())
        stop.set()
    threading.Thread(target=cancel, daemon=True).start()
    dest = tmp_path / "v.mp4"
    exc, raised_at = asyncio.run(_cancel_stalled_fetch(fake_server, state, omni_client, dest, stop))
    assert isinstance(exc, errors.DownloadCancelled) and raised_at - stopped_at[0] < 1.0
    assert not dest.exists()
    assert fake_server.wait_until(lambda: no_leftovers(dest))  # the abandoned thread cleans up


def test_api_path_is_not_served_by_the_file_host(fake_server):
    # The file host is a different origin: API routes do not exist there.
    r = requests.get(fake_server.files_base_url + API_PATH + "/1", timeout=5)
    assert r.status_code == 404
