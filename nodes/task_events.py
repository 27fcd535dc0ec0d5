"""Live task events for the Tasks sidebar: `cometapi_omni.task` with {"task_id": ..., "as_of": ...}.

ComfyUI sends a custom event to every page connected to its /ws, and /ws takes any page's
connection when ComfyUI listens beyond loopback. So an event carries no content (no prompt,
state or file name): only which task changed, and `as_of`, a read stamp taken when the event
leaves, after the change was written. The sidebar reads the row itself through
GET /cometapi_omni/tasks/{task_id}, which answers only ComfyUI's own page; a row it holds
whose as_of is not older already shows the change. An intent without a task id yet (being
sent) is announced as {"task_id": None, ...}: the sidebar reads its first page again.

A journal listener notes which task changed; a thread of its own sends the events, at most
one per task every GAP seconds (a download updates its row several times, a batch of
variations changes many rows at once). A change during the gap is not lost: the event that
leaves after it is stamped after it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from . import bridge, runtime
from .task_rows import read_stamp

log = logging.getLogger("cometapi_omni")
EVENT = "cometapi_omni.task"
GAP = 0.25  # seconds between two events about one task


class TaskEvents:
    """`send(event, data)` sends an event to every page."""

    def __init__(self, send: Callable[[str, dict], None], gap: float = GAP):
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
            self._send_event(EVENT, {"task_id": task_id, "as_of": read_stamp()})
        except Exception:  # a failed event costs a live update, never the thread
            log.exception("CometAPI Omni: could not send a task event")


def watch_journal() -> TaskEvents:
    """Send an event for every change of the nodes' journal (once, in a ComfyUI server)."""
    events = TaskEvents(lambda event, data: bridge.send_event(event, data))
    runtime.journal().subscribe(events.changed)
    return events
