"""What a request bills: exact mode and seconds, estimated USD; the settings the guard reads."""

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from kling_omni import pricing
from kling_omni.errors import SettingsError
from kling_omni.request import OmniRequest, Refs, VideoRef
from kling_omni.settings import DEFAULTS, SETTINGS_FILE, load_settings, save_settings

CASES = json.loads((Path(__file__).parent / "pricing_cases.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["text"])
def test_cost_cases_shared_with_the_frontend(case):
    rates = replace(pricing.DEFAULT_RATES, **case.get("rates", {}))
    cost = pricing.cost(case["mode"], case["seconds"], case["video_input"], rates, model=case.get("model", "kling-video-o1"),
                        sound=case.get("sound", False), shots=case.get("shots", 0))
    assert cost.text == case["text"]
    assert cost.usd_low == pytest.approx(case["usd_low"])
    assert cost.usd_high == pytest.approx(case["usd_high"])


def test_estimate_follows_the_request():
    text_only = OmniRequest(prompt="a fox", mode="pro", duration=5)
    assert pricing.estimate(text_only).text == "5 s · pro ≈ $0.56"
    feature = OmniRequest(prompt="next shot", mode="std", duration=5,
                          refs=Refs((VideoRef("https://example.com/in.mp4", "feature"),)))
    assert pricing.estimate(feature).text == "5 s · std ≈ $0.63"
    edit = OmniRequest(prompt="add a hat", mode="pro", duration=5,
                       refs=Refs((VideoRef("https://example.com/in.mp4", "base"),)))
    cost = pricing.estimate(edit)
    assert cost.seconds is None  # the duration widget is not sent for a base edit
    assert (cost.usd_low, cost.usd_high) == (pytest.approx(0.504), pytest.approx(1.68))


def test_actual_charge_from_units():
    assert pricing.actual_usd("4") == pytest.approx(0.56)
    assert pricing.actual_usd("") is None
    assert pricing.actual_usd(None) is None
    assert pricing.actual_usd("nan") is None


def test_settings_default_when_missing_and_fail_closed_when_broken(tmp_path, caplog):
    assert load_settings(tmp_path) == DEFAULTS
    (tmp_path / SETTINGS_FILE).write_text("{not json")
    broken = load_settings(tmp_path)
    assert broken.daily_limit_usd == DEFAULTS.daily_limit_usd > 0 and SETTINGS_FILE in broken.limit_unknown
    assert SETTINGS_FILE in caplog.text  # more in test_settings_guard.py


def test_settings_saved_checked_and_private(tmp_path):
    old = os.umask(0o022)
    try:
        saved = save_settings(tmp_path, {"daily_limit_usd": 12.5, "rates": {"pro": 0.2, "future_mode": 1},
                                         "max_in_flight": 3})
    finally:
        os.umask(old)
    assert saved.daily_limit_usd == 12.5 and saved.rates.pro == 0.2 and saved.rates.std == DEFAULTS.rates.std
    assert load_settings(tmp_path) == saved
    assert stat.S_IMODE((tmp_path / SETTINGS_FILE).stat().st_mode) == 0o600
    # a later change keeps what was saved before
    later = save_settings(tmp_path, {"background_collect": False})
    assert load_settings(tmp_path) == later and later.daily_limit_usd == 12.5 and not later.background_collect


@pytest.mark.parametrize("changes, named", [
    ({"daily_limit_usd": -1}, "daily_limit_usd"),
    ({"daily_limit_usd": float("nan")}, "daily_limit_usd"),
    ({"daily_limit_usd": "10"}, "daily_limit_usd"),
    ({"rates": {"pro": 0}}, "rates.pro"),
    ({"rates": {"std": 1e9}}, "rates.std"),
    ({"max_in_flight": 1.5}, "max_in_flight"),
    ({"background_collect": "yes"}, "background_collect"),
])
def test_bad_settings_are_refused_and_nothing_saved(tmp_path, changes, named):
    with pytest.raises(SettingsError) as caught:
        save_settings(tmp_path, changes)
    assert named in str(caught.value) and "Nothing was saved" in str(caught.value)
    assert not (tmp_path / SETTINGS_FILE).exists()
