"""Collect a task's video: from disk if we already have it (and it is whole), else wait,
download, record.

The one path the Poll node and `python -m kling_omni collect` share.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .download import set_aside
from .errors import BrokenVideo, TaskFailed
from .journal import Journal
from .task import FAILED, SUCCEEDED, TaskState, check_task_id
from .verify import check_video
from .waiting import fetch_video, notice, wait_for_task


@dataclass(frozen=True)
class Collected:
    task_id: str
    path: Path
    video_url: str
    from_disk: bool  # True: no request, no download


def video_path(out_dir: Path, task_id: str) -> Path:
    """One file per task id, by an absolute path (the journal is read from other folders too)."""
    check_task_id(task_id, "collect", "task_id")
    return Path(out_dir).absolute() / f"kling_{task_id}.mp4"


_collecting: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


def _lock(task_id: str) -> asyncio.Lock:
    # One collection of a task at a time in this event loop (ComfyUI makes one per prompt):
    # a second Poll of the same task waits, then finds the video on disk.
    key = (id(asyncio.get_running_loop()), task_id)
    lock = _collecting.get(key)
    if lock is None:
        lock = _collecting[key] = asyncio.Lock()
    return lock


async def collect_video(task_id: str, journal: Journal, client_factory: Callable, out_dir: Path, *,
                        timeout: float = 1800.0, interval: float = 5.0,
                        on_update: Optional[Callable] = None, on_download: Optional[Callable] = None,
                        should_stop: Optional[Callable] = None, on_notice: Optional[Callable] = None) -> Collected:
    """`timeout` seconds bound all of it: the wait, the download, a fresh query for an expired URL."""
    deadline = time.monotonic() + timeout
    dest = video_path(out_dir, task_id)
    async with _lock(task_id):
        job = journal.by_task(task_id)
        if job is not None and job.state == SUCCEEDED and job.video_on_disk is not None:
            saved = job.video_on_disk
            try:
                await asyncio.to_thread(check_video, saved)
                return Collected(task_id, saved, job.video_url, from_disk=True)
            except BrokenVideo as broken:  # a power cut, an older version's error page: never deleted
                kept = set_aside(saved, saved)
                notice(on_notice, f"The saved video of task {task_id} is damaged ({broken.problem}); "
                                  f"kept it as {kept} and fetching it again.")
        with client_factory() as client:
            return await _wait_and_fetch(task_id, journal, client, dest, deadline=deadline, interval=interval,
                                         on_update=on_update, on_download=on_download, should_stop=should_stop,
                                         on_notice=on_notice)


async def _wait_and_fetch(task_id, journal, client, dest, *, deadline, interval, on_update, on_download,
                          should_stop, on_notice) -> Collected:
    last = {"status": None}

    def update(state: TaskState, elapsed: float) -> None:
        if state.raw_status and state.status != last["status"]:  # a real answer, not the stand-in
            last["status"] = state.status
            journal.adopt(task_id, base_url=client.base_url)  # so a mistyped id leaves no row
            journal.update_task(task_id, state=state.status)
        if on_update is not None:
            on_update(state, elapsed)

    try:
        state = await wait_for_task(client, task_id, timeout=max(0.0, deadline - time.monotonic()),
                                    interval=interval, on_update=update, should_stop=should_stop)
    except TaskFailed as exc:
        journal.adopt(task_id, base_url=client.base_url)
        journal.update_task(task_id, state=FAILED, message=exc.reason)
        raise
    journal.adopt(task_id, base_url=client.base_url)
    journal.update_task(task_id, state=SUCCEEDED, video_url=state.video.url,
                        unit_deduction=state.unit_deduction or "")
    path = await fetch_video(client, state, dest, on_progress=on_download, should_stop=should_stop,
                             timeout=max(0.0, deadline - time.monotonic()), on_notice=on_notice)
    journal.update_task(task_id, video_path=str(path))
    return Collected(task_id, path, state.video.url, from_disk=False)
