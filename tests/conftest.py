import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for fake_cometapi and scripts; the pack itself loads below

from scripts.load_pack import load_pack  # noqa: E402

load_pack()

from tests.fakeserver_fixtures import fake_server, omni_client, fast_backoff  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _fresh_pace():
    """What one test's fake account taught about its limit must not slow down the next test."""
    from kling_omni import submission

    submission.PACE.forget()
    yield
