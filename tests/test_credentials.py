import os
import stat
import sys
from pathlib import Path

import pytest

from kling_omni import credentials
from kling_omni.errors import KeyMissing, KeyRejected

KEY = "sk-test-0123456789-abcdefghij-KLMN7f3a"
OTHER = "sk-fromenv-9876543210-zyxwvuts-QRSTe9b1"

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv(credentials.ENV_VAR, raising=False)
    monkeypatch.delenv(credentials.HOME_ENV_VAR, raising=False)


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


def test_saved_key_is_resolved(store):
    credentials.save_key(store, f"  {KEY}\n")
    assert credentials.resolve_key(store) == KEY
    assert (store / "key").read_text().strip() == KEY


def test_environment_wins_over_saved_key(store, monkeypatch):
    credentials.save_key(store, KEY)
    monkeypatch.setenv(credentials.ENV_VAR, f" {OTHER} ")
    assert credentials.resolve_key(store) == OTHER
    status = credentials.key_status(store)
    assert status == {"set": True, "source": "env", "ends_with": "e9b1",
                      "env_overrides": True, "stored": True}


def test_blank_environment_variable_counts_as_unset(store, monkeypatch):
    monkeypatch.setenv(credentials.ENV_VAR, "   ")
    credentials.save_key(store, KEY)
    assert credentials.resolve_key(store) == KEY
    assert credentials.key_status(store)["source"] == "store"


def test_missing_key_says_how_and_where(store):
    with pytest.raises(KeyMissing) as info:
        credentials.resolve_key(store)
    message = str(info.value)
    assert "COMETAPI_KEY" in message and "Settings" in message
    assert str(store / "key") in message


def test_missing_key_without_store(monkeypatch):
    with pytest.raises(KeyMissing, match="COMETAPI_KEY"):
        credentials.resolve_key(None)
    assert credentials.key_status(None) == {"set": False, "source": None, "ends_with": None,
                                            "env_overrides": False, "stored": False}


@posix_only
def test_store_is_owner_only(tmp_path):
    store = tmp_path / "deep" / "store"
    credentials.save_key(store, KEY)
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store / "key").st_mode) == 0o600


@posix_only
def test_existing_loose_folder_is_tightened(store):
    store.mkdir(mode=0o755)
    os.chmod(store, 0o755)
    credentials.save_key(store, KEY)
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o700


def test_save_replaces_and_leaves_no_temp_files(store):
    credentials.save_key(store, KEY)
    credentials.save_key(store, OTHER)
    assert credentials.resolve_key(store) == OTHER
    assert sorted(p.name for p in store.iterdir()) == ["key"]


@pytest.mark.parametrize("bad, why", [
    ("", "empty"),
    ("   \n\t", "empty"),
    ("sk-abc\nsk-def", "line break"),
    ("sk-abc def", "whitespace"),
    ("sk-abc\u201cdef", "non-ASCII character at position 7"),
    ("sk-" + "x" * 600, "too long"),
    ("sk-abc\x00def", "control"),
    (None, "text"),
])
def test_rejected_keys_are_not_saved_and_not_echoed(store, bad, why):
    with pytest.raises(KeyRejected, match=why) as info:
        credentials.save_key(store, bad)
    if bad and bad.strip():
        assert bad.strip() not in str(info.value)
    assert not (store / "key").exists()


def test_status_is_masked(store):
    credentials.save_key(store, KEY)
    status = credentials.key_status(store)
    assert status == {"set": True, "source": "store", "ends_with": "7f3a",
                      "env_overrides": False, "stored": True}
    assert KEY not in repr(status) and KEY[:-4] not in repr(status)


def test_short_key_shows_no_tail(store):
    credentials.save_key(store, "sk-short1")
    assert credentials.key_status(store)["ends_with"] is None
    assert credentials.mask("sk-short1") == "(set)"
    assert credentials.mask(KEY) == "…7f3a"
    assert credentials.mask(None) == ""


def test_clear_key(store):
    credentials.save_key(store, KEY)
    credentials.clear_key(store)
    credentials.clear_key(store)  # twice is fine
    assert credentials.key_status(store)["set"] is False
    with pytest.raises(KeyMissing):
        credentials.resolve_key(store)


def test_default_store_is_outside_comfyui_and_overridable(monkeypatch, tmp_path):
    default = credentials.default_store_dir()
    assert default == Path.home() / ".cometapi-omni"
    repo = Path(credentials.__file__).resolve().parent.parent
    assert repo not in default.resolve().parents
    monkeypatch.setenv(credentials.HOME_ENV_VAR, str(tmp_path / "home"))
    assert credentials.default_store_dir() == tmp_path / "home"
