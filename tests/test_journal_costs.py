"""The journal records what each task bills, pages through many tasks, and says when it changes."""

import sqlite3
import time

from kling_omni.journal import Journal

V1_SCHEMA = """
CREATE TABLE jobs (fingerprint TEXT NOT NULL, attempt INTEGER NOT NULL, external_task_id TEXT UNIQUE,
    task_id TEXT, state TEXT NOT NULL, prompt TEXT NOT NULL DEFAULT '', base_url TEXT NOT NULL DEFAULT '',
    node_id TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, updated_at REAL NOT NULL,
    video_url TEXT NOT NULL DEFAULT '', video_path TEXT NOT NULL DEFAULT '',
    unit_deduction TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '', PRIMARY KEY (fingerprint, attempt));
CREATE TABLE hosts (base_url TEXT PRIMARY KEY, echoes_external_id INTEGER NOT NULL);
"""


def test_a_journal_from_before_costs_is_upgraded_in_place(tmp_path):
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
        db.execute("INSERT INTO jobs (fingerprint, attempt, external_task_id, task_id, state, created_at, updated_at)"
                   " VALUES ('f', 1, 'comfy-f-1', '900', 'succeeded', 1, 1)")
    journal = Journal(path)
    old = journal.by_task("900")
    assert old.state == "succeeded" and old.mode == "" and old.seconds is None and old.key_id == ""
    journal.begin("g", 1, "comfy-g-1", prompt="p", base_url="b", mode="pro", seconds=5, video_input=True,
                  key_id="k1")
    new = journal.latest("g")
    assert (new.mode, new.seconds, new.video_input, new.key_id) == ("pro", 5.0, 1, "k1")
    # a second Journal object (another process) finds it upgraded and does no harm
    assert Journal(path).latest("g") == new


def test_a_result_length_fills_in_only_an_unknown_length(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    journal.begin("edit", 1, "comfy-e-1", prompt="p", base_url="b", mode="pro", seconds=None, video_input=True)
    journal.settle("edit", 1, "queued", task_id="1")
    journal.begin("gen", 1, "comfy-g-1", prompt="p", base_url="b", mode="std", seconds=5)
    journal.settle("gen", 1, "queued", task_id="2")
    journal.update_task("1", seconds=7.2)
    journal.update_task("2", seconds=5.04)
    assert journal.by_task("1").seconds == 7.2
    assert journal.by_task("2").seconds == 5.0


def test_listeners_hear_each_change(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    heard = []
    journal.subscribe(heard.append)
    journal.subscribe(lambda task_id: 1 / 0)  # a broken listener changes nothing for the others
    journal.begin("f", 1, "comfy-f-1", prompt="p", base_url="b")
    journal.settle("f", 1, "queued", task_id="77")
    journal.update_task("77", state="succeeded")
    journal.adopt("88")
    assert heard == [None, "77", "77", "88"]


def test_pages_in_flight_and_recent_rows(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    for i in range(25):
        journal.begin(f"f{i}", 1, f"comfy-{i}-1", prompt=f"p{i}", base_url="b", key_id="k" if i % 2 else "other")
        journal.settle(f"f{i}", 1, "processing" if i >= 20 else "succeeded", task_id=str(i))
    assert journal.count() == 25
    page = journal.jobs(limit=10, offset=10)
    assert [j.task_id for j in page] == [str(i) for i in range(14, 4, -1)]
    assert [j.task_id for j in journal.in_flight("k", since=0)] == ["21", "23"]
    assert journal.in_flight("k", since=time.time() + 60) == []
    assert sum(count for _, count in journal.billing(0)) == 25 and journal.billing(time.time() + 60) == []
