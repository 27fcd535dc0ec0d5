"""What every node shares: the journal and a client, both found through the bridge.

The journal is the SQLite file in the data folder, or the shared one on PostgreSQL when
COMETAPI_OMNI_DATABASE_URL is set (kling_omni.store chooses).
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

from ..kling_omni.client import OmniClient, base_url_from_env
from ..kling_omni.credentials import resolve_key
from ..kling_omni import store
from ..kling_omni.journal import BaseJournal
from ..kling_omni.settings import PackSettings
from . import bridge

CATEGORY = "CometAPI/Kling Omni"
log = logging.getLogger("cometapi_omni")


@lru_cache(maxsize=None)
def _journal_at(data_dir: Path, url: str) -> BaseJournal:
    return store.open_journal(data_dir, url=url)


def journal() -> BaseJournal:
    return _journal_at(bridge.data_dir(), store.database_url())


def say_where() -> None:
    """Once at start-up: where the journal is, when it is shared (the log then shows which database and machine)."""
    shared = journal()
    if shared.machine:
        log.info("CometAPI Omni: the journal, the daily limit, the rates, the tasks in flight and the task locks are "
                 "shared through %s; this machine is %s (COMETAPI_OMNI_MACHINE).", shared.path, shared.machine)


def make_client() -> OmniClient:
    """Called only when a request must be sent, so journalled work needs no key."""
    return OmniClient(resolve_key(bridge.data_dir()), base_url_from_env())


def settings() -> PackSettings:
    """Settings › CometAPI as stored on the server (read each time: the user may change them any moment)."""
    return store.load_settings(bridge.data_dir())


def poll_interval() -> float:
    # Not a widget: a sensible constant for users, shortened by tests and the demo.
    return float(os.environ.get("COMETAPI_OMNI_POLL_SECONDS", "5"))


def label(node_class: str, unique_id) -> str:
    return f"{node_class} #{unique_id}" if unique_id not in (None, "") else node_class


def test_key(key: str) -> tuple:
    """The settings panel's "Test key": one cheap authenticated request.

    Asking for a task that cannot exist costs nothing. The contract leaves open how an unknown
    id is answered (404, or a 400 such as code 1201): either means the key got past the door.
    """
    from ..kling_omni.errors import BadRequest, NotFound, OmniError
    with OmniClient(key, base_url_from_env()) as client:
        try:
            client.get_task("0")
        except (NotFound, BadRequest):
            pass
        except OmniError as exc:
            return False, str(exc)
    return True, f"CometAPI accepted the key ({client.base_url})."
