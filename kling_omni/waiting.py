"""Wait for a task and fetch its video: the one loop every node and the CLI use.

Like ComfyUI's poll_op: blocking HTTP runs in a thread so many waits share one event
loop; the loop wakes at least every SLICE seconds to report progress and to notice a
cancel, even while a request is still in flight (the thread is then abandoned: its
answer no longer matters, and its own timeout ends it).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from . import errors
from .download import download_file
from .task import ENDED, FAILED, QUEUED, SUCCEEDED, TaskState

SLICE = 0.25  # seconds between cancel checks; on_update runs at most every UPDATE_EVERY
UPDATE_EVERY = 0.5
BROKEN_BODY_TRIES = 3  # whole bodies that are not a whole video, before a download gives up

log = logging.getLogger("cometapi_omni")

# Not the event loop's default executor: asyncio.run() joins that one on exit, and ComfyUI
# runs each prompt in asyncio.run(), so an abandoned request would hold up the end of a
# cancelled prompt until its own timeout.
POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="kling-omni-wait")


def _in_thread(fn, *args, **kwargs) -> asyncio.Future:
    """Like asyncio.to_thread (context included), on the pack's own pool."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return asyncio.get_running_loop().run_in_executor(POOL, call)


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (0-based) after a retryable error: min(cap, base*2^n) plus up to `jitter` s.

    The server's Retry-After, when the answer had one, replaces the exponential part.
    """

    base: float = 1.0
    cap: float = 30.0
    jitter: float = 1.0

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        wait = min(self.cap, self.base * (2 ** min(attempt, 30))) if retry_after is None else retry_after
        return wait + random.uniform(0, self.jitter)


DEFAULT_BACKOFF = Backoff()


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, errors.NetworkError) or bool(getattr(exc, "retryable", False))


class _Watch:
    """Cancel and deadline checks, and throttled progress reports, for one wait."""

    def __init__(self, task_id: str, *, on_update=None, should_stop=None, timeout: Optional[float] = None,
                 cancelled: Optional[Callable[[], Exception]] = None,
                 timed_out: Optional[Callable[[], Exception]] = None):
        self.task_id = task_id
        self.on_update = on_update
        self.should_stop = should_stop
        self.timeout = timeout
        self.start = time.monotonic()
        self.deadline = None if timeout is None else self.start + timeout
        self.cancelled = cancelled or (lambda: errors.WaitCancelled(task_id))
        self.timed_out = timed_out or (lambda: errors.WaitTimeout(task_id, timeout))
        self.state = TaskState(task_id=task_id, status=QUEUED)  # until the server says otherwise
        self._last_update = -1e9

    def report(self, state: Optional[TaskState] = None) -> None:
        """on_update now if the state changed, else at most every UPDATE_EVERY seconds."""
        now = time.monotonic()
        changed = state is not None and (state.raw_status, state.progress) != (self.state.raw_status,
                                                                                  self.state.progress)
        if state is not None:
            self.state = state
        if self.on_update is not None and (changed or now - self._last_update >= UPDATE_EVERY):
            self._last_update = now
            self.on_update(self.state, now - self.start)

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise self.cancelled()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise self.timed_out()

    async def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.check()
            self.report()
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(SLICE, left))

    async def run(self, fn, *args):
        """fn(*args) in a thread, raced against cancel and the deadline."""
        job = _in_thread(fn, *args)
        try:
            while True:
                done, _ = await asyncio.wait({job}, timeout=SLICE)
                if done:
                    return job.result()
                self.check()
                self.report()
        finally:
            if not job.done():  # abandoned: collect its outcome quietly whenever it comes
                job.add_done_callback(lambda j: j.cancelled() or j.exception())


async def wait_for_task(client, task_id: str, *, timeout: float = 1800.0, interval: float = 5.0,
                        on_update: Optional[Callable[[TaskState, float], None]] = None,
                        should_stop: Optional[Callable[[], bool]] = None,
                        backoff: Optional[Backoff] = None) -> TaskState:
    """Poll until the task ends; return its succeeded TaskState (with a video URL).

    Raises TaskFailed, WaitCancelled, WaitTimeout, UnexpectedResponse (success without a
    video), or the first non-retryable ApiError. Retryable errors (429, 5xx, network)
    back off and keep polling until the timeout.
    """
    backoff = backoff or DEFAULT_BACKOFF  # read now, so a process-wide setting applies
    watch = _Watch(task_id, on_update=on_update, should_stop=should_stop, timeout=timeout)
    failures = 0
    last_error = None
    try:
        watch.check()
        watch.report()
        while True:
            try:
                state = await watch.run(client.get_task, task_id)
            except errors.OmniError as exc:
                if not _retryable(exc):
                    raise
                last_error = exc
                delay = backoff.delay(failures, getattr(exc, "retry_after", None))
                failures += 1
            else:
                last_error = None
                failures = 0
                watch.report(state)
                if state.status == SUCCEEDED:
                    if state.video is None or not state.video.url:
                        raise errors.UnexpectedResponse(
                            f"Task {task_id} succeeded but CometAPI's answer holds no video URL "
                            f"(status {state.raw_status!r}).")
                    return state
                if state.status in (FAILED, ENDED):
                    raise errors.TaskFailed(task_id, state.message, status=state.status)
                delay = interval
            await watch.sleep(delay)
    except errors.WaitTimeout as timeout_error:
        if last_error is not None:  # say why the last queries did not get through
            raise timeout_error from last_error
        raise


def notice(on_notice: Optional[Callable[[str], None]], text: str) -> None:
    """Something the user should know that is not an error: logged, and shown where on_notice says."""
    log.warning("%s", text)
    if on_notice is not None:
        on_notice(text)


async def fetch_video(client, state: TaskState, dest, *,
                      on_progress: Optional[Callable[[int, Optional[int]], None]] = None,
                      should_stop: Optional[Callable[[], bool]] = None, session=None,
                      timeout: Optional[float] = None, on_notice: Optional[Callable[[str], None]] = None) -> Path:
    """Download a succeeded task's video to `dest`, proven whole.

    An expired URL: ask the task once for a fresh one. A body that is not a whole video: keep it
    aside, say so, fetch again (BROKEN_BODY_TRIES bodies at most). `timeout` seconds bound all of
    it (DownloadTimeout); should_stop() ends it within SLICE (DownloadCancelled).
    """
    task_id = state.task_id
    dest = Path(dest)
    received = (0, None)

    def progress(done: int, total: Optional[int]) -> None:
        nonlocal received
        received = (done, total)
        if on_progress is not None:
            on_progress(done, total)

    def timed_out() -> Exception:
        done, total = received
        return errors.DownloadTimeout(task_id, timeout, f"{done} of {total} bytes arrived" if total
                                      else f"{done} bytes arrived")

    watch = _Watch(task_id, should_stop=should_stop, timeout=timeout, timed_out=timed_out,
                   cancelled=lambda: errors.DownloadCancelled(f"Download of task {task_id} cancelled."))
    if state.video is None or not state.video.url:
        raise errors.DownloadError(f"Task {task_id} has no video URL to download.")
    url = state.video.url
    refreshed = False
    kept = []
    while True:
        try:
            return await _download(watch, url, dest, progress, session)
        except errors.UrlExpired as expired:
            if refreshed:
                raise errors.DownloadError(
                    f"The video of task {task_id} could not be downloaded: its URL answered HTTP {expired.status} "
                    f"even after a fresh query. Kling deletes results after 30 days.") from expired
            refreshed = True
            url = await _fresh_url(watch, client, task_id, expired)
        except errors.BrokenVideo as broken:
            kept.append(broken.kept)
            if len(kept) >= BROKEN_BODY_TRIES:
                raise errors.DownloadError(
                    f"The file host served the video of task {task_id} broken {len(kept)} times in a row "
                    f"(last: {broken.problem}). Kept as {', '.join(k.name for k in kept)} in {dest.parent}. "
                    f"Task {task_id} is finished and paid for: queue again later, put {task_id} in a "
                    f"CometOmniPoll task_id, or run `python -m kling_omni collect {task_id}`.") from broken
            notice(on_notice, f"The file host served a broken video for task {task_id} ({broken.problem}); "
                              f"kept it as {broken.kept} and fetching it again.")
        except errors.DownloadError as exc:  # the file host's answer: say which task it is about
            raise errors.DownloadError(f"Task {task_id}: {exc}") from exc


async def _fresh_url(watch: _Watch, client, task_id: str, expired: errors.UrlExpired) -> str:
    try:
        fresh = await watch.run(client.get_task, task_id)
    except (errors.DownloadTimeout, errors.DownloadCancelled):
        raise
    except errors.OmniError as exc:
        raise errors.DownloadError(f"The video URL of task {task_id} expired ({expired}) and asking CometAPI "
                                   f"for a fresh one failed: {exc}") from exc
    if fresh.video is None or not fresh.video.url:
        raise errors.DownloadError(f"The video URL of task {task_id} expired and CometAPI's answer holds no "
                                   f"new one (status {fresh.raw_status!r}).")
    return fresh.video.url


async def _download(watch: _Watch, url: str, dest: Path, on_progress, session) -> Path:
    """download_file in a thread, raced against cancel and the deadline. An abandoned thread stops at
    its next chunk and removes its .part file."""
    abandoned = threading.Event()

    def stop() -> bool:
        return abandoned.is_set() or (watch.should_stop is not None and watch.should_stop())

    try:
        return await watch.run(functools.partial(download_file, url, dest, on_progress=on_progress,
                                                 should_stop=stop, session=session))
    finally:
        abandoned.set()
