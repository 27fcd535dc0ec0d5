"""The Tasks sidebar's and the Spending settings' routes, mounted on a plain aiohttp app and
called over real loopback HTTP, on journals filled as the nodes fill them."""

import asyncio
import importlib
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp import test_utils  # not imported by name: pytest would try to collect Test* classes
from PIL import Image

from fake_cometapi.media import make_mp4
from kling_omni import credentials
from kling_omni.journal import Journal
from kling_omni.pricing import RATES_SOURCE
from kling_omni.settings import DEFAULTS, SETTINGS_FILE, load_settings

task_routes = importlib.import_module("cometapi_kling_omni.nodes.task_routes")
PREFIX = "/cometapi_omni"
JSON = {"Content-Type": "application/json"}
DAY = 86400.0


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv(credentials.ENV_VAR, raising=False)


class Pack:
    """The folders and journal of one ComfyUI, and what was handed to the collector."""

    def __init__(self, root: Path):
        self.home = root / "home"
        self.output = root / "output"
        self.journal = Journal(self.home / "journal.sqlite3")
        self.wanted = []

    def add(self, name, state="succeeded", *, task_id=None, mode="pro", seconds=5.0, video_input=False,
            days_ago=0.0, base_url="https://api.example", message="", **updates):
        self.journal.begin(name, 1, f"comfy-{name}", prompt=f"prompt of {name}", base_url=base_url,
                           node_id="7", mode=mode, seconds=seconds, video_input=video_input)
        self.journal.settle(name, 1, state, task_id=task_id, message=message)
        if updates and task_id:
            self.journal.update_task(task_id, **updates)
        if days_ago:
            with self.journal._connect() as db:
                db.execute("UPDATE jobs SET created_at=? WHERE fingerprint=?", (time.time() - days_ago * DAY, name))

    def serve(self, scenario):
        async def main():
            table = web.RouteTableDef()
            task_routes.register(table, data_dir=lambda: self.home, journal=lambda: self.journal,
                                 output_root=lambda: self.output, want=self.wanted.append)
            app = web.Application()
            app.add_routes(table)
            async with test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1")) as client:
                return await scenario(client)

        return asyncio.run(main())

    def call(self, method, path, **kwargs):
        async def scenario(client):
            response = await client.request(method, PREFIX + path, **kwargs)
            body = await response.read()
            return response.status, body, response.headers

        status, body, headers = self.serve(scenario)
        if headers.get("Content-Type", "").startswith("application/json"):
            return status, json.loads(body)
        return status, body, headers


@pytest.fixture
def pack(tmp_path):
    return Pack(tmp_path)


# --- settings ----------------------------------------------------------------------------

def test_settings_start_as_the_shipped_defaults(pack):
    status, answer = pack.call("GET", "/settings")
    assert status == 200
    assert answer == {"settings": DEFAULTS.as_dict(), "defaults": DEFAULTS.as_dict(), "rates_source": RATES_SOURCE,
                      "today": {"usd": 0.0, "left_usd": DEFAULTS.daily_limit_usd}, "limit_unknown": ""}
    assert DEFAULTS.daily_limit_usd > 0  # a fresh install has a daily limit


def test_settings_that_cannot_be_read_say_why_and_a_save_repairs_them(pack):
    pack.home.mkdir(parents=True)
    (pack.home / SETTINGS_FILE).write_text('{"format": 2, "daily_limit_usd": 3, "rates": {"pro": 0.3')
    status, answer = pack.call("GET", "/settings")
    assert status == 200 and str(pack.home / SETTINGS_FILE) in answer["limit_unknown"]
    assert answer["settings"]["daily_limit_usd"] == DEFAULTS.daily_limit_usd  # the default, never "off"
    assert answer["limit_set_aside"] is True  # cut short: a save keeps it aside (the panel says so)
    status, answer = pack.call("POST", "/settings", json={"daily_limit_usd": 3})
    assert status == 200 and answer["limit_unknown"] == "" and answer["settings"]["daily_limit_usd"] == 3.0
    assert len(list(pack.home.glob(SETTINGS_FILE + ".unreadable-*"))) == 1  # the damaged file is kept


def test_a_partial_change_is_saved_and_today_s_spend_is_counted_against_the_limit(pack):
    pack.add("a", task_id="1")  # 5 s pro today: $0.56 at the shipped rates
    pack.add("old", task_id="2", days_ago=2)
    status, answer = pack.call("POST", "/settings", json={"daily_limit_usd": 2, "rates": {"pro": 0.2}})
    assert status == 200
    assert answer["settings"]["daily_limit_usd"] == 2.0 and answer["settings"]["rates"]["pro"] == 0.2
    assert answer["settings"]["rates"]["std"] == DEFAULTS.rates.std  # the rest kept
    assert answer["today"] == {"usd": pytest.approx(1.0), "left_usd": pytest.approx(1.0)}  # 5 s at $0.20
    assert load_settings(pack.home).daily_limit_usd == 2.0
    assert pack.call("GET", "/settings")[1] == answer


@pytest.mark.parametrize("body, words", [
    ({"daily_limit_usd": -1}, "daily_limit_usd"),
    ({"rates": {"std": "cheap"}}, "rates.std"),
    ({"background_collect": "no"}, "background_collect"),
    ([1, 2], "settings"),
])
def test_a_bad_value_is_refused_and_nothing_is_saved(pack, body, words):
    pack.call("POST", "/settings", json={"daily_limit_usd": 3})
    before = (pack.home / SETTINGS_FILE).read_bytes()
    status, answer = pack.call("POST", "/settings", json={**body, "max_in_flight": 4} if isinstance(body, dict)
                               else body)
    assert status == 400 and set(answer) == {"error"} and words in answer["error"]
    assert "Nothing was saved" in answer["error"]
    assert (pack.home / SETTINGS_FILE).read_bytes() == before


def test_a_body_that_is_not_json_is_refused(pack):
    status, answer = pack.call("POST", "/settings", data=b"daily_limit_usd=5", headers=JSON)
    assert status == 400 and "JSON" in answer["error"]
    assert not (pack.home / SETTINGS_FILE).exists()


# --- tasks -------------------------------------------------------------------------------

def test_pages_newest_first_with_totals(pack):
    for i in range(120):
        pack.add(f"t{i:03}", task_id=str(1000 + i), mode="std" if i % 2 else "pro")
    pack.add("sent", "uncertain")  # no task id
    status, page = pack.call("GET", "/tasks?offset=50&limit=50")
    assert status == 200 and page["total"] == 121 and (page["offset"], page["limit"]) == (50, 50)
    assert [t["task_id"] for t in page["tasks"]] == [str(1000 + i) for i in range(70, 20, -1)]
    assert page["totals"]["today"] == {"tasks": 121, "seconds": {"pro": 60 * 5 + 5, "std": 60 * 5},
                                       "usd": pytest.approx(61 * 0.56 + 60 * 0.42)}
    assert page["totals"]["last_30_days"] == page["totals"]["today"]
    assert page["daily_limit_usd"] == DEFAULTS.daily_limit_usd and page["left_today_usd"] == 0.0  # spent past it
    assert page["rates_source"] == RATES_SOURCE
    assert abs(page["now"] - time.time()) < 60
    first = pack.call("GET", "/tasks")[1]
    assert first["tasks"][0]["task_id"] is None and first["tasks"][0]["state"] == "uncertain" and first["limit"] == 50
    assert pack.call("GET", "/tasks?limit=0")[1]["tasks"] == []


@pytest.mark.parametrize("query", ["limit=201", "limit=-1", "offset=-5", "limit=ten", "offset=1.5",
                                   # issue 16: an offset past SQLite's integers answered 500
                                   "offset=99999999999999999999", "offset=9223372036854775808",
                                   "offset=1000000001", "limit=" + "9" * 5000, "offset=%EF%BC%95",
                                   "offset=%D9%A1%D9%A2", "offset=+5", "offset=5_0", "offset=", "limit= 5"])
def test_a_bad_page_is_refused(pack, query):
    pack.add("a", task_id="1")
    status, answer = pack.call("GET", f"/tasks?{query}")
    assert status == 400 and ("limit" in answer["error"] or "offset" in answer["error"])
    assert "whole number" in answer["error"]


def test_the_largest_page_bounds_are_answered(pack):
    pack.add("a", task_id="1")
    status, page = pack.call("GET", f"/tasks?offset={task_routes.MAX_OFFSET}&limit={task_routes.MAX_PAGE}")
    assert status == 200 and page["tasks"] == [] and page["total"] == 1


def test_ten_thousand_tasks(pack):
    """The sidebar's first page and totals over 10,000 journalled rows are right (timed in the report)."""
    fill(pack.journal, 10_000)
    status, page = pack.call("GET", "/tasks?limit=50")
    assert status == 200 and page["total"] == 10_000
    assert [t["task_id"] for t in page["tasks"]] == [str(i) for i in range(9999, 9949, -1)]
    # even rows pro, odd std, every 10th failed; rows 0-4999 are 40 days old, 5000-7499 10 days, the rest today
    today = [i for i in range(7500, 10_000) if i % 10]
    month = [i for i in range(5000, 10_000) if i % 10]
    for name, rows in (("today", today), ("last_30_days", month)):
        pro = sum(1 for i in rows if i % 2 == 0)
        assert page["totals"][name] == {"tasks": len(rows), "seconds": {"pro": 5 * pro, "std": 5 * (len(rows) - pro)},
                                        "usd": pytest.approx(pro * 0.56 + (len(rows) - pro) * 0.42)}


def fill(journal, count):
    """`count` rows written in one transaction, as months of use would leave them."""
    journal.begin("seed", 0, "comfy-seed", prompt="", base_url="")  # creates the file and schema
    now = time.time()
    with sqlite3.connect(journal.path) as db:
        db.execute("DELETE FROM jobs")
        db.executemany(
            "INSERT INTO jobs (fingerprint, attempt, external_task_id, task_id, state, prompt, base_url, created_at,"
            " updated_at, mode, seconds) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(f"f{i}", 1, f"comfy-{i}", str(i), "failed" if i % 10 == 0 else "succeeded", f"prompt {i}",
              "https://api.example", created, created, "std" if i % 2 else "pro", 5.0)
             for i in range(count)
             for created in [now - (40 * DAY if i < 5000 else 10 * DAY if i < 7500 else 0) + i * 1e-3]])


# --- thumbnails --------------------------------------------------------------------------

def test_a_thumbnail_of_a_video_on_disk(pack):
    video = make_mp4(pack.output / "cometapi_omni" / "kling_77.mp4", seconds=0.5, fps=12, width=640, height=360,
                     audio=False)
    pack.add("v", task_id="77", video_path=str(video))
    status, body, headers = pack.call("GET", "/tasks/77/thumb")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(body)).size == (320, 180)
    assert (pack.home / "thumbs" / "77.jpg").is_file()
    status, body, _ = pack.call("GET", "/tasks/77/thumb", headers={"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    row = pack.call("GET", "/tasks")[1]["tasks"][0]
    assert row["thumb"] == "/cometapi_omni/tasks/77/thumb" and row["on_disk"] is True
    assert row["file"] == {"filename": "kling_77.mp4", "subfolder": "cometapi_omni", "type": "output"}


@pytest.mark.parametrize("task_id", ["78", "404", "a.b", "x" * 200])
def test_no_thumbnail_without_a_video(pack, task_id):
    pack.add("queued", "queued", task_id="78")
    status, answer = pack.call("GET", f"/tasks/{task_id}/thumb")
    assert status == 404 and set(answer) == {"error"}


# --- collect now -------------------------------------------------------------------------

def test_collect_now_hands_the_task_to_the_collector(pack, monkeypatch):
    monkeypatch.setenv(credentials.ENV_VAR, "sk-collect-now-0123456789")
    pack.add("q", "processing", task_id="55")
    status, answer = pack.call("POST", "/tasks/55/collect", json={})
    assert status == 202 and answer["task"]["task_id"] == "55" and answer["task"]["state"] == "processing"
    assert pack.wanted == ["55"]


def test_collect_now_refuses_what_cannot_be_collected(pack, monkeypatch):
    pack.add("f", "failed", task_id="56", message="Failure to pass the risk control system")
    pack.add("q", "queued", task_id="57")
    no_key = pack.call("POST", "/tasks/57/collect", json={})
    assert no_key[0] == 409 and "COMETAPI_KEY" in no_key[1]["error"]
    monkeypatch.setenv(credentials.ENV_VAR, "sk-collect-now-0123456789")
    failed = pack.call("POST", "/tasks/56/collect", json={})
    assert failed[0] == 409 and "failed" in failed[1]["error"]
    assert pack.call("POST", "/tasks/99/collect", json={})[0] == 404
    assert pack.call("POST", "/tasks/a.b/collect", json={})[0] == 404
    assert pack.wanted == []


# --- nothing private in any payload ------------------------------------------------------

def test_no_key_signed_url_or_base_url_in_any_payload(pack, monkeypatch):
    env_key, stored_key = "sk-planted-env-0123456789abcdef", "sk-planted-store-0123456789abcdef"
    monkeypatch.setenv(credentials.ENV_VAR, env_key)
    credentials.save_key(pack.home, stored_key)
    base = "https://user:pw@gateway.private.example"
    signed = "https://cdn.example/v/kling_31.mp4?X-Signature=SIGNED0123456789"
    video = make_mp4(pack.output / "cometapi_omni" / "kling_31.mp4", seconds=0.5, fps=12, width=160, height=120,
                     audio=False)
    pack.add("done", task_id="31", base_url=base, video_url=signed, video_path=str(video), unit_deduction="4")
    pack.add("lost", "uncertain", base_url=base, message=f"Could not reach CometAPI at {base} (Bearer {env_key}); "
                                                          f"the answer named {signed}")
    pack.add("late", "processing", task_id="32", base_url=base)
    answers = [pack.call("GET", "/settings"), pack.call("POST", "/settings", json={"daily_limit_usd": 9}),
               pack.call("GET", "/tasks"), pack.call("GET", "/tasks?offset=1&limit=1"),
               pack.call("POST", "/tasks/32/collect", json={}), pack.call("GET", "/tasks/31/thumb"),
               pack.call("POST", "/tasks/31/collect", data=b"{}", headers=JSON),
               pack.call("GET", "/tasks/31"), pack.call("GET", "/tasks/32")]  # what a live event has read
    assert [a[0] for a in answers] == [200, 200, 200, 200, 202, 200, 202, 200, 200]
    assert answers[7][1]["task"]["on_disk"] and answers[7][1]["task"]["file"]["filename"] == "kling_31.mp4"

    payload = b"".join(a[1] if isinstance(a[1], bytes) else json.dumps(a[1]).encode() for a in answers)
    for secret in (env_key, stored_key, env_key[-12:], stored_key[-12:], "SIGNED0123456789", "X-Signature",
                   "gateway.private.example", "user:pw", '"node_id"', '"fingerprint"',
                   '"video_url"', '"base_url"', str(pack.home)):
        assert secret.encode() not in payload, secret
    lost = next(t for t in answers[2][1]["tasks"] if t["state"] == "uncertain")
    assert "Could not reach CometAPI at the CometAPI host" in lost["message"] and "[redacted]" in lost["message"]


def test_a_bad_limit_in_a_file_that_reads_is_not_said_to_be_kept_aside(pack):
    pack.home.mkdir(parents=True)
    (pack.home / SETTINGS_FILE).write_text('{"format": 2, "daily_limit_usd": -1, "rates": {"pro": 0.3}}')
    status, answer = pack.call("GET", "/settings")
    assert status == 200 and "daily_limit_usd" in answer["limit_unknown"] and answer["limit_set_aside"] is False
    status, answer = pack.call("POST", "/settings", json={"daily_limit_usd": 3})
    assert status == 200 and answer["settings"]["rates"]["pro"] == 0.3  # only the limit was replaced
