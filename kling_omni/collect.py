"""Collect a task's video: from disk if we already have it (and it is whole), else wait,
download, record.

The one path the Poll node, `python -m kling_omni collect` and the background collector
share. Each collection holds the task's lock (kling_omni.locks in the journal's folder; an
advisory lock of the database for a shared journal) from the first look at the journal to the
recorded file, so two of them never race: Poll and the CLI wait for it, the background
collector skips a task whose lock is held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .download import set_aside
from .errors import BrokenVideo, BusyTimeout, CollectionBusy, JournalError, OmniError, TaskFailed, WaitCancelled
from .journal import BaseJournal as Journal
from .task import SUCCEEDED, TaskState, check_task_id
from .verify import check_video
from .waiting import fetch_video, notice, wait_for_task

log = logging.getLogger("cometapi_omni")


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


def task_lock(journal: Journal, task_id: str):
    """The journal's lock for one collection of this task: a file lock beside a SQLite journal, an
    advisory lock of the database for a shared one."""
    return journal.task_lock(task_id)


def is_collecting(journal: Journal, task_id: str) -> bool:
    """True while a collection of this task runs, in this process or another (or on another machine)."""
    return journal.is_collecting(task_id)


async def collect_video(task_id: str, journal: Journal, client_factory: Callable, out_dir: Path, *,
                        timeout: float = 1800.0, interval: float = 5.0,
                        on_update: Optional[Callable] = None, on_download: Optional[Callable] = None,
                        should_stop: Optional[Callable] = None, on_notice: Optional[Callable] = None,
                        wait_for_lock: bool = True) -> Collected:
    """`timeout` seconds bound all of it: waiting for the lock, for the task, the download, a fresh
    query for an expired URL. With `wait_for_lock` False, a task another collection holds raises
    CollectionBusy at once, before any request."""
    deadline = time.monotonic() + timeout
    dest = video_path(out_dir, task_id)
    lock = await _take_lock(task_lock(journal, task_id), task_id, deadline, timeout, wait_for_lock, should_stop,
                            on_notice)
    finished = False  # on disk, or failed: the task needs no more collecting
    try:
        job = _known(journal, task_id)
        saved = job.video_here(journal.machine) if job is not None and job.state == SUCCEEDED else None
        if saved is not None:
            try:
                await asyncio.to_thread(check_video, saved)
                finished = True
                return Collected(task_id, saved, job.video_url, from_disk=True)
            except BrokenVideo as broken:  # a power cut, an older version's error page: never deleted
                kept = set_aside(saved, saved)
                notice(on_notice, f"The saved video of task {task_id} is damaged ({broken.problem}); "
                                  f"kept it as {kept} and fetching it again.")
        with client_factory() as client:
            collected = await _wait_and_fetch(task_id, journal, client, dest, deadline=deadline, interval=interval,
                                              on_update=on_update, on_download=on_download,
                                              should_stop=should_stop, on_notice=on_notice)
        finished = True
        return collected
    except TaskFailed:
        finished = True
        raise
    finally:
        if lock is not None:
            lock.release(remove=finished)


def _known(journal: Journal, task_id: str):
    """The journal's row of the task, or None when the journal cannot be read now: the video is then
    fetched all the same (the notes made on the way only warn), never withheld."""
    try:
        return journal.by_task(task_id)
    except JournalError as exc:
        log.warning("%s Collecting task %s without it.", exc, task_id)
        return None


async def _take_lock(lock, task_id: str, deadline: float, timeout: float, wait: bool, should_stop,
                     on_notice):
    """The task's lock, held; None when no lock can be taken (a read-only data folder, a database that
    cannot be reached)."""
    try:
        if lock.try_acquire():
            return lock
    except OSError as exc:
        if not wait:  # the collector: it could not record what it fetched either
            raise OmniError(f"Cannot take the collection lock of task {task_id} in {lock.where} "
                            f"({exc.strerror or exc}).") from None
        log.warning("Cannot take the collection lock of task %s in %s (%s): collecting it without one.",
                    task_id, lock.where, exc.strerror or exc)
        return None
    if not wait:
        raise CollectionBusy(task_id)
    told = []

    def waiting() -> None:
        if not told:
            told.append(True)
            notice(on_notice, f"Task {task_id}: waiting, another collection of this task is running (another "
                              f"Poll, the command line or the background collector); its video is used once saved.")

    def stopped() -> bool:
        return should_stop is not None and should_stop()

    try:
        if await lock.acquire(should_stop=lambda: stopped() or time.monotonic() >= deadline, on_wait=waiting):
            return lock
    except OSError as exc:  # the lock folder went away meanwhile (or the database)
        log.warning("Cannot take the collection lock of task %s in %s (%s): collecting it without one.",
                    task_id, lock.where, exc.strerror or exc)
        return None
    if stopped():
        raise WaitCancelled(task_id)
    raise BusyTimeout(task_id, timeout)


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
        journal.update_task(task_id, state=exc.status, message=exc.reason)
        raise
    journal.adopt(task_id, base_url=client.base_url)
    journal.update_task(task_id, state=SUCCEEDED, video_url=state.video.url,
                        unit_deduction=state.unit_deduction or "")
    path = await fetch_video(client, state, dest, on_progress=on_download, should_stop=should_stop,
                             timeout=max(0.0, deadline - time.monotonic()), on_notice=on_notice)
    journal.update_task(task_id, video_path=str(path))
    return Collected(task_id, path, state.video.url, from_disk=False)
