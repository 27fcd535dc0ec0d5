"""Live task events for the Tasks sidebar: `cometapi_omni.task` with {"task": TaskRow}.

A journal listener notes which task changed; a thread of its own builds the row and sends
it, at most one event per task every GAP seconds (a download updates its row several times,
a batch of variations changes many rows at once). A change during the gap is not lost: the
row is built when the event leaves, so the last event of a burst shows the last state. A row
without a task id (an intent being sent) is announced as {"task": None}: the sidebar then
fetches its page again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from ..kling_omni.collect import is_collecting
from ..kling_omni.settings import load_settings
from . import bridge, runtime
from .task_rows import read_stamp, task_row

log = logging.getLogger("cometapi_omni")
EVENT = "cometapi_omni.task"
GAP = 0.25  # seconds between two events about one task


class TaskEvents:
    """`row(task_id)` builds the TaskRow (None: no such row); `send(event, data)` sends it."""

    def __init__(self, row: Callable[[str], Optional[dict]], send: Callable[[str, dict], None], gap: float = GAP):
        self._row = row
        self._send_event = send
        self.gap = gap
        self._changed = threading.Condition()
        self._due: dict = {}  # task id (or None) -> monotonic time its event leaves
        self._last: dict = {}  # task id (or None) -> monotonic time of its last event
        self._thread: Optional[threading.Thread] = None

    def changed(self, task_id: Optional[str]) -> None:
        """The journal listener: cheap, from any thread."""
        with self._changed:
            if task_id in self._due:
                return  # already on its way, and built when it leaves
            self._due[task_id] = max(time.monotonic(), self._last.get(task_id, -1e9) + self.gap)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cometapi-omni-events", daemon=True)
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    now = time.monotonic()
                    leaving = [t for t, at in self._due.items() if at <= now]
                    if leaving:
                        break
                    self._changed.wait(min(self._due.values()) - now if self._due else None)
                for task_id in leaving:
                    del self._due[task_id]
                    self._last[task_id] = now
                self._last = {t: at for t, at in self._last.items() if now - at < self.gap}  # only the recent
            for task_id in leaving:
                self._send(task_id)

    def _send(self, task_id: Optional[str]) -> None:
        try:
            row = self._row(task_id) if task_id is not None else None
            self._send_event(EVENT, {"task": row})
        except Exception:  # a failed event costs a live update, never the thread
            log.exception("CometAPI Omni: could not send a task event")


def current_row(task_id: str) -> Optional[dict]:
    """The TaskRow of a task as the routes show it, from the nodes' journal and settings."""
    journal = runtime.journal()
    now = read_stamp()  # before the read: see TaskRow.as_of
    job = journal.by_task(task_id)
    if job is None:
        return None
    settings = load_settings(bridge.data_dir())
    return task_row(job, settings.rates, now, bridge.output_root(), is_collecting(journal, task_id))


def watch_journal() -> TaskEvents:
    """Send an event for every change of the nodes' journal (once, in a ComfyUI server)."""
    events = TaskEvents(current_row, lambda event, data: bridge.send_event(event, data))
    runtime.journal().subscribe(events.changed)
    return events
