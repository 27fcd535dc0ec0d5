"""The background collector: no paid video is left behind because nobody waited for it.

A Poll cancelled or timed out, a graph with a Submit and no Poll, a restart in between: each
leaves a journalled task whose video nobody fetches. While ComfyUI runs, this collector looks
at such tasks every `interval` seconds and fetches each finished video once, through the same
`collect_video` as Poll and the CLI, into the output folder.

- It looks at the tasks of the current key (or, for a row that does not say which key made it,
  of the current base URL) made within the last 30 days: those unfinished, and those that
  succeeded but were never saved. On a shared journal (several machines on one database), a
  task made on another machine whose collector runs with the task's key is left to that one;
  once that machine is gone, or its collector has no key or another one, it is collected here.
- An unfinished task costs one free status query per round and no lock, so a Poll that starts
  waiting for it is never held up; a finished one is collected under the task's lock, which it
  only tries: a task another collection holds (a Poll, the CLI) is skipped.
- At most AT_ONCE tasks at a time; a task whose collection failed is tried again later and
  less often, with one warning.
- The settings are read every round: turned off, it picks no new task. A task handed to it by
  `want` (the sidebar's "collect now") is collected whatever the settings and filters say.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from .collect import collect_video, is_collecting
from .credentials import key_id
from .errors import CollectionBusy, OmniError, TaskFailed, redact
from .journal import BaseJournal as Journal, Job
from .ledger import RETENTION_DAYS, days_ago
from .settings import PackSettings
from .task import SUCCEEDED

log = logging.getLogger("cometapi_omni")
INTERVAL_ENV = "COMETAPI_OMNI_COLLECT_SECONDS"
DEFAULT_INTERVAL = 15.0
AT_ONCE = 2
RETRY_CAP = 1800.0  # a failing task is tried again at most this far apart
COLLECT_TIMEOUT = 1800.0  # for one download, as a Poll's default


def interval_from_env(environ=None) -> float:
    environ = os.environ if environ is None else environ
    try:
        value = float(environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def is_ours(job: Job, current_key_id: str, base_url: str) -> bool:
    """Made with the current key; a row that does not say which key made it: sent to the current host."""
    if job.key_id:
        return job.key_id == current_key_id
    return job.base_url.rstrip("/") == base_url.rstrip("/")


def choose(jobs: Iterable[Job], *, current_key_id: str, base_url: str, skip: set) -> list:
    """The task ids to look at, of `jobs` (Journal.uncollected: oldest first): ours, not in `skip`,
    the finished ones first (their video is ready), then the oldest first (closest to expiry)."""
    mine = [j for j in jobs if j.task_id and j.task_id not in skip and is_ours(j, current_key_id, base_url)]
    return [j.task_id for j in sorted(mine, key=lambda j: j.state != SUCCEEDED)]


@dataclass
class _Retry:
    failures: int = 0


class Collector:
    """Every argument but `interval` is a callable, asked again each round (a setting, the key or
    the output folder may change while ComfyUI runs). `key()` is the current key or None."""

    def __init__(self, *, journal: Callable[[], Journal], client_factory: Callable, out_dir: Callable,
                 settings: Callable[[], PackSettings], key: Callable[[], Optional[str]],
                 base_url: Callable[[], str], interval: float = DEFAULT_INTERVAL):
        self._journal = journal
        self._client_factory = client_factory
        self._out_dir = out_dir
        self._settings = settings
        self._key = key
        self._base_url = base_url
        self.interval = interval
        self._stop = threading.Event()
        self._guard = threading.Lock()  # the fields below are shared with other threads
        self._pinned: list = []  # handed over by `want`, in that order
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._wake: Optional[asyncio.Event] = None
        # touched only in the collector's own loop:
        self._running: dict = {}  # task id -> asyncio.Task
        self._not_before: dict = {}  # task id -> monotonic time before which it is not looked at again
        self._retries: dict = {}  # task id -> _Retry
        self._done: set = set()  # collected, or failed, in this run

    # --- from any thread ---------------------------------------------------------------

    def want(self, task_id: str) -> None:
        """Collect this task now, whatever the interval, a backoff, the settings and the filters say."""
        with self._guard:
            if task_id not in self._pinned:
                self._pinned.append(task_id)
        self._poke(task_id)

    def run(self) -> None:
        """The collector's own thread: its own event loop, until stop()."""
        asyncio.run(self._main())

    def stop(self) -> None:
        self._stop.set()
        self._poke()

    def _poke(self, task_id: Optional[str] = None) -> None:
        """Wake the loop; with a task id, first forget when it may be looked at again."""
        with self._guard:
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                if task_id is not None:
                    loop.call_soon_threadsafe(self._unblock, task_id)
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop has just ended
                pass

    def _unblock(self, task_id: str) -> None:
        self._not_before.pop(task_id, None)
        self._done.discard(task_id)  # e.g. its file was deleted since: fetched again

    # --- the loop ----------------------------------------------------------------------

    async def _main(self) -> None:
        with self._guard:
            self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        try:
            trouble = ""
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    self._start_some()
                    trouble = ""
                except Exception as exc:  # e.g. an unreadable journal: said once, tried again next round
                    if str(exc) != trouble:
                        trouble = str(exc)
                        log.warning("CometAPI Omni: background collection cannot pick tasks: %s", redact(trouble))
                try:
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                except asyncio.TimeoutError:
                    pass
        finally:
            with self._guard:
                self._loop = self._wake = None
            for job in self._running.values():
                job.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    def _start_some(self) -> None:
        free = AT_ONCE - len(self._running)
        if free <= 0:
            return
        journal = self._journal()
        for task_id in self._candidates(journal):
            if free <= 0:
                break
            if is_collecting(journal, task_id):  # a Poll or the CLI has it
                continue
            job = journal.by_task(task_id)
            ready = job is not None and job.state == SUCCEEDED
            self._running[task_id] = asyncio.ensure_future(self._collect(journal, task_id, ready))
            self._running[task_id].add_done_callback(lambda _, tid=task_id: self._finished(tid))
            free -= 1

    def _candidates(self, journal: Journal) -> list:
        now = time.monotonic()
        with self._guard:
            pinned = list(self._pinned)
        skip = set(self._running) | self._done | {t for t, at in self._not_before.items() if at > now}
        chosen = [t for t in pinned if t not in skip]
        key = self._key() if self._settings().background_collect else None
        if not key:
            journal.announce_collector("")  # it collects nothing: the other machines must not leave tasks to it
            return chosen
        current, base_url = key_id(key), self._base_url()
        # On a shared journal: the other machines leave to this one the tasks it collects, those of its key.
        journal.announce_collector(current, base_url)
        jobs = journal.collectable_here(journal.uncollected(days_ago(RETENTION_DAYS)))
        return chosen + choose(jobs, current_key_id=current, base_url=base_url, skip=skip | set(chosen))

    def _finished(self, task_id: str) -> None:
        self._running.pop(task_id, None)
        if self._wake is not None and not self._stop.is_set():
            self._wake.set()  # a slot is free

    # --- one task ------------------------------------------------------------------------

    async def _collect(self, journal: Journal, task_id: str, ready: bool) -> None:
        try:
            if not ready:
                state = await asyncio.to_thread(self._look, task_id)
                if not state.done:
                    job = journal.by_task(task_id)
                    if job is not None and job.state != state.status:
                        journal.update_task(task_id, state=state.status)  # the sidebar shows it live
                    self._later(task_id, self.interval)
                    return
            collected = await collect_video(task_id, journal, self._client_factory, self._out_dir(),
                                            timeout=COLLECT_TIMEOUT, interval=self.interval, wait_for_lock=False)
            if not collected.from_disk:
                log.info("CometAPI Omni: collected task %s in the background: %s", task_id, collected.path)
            self._settled(task_id)
        except CollectionBusy:
            self._later(task_id, self.interval)  # a Poll or the CLI took it meanwhile
        except TaskFailed as failed:
            log.info("CometAPI Omni: %s", failed)  # journalled by collect_video
            self._settled(task_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(task_id, exc)

    def _look(self, task_id: str):
        with self._client_factory() as client:
            return client.get_task(task_id)

    def _later(self, task_id: str, seconds: float) -> None:
        self._not_before[task_id] = time.monotonic() + seconds

    def _settled(self, task_id: str) -> None:
        self._unpin(task_id)
        self._done.add(task_id)
        self._retries.pop(task_id, None)
        self._not_before.pop(task_id, None)

    def _unpin(self, task_id: str) -> None:
        with self._guard:
            if task_id in self._pinned:
                self._pinned.remove(task_id)

    def _failed(self, task_id: str, exc: Exception) -> None:
        self._unpin(task_id)  # asked for once; from now on like any other task
        retry = self._retries.setdefault(task_id, _Retry())
        retry.failures += 1
        delay = min(RETRY_CAP, self.interval * 2 ** min(retry.failures, 20))
        self._later(task_id, delay)
        if retry.failures == 1:  # once per task: a host that is down is not a log storm
            what = str(exc) if isinstance(exc, OmniError) else f"{type(exc).__name__}: {exc}"
            log.warning("CometAPI Omni: background collection of task %s failed (%s). It is tried again later, "
                        "less and less often; or collect it with a Poll node or `python -m kling_omni collect %s`.",
                        task_id, redact(what, self._key()), task_id)
