import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for fake_cometapi and scripts; the pack itself loads below

from scripts.load_pack import load_pack  # noqa: E402

load_pack()

from tests.fakeserver_fixtures import fake_server, omni_client, fast_backoff, point_pack_at  # noqa: E402,F401
from tests.pg_fixtures import database_url, postgres  # noqa: E402,F401
from cometapi_kling_omni.nodes import bridge, runtime  # noqa: E402


@pytest.fixture
def env(fake_server, tmp_path, monkeypatch):
    """The pack pointed at the fake server, with a journal and an output folder of this test's own."""
    values = point_pack_at(fake_server, tmp_path, monkeypatch)
    runtime._journal_at.cache_clear()
    return values


@pytest.fixture
def texts(monkeypatch):
    """Every status text the nodes show, as (node id, text), in order."""
    shown = []
    monkeypatch.setattr(bridge, "progress_text", lambda node_id, text: shown.append((node_id, text)))
    return shown


@pytest.fixture
def status_texts(monkeypatch):
    """Every status text the nodes show, in order."""
    shown = []
    monkeypatch.setattr(bridge, "progress_text", lambda node_id, text: shown.append(text))
    return shown


@pytest.fixture(autouse=True)
def _fresh_pace():
    """What one test's fake account taught about its limit must not slow down the next test."""
    from kling_omni import submission

    submission.PACE.forget()
    yield
