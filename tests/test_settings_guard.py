"""The settings that guard the money fail closed (issue 16, part 5).

A fresh install has a daily limit. One bad value costs only that value. A file that cannot be
read leaves the daily limit unknown, and Submit refuses, saying which file and how to fix it;
nothing is sent. A save is one load-merge-replace under a lock that other processes honour too.
"""

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from kling_omni.errors import SettingsUnreadable
from kling_omni.settings import (DEFAULT_DAILY_LIMIT_USD, DEFAULTS, SETTINGS_FILE, SETTINGS_FORMAT, load_settings,
                                 save_settings)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_log_memory():
    """Each problem is logged once per process: every test starts with none logged."""
    from kling_omni import settings
    settings._logged.clear()


def write(folder: Path, content) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SETTINGS_FILE
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


# --- defaults ----------------------------------------------------------------------------

def test_a_fresh_install_has_a_daily_limit(tmp_path):
    assert DEFAULT_DAILY_LIMIT_USD == 10.0
    assert load_settings(tmp_path).daily_limit_usd == DEFAULTS.daily_limit_usd == DEFAULT_DAILY_LIMIT_USD
    assert load_settings(tmp_path).limit_unknown == ""


def test_a_zero_from_before_the_default_gets_the_default_once_logged(tmp_path, caplog):
    # What every earlier version wrote: the whole object, with 0 (then the default) for "no limit".
    write(tmp_path, {"daily_limit_usd": 0.0, "rates": {"pro": 0.2}, "background_collect": True, "max_in_flight": 0})
    with caplog.at_level(logging.WARNING, "cometapi_omni"):
        first, second = load_settings(tmp_path), load_settings(tmp_path)
    assert first == second and first.daily_limit_usd == DEFAULT_DAILY_LIMIT_USD and first.rates.pro == 0.2
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "$10.00" in said[0] and "0" in said[0] and "Settings › CometAPI › Spending" in said[0]
    # A limit set before is kept as it was.
    write(tmp_path, {"daily_limit_usd": 25.0})
    assert load_settings(tmp_path).daily_limit_usd == 25.0


def test_a_zero_saved_now_turns_the_limit_off(tmp_path):
    saved = save_settings(tmp_path, {"daily_limit_usd": 0})
    assert saved.daily_limit_usd == 0.0 and load_settings(tmp_path).daily_limit_usd == 0.0
    assert json.loads((tmp_path / SETTINGS_FILE).read_text())["format"] == SETTINGS_FORMAT


def test_saving_another_field_over_an_old_file_keeps_the_new_default(tmp_path):
    # The old zero must not become a deliberate "off" because the file now carries a format.
    write(tmp_path, {"daily_limit_usd": 0.0, "rates": {"pro": 0.2}})
    saved = save_settings(tmp_path, {"max_in_flight": 2})
    assert saved.daily_limit_usd == DEFAULT_DAILY_LIMIT_USD and saved.max_in_flight == 2 and saved.rates.pro == 0.2
    assert load_settings(tmp_path) == saved


# --- damaged files -----------------------------------------------------------------------

def test_one_bad_value_keeps_every_other_value(tmp_path, caplog):
    write(tmp_path, {"format": SETTINGS_FORMAT, "daily_limit_usd": 7.5, "background_collect": False,
                     "max_in_flight": 3, "rates": {"pro": 0.2, "std": "cheap", "usd_per_unit": -1}})
    with caplog.at_level(logging.WARNING, "cometapi_omni"):
        settings = load_settings(tmp_path)
    assert settings.daily_limit_usd == 7.5 and settings.limit_unknown == ""
    assert settings.background_collect is False and settings.max_in_flight == 3 and settings.rates.pro == 0.2
    assert settings.rates.std == DEFAULTS.rates.std and settings.rates.usd_per_unit == DEFAULTS.rates.usd_per_unit
    (warning,) = [r.getMessage() for r in caplog.records]  # one warning, naming each bad value
    assert "rates.std" in warning and "rates.usd_per_unit" in warning and str(tmp_path / SETTINGS_FILE) in warning


@pytest.mark.parametrize("damage", ["cut short", "not json", "not an object", "unreadable", "bad limit"])
def test_a_file_that_cannot_be_read_leaves_the_limit_unknown(tmp_path, damage):
    good = json.dumps({"format": SETTINGS_FORMAT, "daily_limit_usd": 0, "rates": {"pro": 0.2}})
    path = tmp_path / SETTINGS_FILE
    if damage == "unreadable":
        path.mkdir(parents=True)  # reading it fails with an OSError, even for root
    else:
        write(tmp_path, {"cut short": good[:30], "not json": "daily_limit_usd = 0", "not an object": "[0]",
                         "bad limit": good.replace('"daily_limit_usd": 0', '"daily_limit_usd": "off"')}[damage])
    settings = load_settings(tmp_path)
    assert settings.limit_unknown and settings.daily_limit_usd == DEFAULT_DAILY_LIMIT_USD  # never "off"
    if damage == "bad limit":
        assert settings.rates.pro == 0.2 and "daily_limit_usd" in settings.limit_unknown


@pytest.mark.parametrize("damage", ["cut short", "unreadable", "bad limit"])
def test_submit_refuses_when_the_limit_is_unknown_and_sends_nothing(env, fake_server, damage):
    home = Path(env["COMETAPI_OMNI_HOME"])
    path = home / SETTINGS_FILE
    if damage == "unreadable":
        path.mkdir(parents=True)
    else:
        write(home, {"cut short": '{"format": 2, "daily_limit_usd": 5', "bad limit": '{"daily_limit_usd": null}'}[damage])

    async def submit():
        (request,) = await NODES["CometOmniPrompt"]().build(prompt="guarded", mode="pro", aspect_ratio="16:9",
                                                            duration=5)
        return await NODES["CometOmniSubmit"]().submit(request=request, seed=0, variations=16, unique_id="4")

    with pytest.raises(SettingsUnreadable) as refused:
        asyncio.run(submit())
    text = str(refused.value)
    assert "CometOmniSubmit #4" in text and str(path) in text and "nothing was sent" in text.lower()
    assert "Settings › CometAPI › Spending" in text and "delete" in text
    assert fake_server.requests == []
    from cometapi_kling_omni.nodes import runtime
    assert runtime.journal().jobs() == []  # nothing reserved either


def test_saving_over_a_damaged_file_keeps_it_aside_and_writes_only_what_was_saved(tmp_path):
    damaged = '{"format": 2, "daily_limit_usd": 50, "rates": {"pro": 0.3'
    write(tmp_path, damaged)
    saved = save_settings(tmp_path, {"daily_limit_usd": 20})
    assert saved.daily_limit_usd == 20.0 and saved.limit_unknown == ""
    on_disk = json.loads((tmp_path / SETTINGS_FILE).read_text())
    assert on_disk == {"format": SETTINGS_FORMAT, "daily_limit_usd": 20.0}  # no defaults written over the user's rates
    (kept,) = tmp_path.glob(SETTINGS_FILE + ".unreadable-*")
    assert kept.read_text() == damaged


def test_saving_one_field_keeps_the_file_s_other_values_even_a_bad_one(tmp_path):
    write(tmp_path, {"format": SETTINGS_FORMAT, "daily_limit_usd": 3, "rates": {"pro": 0.2, "std": "cheap"},
                     "from_a_newer_version": {"x": 1}})
    save_settings(tmp_path, {"rates": {"std_with_video": 0.15}})
    on_disk = json.loads((tmp_path / SETTINGS_FILE).read_text())
    assert on_disk["rates"] == {"pro": 0.2, "std": "cheap", "std_with_video": 0.15}
    assert on_disk["daily_limit_usd"] == 3 and on_disk["from_a_newer_version"] == {"x": 1}


# --- saves from two processes ------------------------------------------------------------

SAVER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])  # the library alone: quick to import, the same code the pack runs
    from kling_omni.settings import load_settings, save_settings
    from pathlib import Path
    store, field, rounds = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    mine = (lambda s: s.max_in_flight) if field == "max_in_flight" else (lambda s: s.rates.std)
    value = (lambda i: i % 60 + 1) if field == "max_in_flight" else (lambda i: round(0.001 * (i + 1), 6))
    change = (lambda v: {"max_in_flight": v}) if field == "max_in_flight" else (lambda v: {"rates": {"std": v}})
    (store / f"ready-{field}").touch()
    while len(list(store.glob("ready-*"))) < 2:  # both start saving at the same moment
        time.sleep(0.001)
    last = None
    for i in range(rounds):
        now = mine(load_settings(store))
        if last is not None and now != last:
            sys.exit(f"round {i}: {field} was {last}, another save put back {now}")
        save_settings(store, change(value(i)))
        last = value(i)
    print("ok")
""")


def test_two_processes_saving_different_fields_lose_no_change(tmp_path):
    save_settings(tmp_path, {"daily_limit_usd": 4})
    rounds = 150
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(ROOT), str(tmp_path), field, str(rounds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for field in ("max_in_flight", "rates.std")]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outcomes
    final = load_settings(tmp_path)
    assert final.max_in_flight == (rounds - 1) % 60 + 1 and final.rates.std == pytest.approx(0.001 * rounds)
    assert final.daily_limit_usd == 4.0
    assert not list(tmp_path.glob(".settings-*"))  # no temporary file left behind
