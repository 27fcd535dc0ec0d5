"""The background collector (kling_omni.collector) in a running ComfyUI: its thread, wired to the bridge.

Started once when the pack loads inside a ComfyUI server; a daemon thread with its own event
loop, so it never waits on a prompt and a prompt never waits on it.
"""

from __future__ import annotations

import threading
from typing import Optional

from ..kling_omni.client import base_url_from_env
from ..kling_omni.collector import Collector, interval_from_env
from ..kling_omni.credentials import resolve_key
from ..kling_omni.errors import OmniError
from ..kling_omni.settings import load_settings  # background_collect is each machine's own
from . import bridge, runtime

_running: Optional[tuple] = None  # (collector, thread)
_guard = threading.Lock()


def start() -> Collector:
    """Start the collector (once); return it."""
    global _running
    with _guard:
        if _running is None:
            collector = Collector(journal=runtime.journal, client_factory=runtime.make_client,
                                  out_dir=bridge.output_dir, settings=lambda: load_settings(bridge.data_dir()),
                                  key=_current_key, base_url=base_url_from_env, interval=interval_from_env())
            thread = threading.Thread(target=collector.run, name="cometapi-omni-collector", daemon=True)
            thread.start()
            _running = (collector, thread)
        return _running[0]


def stop(timeout: float = 10.0) -> None:
    global _running
    with _guard:
        running, _running = _running, None
    if running is not None:
        collector, thread = running
        collector.stop()
        thread.join(timeout)


def want(task_id: str) -> None:
    """Hand a task to the collector now (the sidebar's "collect now")."""
    start().want(task_id)


def _current_key() -> Optional[str]:
    try:
        return resolve_key(bridge.data_dir())
    except OmniError:  # no key (or an unusable one): nothing to collect with
        return None
