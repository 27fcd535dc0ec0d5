"""The journal as a real disk treats it: deleted, damaged or read-only while ComfyUI runs,
and owner-only whatever the umask. Driven through the nodes against the fake server."""

import asyncio
import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import av
import pytest

from fake_cometapi.media import read_index
from kling_omni.errors import JournalError
from kling_omni.journal import SCHEMA

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import runtime
from tests.test_billing_faults import chain
from tests.without_root_powers import python_command
from tests.fakeserver_fixtures import point_pack_at

READ_ONLY_RUN = Path(__file__).resolve().parent / "run_readonly_journal.py"


@pytest.fixture
def home(fake_server, tmp_path, monkeypatch):
    values = point_pack_at(fake_server, tmp_path, monkeypatch)
    runtime._journal_at.cache_clear()
    return tmp_path / "home"


def poll(task_id):
    return asyncio.run(NODES["CometOmniPoll"]().poll(task_id=task_id, unique_id="6"))["result"]


def assert_whole(path, server):
    with av.open(str(path)) as container:
        indexes = [read_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert indexes == list(range(round(server.video_seconds * server.video_fps)))


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_journal_deleted_while_running_is_recreated(home, fake_server, what):
    first = chain("first clip")
    journal = home / "journal.sqlite3"
    assert journal.is_file()
    if what == "file":
        journal.unlink()
    else:
        shutil.rmtree(home)  # the key, the journal and the collection locks
    # Same process, same Journal object (no restart): a new intent works...
    second = chain("second clip")
    assert_whole(second[2].get_stream_source(), fake_server)
    assert runtime.journal().by_task(second[4]) is not None
    # ...and the forgotten intent, queued again, reuses its external id: the pack collects the
    # task made before the deletion instead of paying for another (README, Billing safety).
    again = chain("first clip")
    assert again[4] == first[4]
    assert fake_server.created_count == 2
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database, a sync tool mangled it\n" * 200)


def _malformed(path: Path) -> None:
    # A valid header, a damaged table page: SQLite says "database disk image is malformed".
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    assert len(data) >= 2 * page
    data[page:2 * page] = b"\xa5" * page
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_garbage, _malformed], ids=["not a database", "malformed"])
def test_a_damaged_journal_is_set_aside_and_a_new_one_started(home, fake_server, caplog, damage):
    caplog.set_level(logging.WARNING, logger="cometapi_omni")
    first = chain("first clip")
    journal = home / "journal.sqlite3"
    damage(journal)
    damaged = journal.read_bytes()
    # A video already on disk still reaches the graph...
    frames, _, video, _, task_id, _ = poll(first[4])
    assert task_id == first[4] and frames.shape[0] > 1
    assert_whole(video.get_stream_source(), fake_server)
    # ...the damaged file is kept beside the new one, and the warning names both.
    aside = [p for p in home.iterdir() if p.name.startswith("journal.sqlite3.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert str(journal) in warning and str(aside[0]) in warning
    assert runtime.journal().by_task(first[4]) is not None  # the new journal records again
    # Submit works too, and the first intent queued again is collected, not paid twice.
    chain("second clip")
    assert chain("first clip")[4] == first[4]
    assert fake_server.created_count == 2


@pytest.mark.parametrize("existing", [True, False], ids=["journal read-only", "no journal, folder read-only"])
def test_a_read_only_journal_stops_submit_before_paying_but_poll_delivers(home, fake_server, omni_client,
                                                                          existing):
    """In a child process bound by file modes, as a user who does not own the journal is."""
    if existing:
        chain("first clip")  # a journal with rows, as a user has one
    else:
        home.mkdir()
    finished = omni_client.create_task({"model_name": "kling-video-o1", "prompt": "made elsewhere",
                                        "duration": "5", "aspect_ratio": "16:9"}).task_id
    journal = home / "journal.sqlite3"
    made = fake_server.created_count
    fake_server.clear_records()
    if existing:
        journal.chmod(0o444)
    home.chmod(0o555)
    try:
        child = subprocess.run(python_command(str(READ_ONLY_RUN), finished, str(journal)), env=dict(os.environ),
                               capture_output=True, text=True, timeout=120)
    finally:
        home.chmod(0o755)
        if existing:
            journal.chmod(0o600)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(result["skip"])
    # Submit refused, naming the journal, and nothing at all was sent for it.
    assert result["submit_error"]["type"] == JournalError.__name__
    assert str(journal) in result["submit_error"]["message"]
    assert "nothing was sent" in result["submit_error"]["message"].lower()
    assert [r for r in fake_server.requests if r.method == "POST"] == []
    assert fake_server.created_count == made
    # Poll still delivered the finished, paid video, and said once that it could not record it.
    assert result["task_id"] == finished and result["frames"] > 1
    assert_whole(result["path"], fake_server)
    assert str(journal) in child.stderr and child.stderr.count("could not be written") == 1
    if existing:
        assert "first clip" in journal.read_bytes().decode("utf-8", "replace")  # untouched


def test_the_journal_is_owner_only_whatever_the_umask(home, fake_server):
    old = os.umask(0o022)
    try:
        chain()
    finally:
        os.umask(old)
    journal = home / "journal.sqlite3"
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700  # the pack made this folder


def test_a_world_readable_journal_of_an_older_version_is_made_owner_only(home, fake_server):
    home.mkdir()
    journal = home / "journal.sqlite3"
    with sqlite3.connect(journal) as db:  # what an older version left: the same schema, umask's mode
        db.executescript(SCHEMA)
    journal.chmod(0o644)
    chain()
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
