"""`python -m kling_omni tasks` shows what each task bills and the totals, as the sidebar does."""

import os
import subprocess
import sys
import time
from pathlib import Path

from kling_omni.journal import Journal
from kling_omni.settings import save_settings

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "kling_omni", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def environment(server, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMETAPI")}
    env.update(COMETAPI_BASE_URL=server.base_url, COMETAPI_OMNI_HOME=str(home), COMETAPI_KEY=server.key)
    return env


def journalled(journal, name, state, *, task_id=None, mode="pro", seconds=5.0, video_input=False, days_ago=0.0):
    journal.begin(name, 1, f"comfy-{name}", prompt=f"{name} prompt", base_url="b", mode=mode, seconds=seconds,
                  video_input=video_input)
    journal.settle(name, 1, state, task_id=task_id)
    if days_ago:
        with journal._connect() as db:
            db.execute("UPDATE jobs SET created_at=? WHERE fingerprint=?", (time.time() - days_ago * DAY, name))


def line_of(listing, word):
    (line,) = [line for line in listing.splitlines() if word in line]
    return line


def test_costs_per_task_and_totals_at_the_rates_of_the_home(fake_server, omni_client, tmp_path):
    home = tmp_path / "home"
    save_settings(home, {"rates": {"pro": 0.2}})  # the user's rates: 5 s pro is $1.00
    journal = Journal(home / "journal.sqlite3")
    paid = omni_client.create_task({"model_name": "kling-video-o1", "prompt": "paid", "duration": "5"}).task_id
    journalled(journal, "paid", "queued", task_id=paid)
    journalled(journal, "running", "processing", task_id="7001", mode="std", seconds=10)
    journalled(journal, "edit", "queued", task_id="7002", seconds=None, video_input=True)
    journalled(journal, "refused", "failed", task_id="7003")
    journalled(journal, "lastweek", "succeeded", task_id="7004", mode="std", days_ago=3)
    journalled(journal, "ancient", "succeeded", task_id="7005", days_ago=40)
    env = environment(fake_server, home)
    done = cli("collect", paid, "--out", str(tmp_path / "videos"), "--interval", "0.05", env=env)
    assert done.returncode == 0, done.stderr  # CometAPI reports what it charged: 0.8 units

    listing = cli("tasks", env=env)
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout
    assert "ESTIMATE" in out and "ACTUAL" in out and str(home / "settings.json") in out
    row = line_of(out, paid)
    assert "5 s · pro" in row and "≈ $1.00" in row and "$0.11" in row  # 0.8 units x $0.14
    assert "10 s · std" in line_of(out, "7001") and "≈ $0.84" in line_of(out, "7001")
    assert "3–10 s · pro" in line_of(out, "7002") and "≈ $0.50–$1.68" in line_of(out, "7002")
    today = line_of(out, "Today")
    assert "3 tasks" in today and "pro 5 s" in today and "std 10 s" in today and "≈ $2.63" in today
    month = line_of(out, "Last 30 days")
    assert "4 tasks" in month and "std 15 s" in month and "≈ $3.05" in month
    assert "estimate" in out.lower().split("last 30 days")[1]  # the totals say what they are


def test_without_settings_the_shipped_rates_are_used_and_named(fake_server, tmp_path):
    home = tmp_path / "home"
    journalled(Journal(home / "journal.sqlite3"), "one", "queued", task_id="8001")
    out = cli("tasks", env=environment(fake_server, home)).stdout
    assert "≈ $0.56" in line_of(out, "8001") and "1 task " in line_of(out, "Today")
    assert "the pack's default rates" in out and "Kling" in out  # where the estimate comes from


def test_each_task_shows_its_model_sound_and_shots(fake_server, tmp_path):
    home = tmp_path / "home"
    journal = Journal(home / "journal.sqlite3")
    journalled(journal, "old", "succeeded", task_id="8101")  # a row from before models: O1
    journal.begin("v3", 1, "comfy-v3", prompt="v3 prompt", base_url="b", mode="pro", seconds=12.0,
                  model="kling-v3-omni", sound=True)
    journal.settle("v3", 1, "queued", task_id="8102")
    journal.begin("story", 1, "comfy-story", prompt="story", base_url="b", mode="pro", seconds=12.0,
                  model="kling-v3-omni", shots=3)
    journal.settle("story", 1, "queued", task_id="8103")
    journal.begin("auto", 1, "comfy-auto", prompt="auto", base_url="b", mode="std", seconds=15.0,
                  model="kling-v3-omni", auto_shots=True)
    journal.settle("auto", 1, "queued", task_id="8104")
    out = cli("tasks", env=environment(fake_server, home)).stdout
    assert " O1 " in line_of(out, "8101") and "5 s · pro " in line_of(out, "8101")
    assert "v3 · sound" in line_of(out, "8102") and "12 s · pro + sound" in line_of(out, "8102")
    assert "≈ $1.68" in line_of(out, "8102")  # 12 s at the v3 pro-with-sound rate, 0.14
    assert "v3 · 3 shots" in line_of(out, "8103") and "≈ $1.34" in line_of(out, "8103")
    assert "v3 · auto shots" in line_of(out, "8104") and "≈ $1.26" in line_of(out, "8104")
    today = line_of(out, "Today")
    assert "4 tasks" in today and "≈ $4.84" in today  # 0.56 + 1.68 + 1.344 + 1.26
