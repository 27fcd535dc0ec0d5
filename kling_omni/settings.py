"""The pack's own settings, kept on the server beside the key store: `<store>/settings.json`.

The spend guard and the pace of creations are enforced where tasks are created, on the
server, including for prompts queued without a browser; so their settings live here, not
in the frontend's settings file. Settings › CometAPI reads and writes them through the
pack's routes.

They fail closed. A fresh install has a daily limit. The file is read field by field: a bad
value costs only that value (its default applies, and one warning names each). When the
daily limit itself cannot be read (a file cut short, not JSON, unreadable, or a bad limit),
the limit in force is the default, never "off", and `limit_unknown` says why: Submit refuses
until it can be read. A save is one load-merge-replace under a lock that other processes
honour too; it writes only what it validated, never defaults over the user's values, and a
file it cannot read is renamed aside, not overwritten.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import SettingsError, SettingsUnreadable
from .locks import held
from .pricing import DEFAULT_RATES, Rates
from .disk import sync_folder

log = logging.getLogger("cometapi_omni")
SETTINGS_FILE = "settings.json"
# Format 2: the daily limit has a default. Files without "format" were written before, when 0
# (no limit) was the default, so a 0 there is not taken as a choice; a 0 saved since is.
SETTINGS_FORMAT = 2
LOCK_NAME = "settings"  # <store>/settings.lock
DEFAULT_DAILY_LIMIT_USD = 10.0  # about 17 five-second (9 ten-second) pro O1 videos; under one 16-variation batch
MAX_DAILY_LIMIT_USD = 100_000.0
MAX_RATE_USD = 100.0  # per second (or per unit): anything above is a typo
MAX_IN_FLIGHT = 64
SPENDING = "Settings › CometAPI › Spending"


@dataclass(frozen=True)
class PackSettings:
    daily_limit_usd: float = DEFAULT_DAILY_LIMIT_USD  # 0 = no limit
    rates: Rates = field(default_factory=lambda: DEFAULT_RATES)
    background_collect: bool = True  # collect finished, paid tasks nobody is waiting for
    max_in_flight: int = 0  # tasks in flight per key; 0 = learn it from the account's 1303 answers
    # Why the user's daily limit could not be read ("" when it could). While set, the limit in
    # force is the default and Submit refuses (require_daily_limit).
    limit_unknown: str = ""
    limit_fix: str = ""  # what makes it readable, when not the settings file (a shared journal's database)

    def as_dict(self) -> dict:
        return {"daily_limit_usd": self.daily_limit_usd, "rates": self.rates.as_dict(),
                "background_collect": self.background_collect, "max_in_flight": self.max_in_flight}

    def require_daily_limit(self, node: str) -> None:
        """Raise SettingsUnreadable when the user's daily limit is not known (before anything is sent)."""
        if self.limit_unknown:
            raise SettingsUnreadable(node, self.limit_unknown, self.limit_fix)


DEFAULTS = PackSettings()
RATE_NAMES = tuple(f.name for f in fields(Rates))


# --- reading -----------------------------------------------------------------------------

def load_settings(store_dir: Path | None) -> PackSettings:
    """The settings in `store_dir`, field by field; each problem is logged once per process."""
    if store_dir is None:
        return DEFAULTS
    path = Path(store_dir) / SETTINGS_FILE
    raw, unreadable = _read(path)
    settings, problems, migrated = _interpret(raw)
    if unreadable:
        settings = replace(settings, limit_unknown=f"The daily limit in {path} cannot be read: {unreadable}.")
        _log_once(f"CometAPI Omni: {settings.limit_unknown} Submit refuses until it can; the other settings are "
                  f"the defaults meanwhile. Set the daily limit in {SPENDING}, or repair or delete the file.")
    elif settings.limit_unknown:  # the file reads; only its limit is bad: the rest is kept, and by a save too
        settings = replace(settings, limit_unknown=f"The daily limit in {path} cannot be read: "
                                                   f"{settings.limit_unknown}.",
                           limit_fix=f"set the daily limit in {SPENDING} (the file's other values are kept), "
                                     f"correct it in the file, or delete the file (without it the defaults apply, "
                                     f"with their daily limit)")
    if problems:
        _log_once(f"CometAPI Omni: in {path}, " + "; ".join(problems) + ". Each of these uses its default "
                  f"(every other value is kept); save it again in {SPENDING}.")
    if migrated:
        _log_once(f"CometAPI Omni: {path} was written before the daily limit had a default (its 0 meant no "
                  f"limit): the daily limit is now ${DEFAULT_DAILY_LIMIT_USD:.2f}. Change it in {SPENDING}; "
                  f"set it to 0 there to have no limit.")
    return settings


def _read(path: Path) -> tuple[dict, str]:
    """(the file's object, "") or ({}, why it cannot be read); a missing file is an empty object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, ""
    except OSError as exc:
        return {}, f"the file cannot be read ({exc.strerror or exc})"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        return {}, f"the file is not valid JSON, perhaps cut short ({exc})"
    if not isinstance(data, dict):
        return {}, "the file holds no settings object"
    return data, ""


def _interpret(raw: dict) -> tuple[PackSettings, list, bool]:
    """(settings, each bad value in words, whether an old file's 0 limit became the default)."""
    values, problems, limit_unknown = {}, [], ""
    for name, check in _FIELDS.items():
        if name not in raw:
            continue
        try:
            values[name] = check(raw[name])
        except SettingsError as exc:
            if name == "daily_limit_usd":
                limit_unknown = exc.what
            else:
                problems.append(exc.what)
    rates = {}
    if "rates" in raw:
        if isinstance(raw["rates"], dict):
            for name in RATE_NAMES:
                if name in raw["rates"]:
                    try:
                        rates[name] = _rate(name, raw["rates"][name])
                    except SettingsError as exc:
                        problems.append(exc.what)
        else:
            problems.append(SettingsError("rates", raw["rates"], "an object of USD rates").what)
    migrated = "format" not in raw and values.get("daily_limit_usd") == 0.0
    if migrated:
        values["daily_limit_usd"] = DEFAULT_DAILY_LIMIT_USD
    return replace(DEFAULTS, rates=replace(DEFAULT_RATES, **rates), limit_unknown=limit_unknown, **values), \
        problems, migrated


_logged: set = set()


def _log_once(message: str) -> None:
    # The settings are read on every request and every Submit: a problem is said once, not each time.
    if message not in _logged:
        _logged.add(message)
        log.warning("%s", message)


# --- saving ------------------------------------------------------------------------------

def save_settings(store_dir: Path, changes: dict) -> PackSettings:
    """Apply `changes` (any subset of PackSettings.as_dict()) to the stored settings and save them.

    SettingsError (nothing saved) names the first bad value. The file keeps every value the
    changes do not carry, as it was; one that could not be read is renamed aside first.
    """
    new = validated(changes)
    folder = Path(store_dir)
    with held(folder, LOCK_NAME):  # load, merge and replace as one step, across processes
        path = folder / SETTINGS_FILE
        raw, unreadable = _read(path)
        if unreadable:
            kept = _set_aside(path)
            log.warning("CometAPI Omni: %s could not be read (%s); kept as %s, and a new one holds what was "
                        "just saved.", path, unreadable, kept.name)
        elif "format" not in raw and _is_zero(raw.get("daily_limit_usd")):
            raw["daily_limit_usd"] = DEFAULT_DAILY_LIMIT_USD  # what it meant until now (see SETTINGS_FORMAT)
        for name, value in new.items():
            if name == "rates" and isinstance(raw.get("rates"), dict):
                value = {**raw["rates"], **value}
            raw[name] = value
        raw["format"] = SETTINGS_FORMAT
        _write(folder, raw)
    return _interpret(raw)[0]


def _is_zero(value) -> bool:
    return type(value) in (int, float) and value == 0


def _set_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        kept = path.with_name(f"{path.name}.unreadable-{stamp}" + (f"-{n}" if n else ""))
        if not kept.exists():
            os.replace(path, kept)
            return kept
    raise FileExistsError(f"too many kept copies of {path}")


def _write(folder: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=folder)  # 0600, like the key file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / SETTINGS_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_folder(folder)


# --- checking values ---------------------------------------------------------------------

def validated(changes: dict) -> dict:
    """The known settings in `changes`, each checked, as stored (rates: only those given);
    SettingsError names the first bad one. A rate this version does not know is ignored."""
    if not isinstance(changes, dict):
        raise SettingsError("settings", changes, "send an object of settings")
    out = {name: check(changes[name]) for name, check in _FIELDS.items() if name in changes}
    if "rates" in changes:
        rates = changes["rates"]
        if not isinstance(rates, dict):
            raise SettingsError("rates", rates, "an object of USD rates")
        out["rates"] = {name: _rate(name, value) for name, value in rates.items() if name in RATE_NAMES}
    return out


def _daily_limit(value) -> float:
    return _number("daily_limit_usd", value, 0.0, MAX_DAILY_LIMIT_USD, "0 (no limit) or a USD amount")


def _background_collect(value) -> bool:
    if not isinstance(value, bool):
        raise SettingsError("background_collect", value, "true or false")
    return value


def _max_in_flight(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_IN_FLIGHT:
        raise SettingsError("max_in_flight", value, f"0 (learn it from the account) to {MAX_IN_FLIGHT} tasks")
    return value


def _rate(name: str, value) -> float:
    return _number(f"rates.{name}", value, 0.0, MAX_RATE_USD, "a USD amount above 0", positive=True)


_FIELDS = {"daily_limit_usd": _daily_limit, "background_collect": _background_collect,
           "max_in_flight": _max_in_flight}


def _number(name: str, value, low: float, high: float, rule: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(name, value, rule)
    if value < low or value > high or (positive and value <= 0):
        raise SettingsError(name, value, f"{rule}, at most {high:g}")
    return float(value)
