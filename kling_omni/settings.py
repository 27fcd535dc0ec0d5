"""The pack's own settings, kept on the server beside the key store: `<store>/settings.json`.

The spend guard and the pace of creations are enforced where tasks are created, on the
server, including for prompts queued without a browser; so their settings live here, not
in the frontend's settings file. Settings › CometAPI reads and writes them through the
pack's routes. A missing or unreadable file means the defaults: a settings problem never
stops a node.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import SettingsError
from .pricing import DEFAULT_RATES, Rates

log = logging.getLogger("cometapi_omni")
SETTINGS_FILE = "settings.json"
MAX_DAILY_LIMIT_USD = 100_000.0
MAX_RATE_USD = 100.0  # per second (or per unit): anything above is a typo
MAX_IN_FLIGHT = 64


@dataclass(frozen=True)
class PackSettings:
    daily_limit_usd: float = 0.0  # 0 = no limit
    rates: Rates = field(default_factory=lambda: DEFAULT_RATES)
    background_collect: bool = True  # collect finished, paid tasks nobody is waiting for
    max_in_flight: int = 0  # tasks in flight per key; 0 = learn it from the account's 1303 answers

    def as_dict(self) -> dict:
        return {"daily_limit_usd": self.daily_limit_usd, "rates": self.rates.as_dict(),
                "background_collect": self.background_collect, "max_in_flight": self.max_in_flight}


DEFAULTS = PackSettings()


def load_settings(store_dir: Path | None) -> PackSettings:
    if store_dir is None:
        return DEFAULTS
    path = Path(store_dir) / SETTINGS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULTS
    except (OSError, ValueError) as exc:
        log.warning("CometAPI Omni: could not read %s (%s); using the default settings.", path, exc)
        return DEFAULTS
    try:
        return merged(DEFAULTS, data if isinstance(data, dict) else {})
    except SettingsError as exc:
        log.warning("CometAPI Omni: %s in %s; using the default settings.", exc, path)
        return DEFAULTS


def save_settings(store_dir: Path, changes: dict) -> PackSettings:
    """Apply `changes` (any subset of PackSettings.as_dict()) to the stored settings and save them."""
    settings = merged(load_settings(store_dir), changes)
    folder = Path(store_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=folder)  # 0600, like the key file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(settings.as_dict(), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / SETTINGS_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return settings


def merged(base: PackSettings, changes: dict) -> PackSettings:
    """`base` with `changes` applied, each value checked; SettingsError names the first bad one."""
    if not isinstance(changes, dict):
        raise SettingsError("settings", changes, "send an object of settings")
    updates = {}
    if "daily_limit_usd" in changes:
        updates["daily_limit_usd"] = _number("daily_limit_usd", changes["daily_limit_usd"], 0.0,
                                             MAX_DAILY_LIMIT_USD, "0 (no limit) or a USD amount")
    if "background_collect" in changes:
        value = changes["background_collect"]
        if not isinstance(value, bool):
            raise SettingsError("background_collect", value, "true or false")
        updates["background_collect"] = value
    if "max_in_flight" in changes:
        value = changes["max_in_flight"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_IN_FLIGHT:
            raise SettingsError("max_in_flight", value, f"0 (learn it from the account) to {MAX_IN_FLIGHT} tasks")
        updates["max_in_flight"] = value
    if "rates" in changes:
        rates = changes["rates"]
        if not isinstance(rates, dict):
            raise SettingsError("rates", rates, "an object of USD rates")
        known = base.rates.as_dict()
        new = {}
        for name, value in rates.items():
            if name not in known:
                continue  # a rate this version does not know: ignored, not an error
            new[name] = _number(f"rates.{name}", value, 0.0, MAX_RATE_USD, "a USD amount above 0", positive=True)
        updates["rates"] = replace(base.rates, **new)
    return replace(base, **updates)


def _number(name: str, value, low: float, high: float, rule: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(name, value, rule)
    if value < low or value > high or (positive and value <= 0):
        raise SettingsError(name, value, f"{rule}, at most {high:g}")
    return float(value)
