"""What the Tasks sidebar is told about each journalled task (a TaskRow), in plain Python."""

import importlib
import json
import time
from dataclasses import replace

import pytest

from kling_omni import ledger
from kling_omni.journal import Job, Journal
from kling_omni.pricing import DEFAULT_RATES

rows = importlib.import_module("cometapi_kling_omni.nodes.task_rows")

NOW = 1_800_000_000.0
DAY = 86400.0
ROW_FIELDS = {"task_id", "external_task_id", "state", "created_at", "updated_at", "prompt", "mode", "seconds",
              "video_input", "label", "estimate_text", "estimate_usd", "actual_usd", "actual_units", "message",
              "on_disk", "file", "thumb", "age_days", "expires_in_days", "expiring", "expired", "collecting",
              "collectable", "as_of", "model", "model_tag", "sound", "shots", "auto_shots", "machine", "saved_on"}


def job(**changes):
    base = Job(fingerprint="fp-secret", attempt=1, external_task_id="comfy-abc-1", task_id="9001", state="succeeded",
               prompt="A fox runs through snow", base_url="https://base.example", node_id="17",
               created_at=NOW - 3600, updated_at=NOW - 3000, video_url="https://cdn.example/v.mp4?sig=SECRET",
               video_path="", unit_deduction="", message="", mode="pro", seconds=5.0, video_input=0, key_id="k")
    return replace(base, **changes)


def row(j, output_root="/nowhere", collecting=False, rates=DEFAULT_RATES):
    return rows.task_row(j, rates, NOW, output_root, collecting)


def test_a_finished_task_on_disk_in_the_output_folder(tmp_path):
    video = tmp_path / "cometapi_omni" / "kling_9001.mp4"
    video.parent.mkdir()
    video.write_bytes(b"mp4")
    r = row(job(video_path=str(video), unit_deduction="4"), output_root=tmp_path)
    assert set(r) == ROW_FIELDS
    assert r["task_id"] == "9001" and r["external_task_id"] == "comfy-abc-1" and r["state"] == "succeeded"
    assert (r["mode"], r["seconds"], r["video_input"]) == ("pro", 5.0, False)
    assert r["label"] == "5 s · pro" and r["estimate_text"] == "≈ $0.56" and r["estimate_usd"] == pytest.approx(0.56)
    assert r["actual_units"] == "4" and r["actual_usd"] == pytest.approx(0.56)
    assert r["on_disk"] is True and r["thumb"] == "/cometapi_omni/tasks/9001/thumb"
    assert r["file"] == {"filename": "kling_9001.mp4", "subfolder": "cometapi_omni", "type": "output"}
    assert r["age_days"] == pytest.approx(1 / 24, abs=1e-3) and r["expires_in_days"] is None
    assert not r["expiring"] and not r["expired"] and r["collecting"] is False and r["collectable"] is False
    assert r["as_of"] == NOW


def test_model_sound_and_shots_of_a_task():
    v3 = row(job(model="kling-v3-omni", sound=1, shots=3, seconds=12.0))
    assert (v3["model"], v3["model_tag"], v3["sound"], v3["shots"], v3["auto_shots"]) == ("kling-v3-omni", "v3", True, 3,
                                                                                          False)
    assert v3["label"] == "12 s in 3 shots · pro · v3 + sound" and v3["estimate_text"] == "≈ $1.68"
    auto = row(job(model="kling-v3-omni", auto_shots=1, mode="std", seconds=10.0))
    assert (auto["model_tag"], auto["sound"], auto["shots"], auto["auto_shots"]) == ("v3", False, 0, True)
    o1 = row(job(model="kling-video-o1"))
    assert (o1["model"], o1["model_tag"], o1["sound"], o1["shots"], o1["auto_shots"]) == ("kling-video-o1", "O1", False,
                                                                                          0, False)


def test_a_row_from_before_models_were_recorded_is_o1():
    old = row(job())  # the journal's model column is "" for it
    assert (old["model"], old["model_tag"], old["sound"], old["shots"]) == ("kling-video-o1", "O1", False, 0)
    assert old["label"] == "5 s · pro"
    by_id = row(job(mode="", seconds=None, prompt=""))  # collected by id: nobody knows what made it
    assert (by_id["model"], by_id["model_tag"]) == ("", "")
    newer = row(job(model="kling-v4-omni"))  # a model a newer version journalled: named as it is
    assert (newer["model"], newer["model_tag"]) == ("kling-v4-omni", "kling-v4-omni")


def test_rows_read_back_from_a_journal_carry_model_sound_and_shots(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.begin("f1", 1, "comfy-1", prompt="p", base_url="b", mode="pro", seconds=12, model="kling-v3-omni",
                  sound=True, shots=3)
    journal.begin("f2", 1, "comfy-2", prompt="p", base_url="b", mode="std", seconds=5)
    page = rows.tasks_page(journal, rows.PackSettings(), NOW, tmp_path, offset=0, limit=10)
    by_id = {r["external_task_id"]: r for r in page["tasks"]}
    assert (by_id["comfy-1"]["model_tag"], by_id["comfy-1"]["sound"], by_id["comfy-1"]["shots"]) == ("v3", True, 3)
    assert (by_id["comfy-2"]["model"], by_id["comfy-2"]["model_tag"], by_id["comfy-2"]["sound"]) == (
        "kling-video-o1", "O1", False)
    json.dumps(page)  # what the route sends


def test_only_a_task_whose_video_may_still_come_is_collectable():
    for state, collectable in (("submitted", True), ("processing", True), ("succeeded", True), ("uncertain", True),
                               ("failed", False), ("rejected", False), ("ended", False)):
        assert row(job(state=state)).get("collectable") is collectable, state


def test_a_file_outside_the_output_folder_has_a_thumb_but_no_view(tmp_path):
    video = tmp_path / "elsewhere" / "kling_9001.mp4"
    video.parent.mkdir()
    video.write_bytes(b"mp4")
    r = row(job(video_path=str(video)), output_root=tmp_path / "output")
    assert r["on_disk"] is True and r["file"] is None and r["thumb"] is not None


def test_a_file_gone_from_disk_is_not_on_disk(tmp_path):
    r = row(job(video_path=str(tmp_path / "deleted.mp4")), output_root=tmp_path)
    assert r["on_disk"] is False and r["file"] is None and r["thumb"] is None
    assert r["expires_in_days"] == pytest.approx(30 - 1 / 24, abs=1e-3)


def test_costs_at_the_user_s_rates_a_base_edit_and_an_unpriced_task():
    cheap = replace(DEFAULT_RATES, pro=0.05, usd_per_unit=0.1)
    r = row(job(unit_deduction="4"), rates=cheap)
    assert r["estimate_text"] == "≈ $0.25" and r["actual_usd"] == pytest.approx(0.4)
    edit = row(job(seconds=None, video_input=1, state="processing"))
    assert edit["label"] == "length of the input video, 3–10 s · pro" and edit["seconds"] is None
    assert edit["estimate_text"] == "≈ $0.50–$1.68" and edit["estimate_usd"] == pytest.approx(1.68)
    assert edit["video_input"] is True and edit["actual_usd"] is None and edit["actual_units"] == ""
    by_id = row(job(mode="", seconds=None))  # collected by id: nobody knows what it was
    assert (by_id["mode"], by_id["label"], by_id["estimate_text"], by_id["estimate_usd"]) == ("", "", "", None)


@pytest.mark.parametrize("age, state, expiring, expired, left", [
    (24.0, "processing", False, False, 6.0),
    (26.0, "succeeded", True, False, 4.0),
    (26.0, "queued", True, False, 4.0),
    (31.0, "succeeded", True, True, 0.0),
    (26.0, "failed", False, False, None),  # nothing to lose
    (26.0, "rejected", False, False, None),
])
def test_the_thirty_day_marks(age, state, expiring, expired, left):
    r = row(job(created_at=NOW - age * DAY, updated_at=NOW - age * DAY, state=state))
    assert (r["expiring"], r["expired"]) == (expiring, expired)
    assert r["expires_in_days"] == (None if left is None else pytest.approx(left))
    assert r["age_days"] == pytest.approx(age)


def test_a_row_without_a_task_and_the_prompt_start():
    r = row(job(task_id=None, state="uncertain", prompt="x" * 300, mode="std"))
    assert r["task_id"] is None and r["thumb"] is None and len(r["prompt"]) == 100
    assert r["label"] == "5 s · std"


def test_nothing_private_reaches_a_row():
    key = "sk-planted-0123456789abcdefghij"
    message = (f"Could not reach CometAPI at https://base.example (Bearer {key}); the file at "
               f"https://cdn.example/v.mp4?sig=SECRET&exp=1 answered 403")
    r = row(job(state="failed", message=message, node_id="17"), collecting=True)
    text = json.dumps(r)
    for secret in (key, "sig=SECRET", "SECRET", "base.example", "fp-secret"):
        assert secret not in text
    assert "https://cdn.example/v.mp4" in r["message"] and "403" in r["message"]  # still says what happened
    assert r["collecting"] is True and '"17"' not in text


def test_totals_for_today_and_the_last_thirty_days(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    now = time.time()
    specs = [("pro", 5, "succeeded", 0), ("std", 10, "processing", 0), ("pro", 5, "failed", 0),
             ("pro", 10, "succeeded", 3), ("std", 5, "succeeded", 40)]
    for i, (mode, seconds, state, days) in enumerate(specs):
        journal.begin(f"f{i}", 1, f"comfy-{i}", prompt="p", base_url="b", mode=mode, seconds=seconds)
        journal.settle(f"f{i}", 1, state, task_id=str(i))
    with journal._connect() as db:  # back-date rows, as days pass
        for i, (*_, days) in enumerate(specs):
            db.execute("UPDATE jobs SET created_at=? WHERE task_id=?", (now - days * DAY, str(i)))
    recent = ledger.recent_totals(journal, DEFAULT_RATES, now)
    assert recent.today.as_dict() == {"tasks": 2, "seconds": {"pro": 5, "std": 10}, "usd": pytest.approx(0.56 + 0.84)}
    assert recent.last_30_days.as_dict() == {"tasks": 3, "seconds": {"pro": 15, "std": 10},
                                             "usd": pytest.approx(0.56 + 0.84 + 1.12)}


def test_read_stamps_never_tie_and_never_go_back():
    stamps = [rows.read_stamp() for _ in range(1000)]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


def test_a_video_saved_on_another_machine_is_neither_lost_nor_offered_for_collection():
    r = row(job(video_path="/elsewhere/kling_9001.mp4", machine="render-01", video_machine="render-02"))
    assert (r["machine"], r["saved_on"], r["on_disk"]) == ("render-01", "render-02", False)
    assert not r["collectable"] and r["expires_in_days"] is None
    alone = row(job(video_path="/gone/kling_9001.mp4"))  # a journal of this machine alone: the file is gone
    assert (alone["machine"], alone["saved_on"], alone["collectable"]) == ("", "", True)


def test_a_video_this_machine_saved_and_lost_is_offered_for_collection_again():
    """On a shared journal, a row whose video this machine saved, since deleted, is not 'saved on' this machine."""
    lost = rows.task_row(job(video_path="/gone/kling_9001.mp4", machine="render-01", video_machine="render-01"),
                         DEFAULT_RATES, NOW, "/nowhere", False, "render-01")
    assert (lost["saved_on"], lost["on_disk"], lost["collectable"]) == ("", False, True)
