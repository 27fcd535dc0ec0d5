"""pytest fixtures around the project's fake CometAPI (import them from conftest.py).

- fake_server: a running FakeCometAPI, tasks finish at once, small 1 s clip; stopped after the test.
- omni_client: an OmniClient pointed at it with short timeouts.
- fast_backoff: a Backoff measured in hundredths of a second, for retry tests.
"""

from __future__ import annotations

import pytest

from fake_cometapi.server import FakeCometAPI

# kling_omni is imported inside the fixtures: this module may be loaded before conftest has
# aliased the pack's library as `kling_omni`, and a second copy would split the error classes.


def point_pack_at(server, tmp_path, monkeypatch, **extra) -> dict:
    """The environment the pack reads, pointed at `server`: its key and URL, a journal and an output
    folder under tmp_path, a quick poll interval. Returns the values set."""
    values = {"COMETAPI_KEY": server.key, "COMETAPI_BASE_URL": server.base_url,
              "COMETAPI_OMNI_HOME": str(tmp_path / "home"), "COMETAPI_OMNI_OUTPUT": str(tmp_path / "output"),
              "COMETAPI_OMNI_POLL_SECONDS": "0.02", **extra}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def fake_server():
    with FakeCometAPI(key="test-key-123") as server:
        yield server


@pytest.fixture
def omni_client(fake_server):
    from kling_omni.client import OmniClient

    client = OmniClient(fake_server.key, fake_server.base_url, timeout=(2, 5))
    yield client
    client.close()


@pytest.fixture
def fast_backoff():
    from kling_omni.waiting import Backoff

    return Backoff(base=0.01, cap=0.05, jitter=0.005)
