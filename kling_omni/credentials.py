"""Where the CometAPI key comes from, and how the UI stores one.

Order: the `COMETAPI_KEY` environment variable, then the file `<store_dir>/key`
(owner-only, written atomically). The ComfyUI bridge picks `store_dir` (ComfyUI's
system-user directory, which is not served over HTTP, or a git-ignored folder of the
pack); plain Python uses `default_store_dir()`.

Nothing here ever puts the key in a message, a log line or a return value other than
`resolve_key`'s: callers that show anything get `key_status`, which is masked.

Every key is checked where it enters (Settings, the environment, the key file) with one
rule, `key_problem`: a Bearer token is printable ASCII without whitespace. A key that breaks
it would make the HTTP library fail while building the request, or send a broken header.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .errors import KeyInvalid, KeyMissing, KeyRejected

ENV_VAR = "COMETAPI_KEY"
HOME_ENV_VAR = "COMETAPI_OMNI_HOME"
KEY_FILE = "key"
MAX_KEY_CHARS = 512  # CometAPI keys are ~50 characters; a pasted paragraph is a mistake
MIN_CHARS_TO_SHOW_TAIL = 12  # below this, 4 visible characters would give too much away


def default_store_dir() -> Path:
    """The store for plain Python use: $COMETAPI_OMNI_HOME, else ~/.cometapi-omni."""
    home = os.environ.get(HOME_ENV_VAR, "").strip()
    return Path(home).expanduser() if home else Path.home() / ".cometapi-omni"


def key_id(key: str) -> str:
    """Which key, without the key: the journal tells accounts apart by this (their slots and tasks)."""
    return hashlib.sha256(b"cometapi-omni-key:" + key.strip().encode("utf-8", "surrogatepass")).hexdigest()[:16]


def mask(key: str | None) -> str:
    """'…7f3a' for a key, '' for none. Short keys show nothing of themselves."""
    tail = _tail(key)
    if tail:
        return "…" + tail
    return "(set)" if key else ""


def resolve_key(store_dir: Path | None) -> str:
    """The key to send; KeyMissing saying where it looked and how to set one, or KeyInvalid
    naming the source of a key that cannot be sent."""
    key = _env_key()
    if key:
        problem = key_problem(key)
        if problem:
            raise KeyInvalid(f"the {ENV_VAR} environment variable", problem,
                             f"set {ENV_VAR} to the key alone and restart ComfyUI (or unset it to use the "
                             f"key saved in Settings › CometAPI).")
        return key
    key = _stored_key(store_dir)
    if key:
        problem = key_problem(key)
        if problem:
            raise KeyInvalid(f"the key file {Path(store_dir) / KEY_FILE}", problem,
                             "save the key again in ComfyUI Settings › CometAPI.")
        return key
    looked = [f"the {ENV_VAR} environment variable (not set)"]
    if store_dir is not None:
        looked.append(f"the key file {Path(store_dir) / KEY_FILE} (none saved)")
    raise KeyMissing(", ".join(looked))


def save_key(store_dir: Path, key: str) -> None:
    """Store a key for later runs: owner-only file in an owner-only folder, atomic replace."""
    key = _checked(key)
    folder = Path(store_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _chmod(folder, 0o700)
    # mkstemp creates the file 0600, so the key is never readable by others, not even briefly.
    fd, tmp = tempfile.mkstemp(prefix=".key-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        _chmod(Path(tmp), 0o600)
        os.replace(tmp, folder / KEY_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clear_key(store_dir: Path) -> None:
    """Forget the stored key (the environment variable, if any, is untouched)."""
    (Path(store_dir) / KEY_FILE).unlink(missing_ok=True)


def key_status(store_dir: Path | None) -> dict:
    """What the UI may show: whether a key is set, from where, its last 4 characters.

    `env_overrides` is true when COMETAPI_KEY is set: it wins over any saved key.
    `stored` says whether a saved key exists (even if the environment overrides it).
    """
    env, stored = _env_key(), _stored_key(store_dir)
    active = env or stored
    return {
        "set": bool(active),
        "source": "env" if env else ("store" if stored else None),
        "ends_with": _tail(active),
        "env_overrides": bool(env),
        "stored": bool(stored),
    }


# --- helpers --------------------------------------------------------------------------

def _env_key() -> str:
    return os.environ.get(ENV_VAR, "").strip()


def _stored_key(store_dir: Path | None) -> str:
    if store_dir is None:
        return ""
    try:
        return (Path(store_dir) / KEY_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except (OSError, UnicodeDecodeError):
        # An unreadable file is treated as no key; the KeyMissing message names the file.
        return ""


def key_problem(key: str) -> str:
    """What keeps `key` (already stripped) from being sent as a Bearer token, '' if nothing.

    Says what and where, never which characters: the message must not give the key away.
    """
    if not key:
        return "is empty"
    if len(key) > MAX_KEY_CHARS:
        return f"is {len(key)} characters long, too long for a CometAPI key (limit {MAX_KEY_CHARS})"
    for position, ch in enumerate(key, 1):
        if ch in "\r\n":
            return f"contains a line break (at position {position})"
        if ch.isspace():
            return f"contains whitespace at position {position}"
        if not ch.isascii():
            return f"contains a non-ASCII character at position {position} (a typographic quote or dash?)"
        if not ch.isprintable():
            return f"contains a control character at position {position}"
    return ""


def _checked(key: object) -> str:
    if not isinstance(key, str):
        raise KeyRejected("The key must be text.")
    key = key.strip()
    problem = key_problem(key)
    if problem:
        raise KeyRejected(f"The key {problem}: paste your CometAPI key (it starts with sk-) alone, on one line.")
    return key


def _tail(key: str | None) -> str | None:
    if not key or len(key) < MIN_CHARS_TO_SHOW_TAIL:
        return None
    return key[-4:]


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError:  # e.g. a filesystem without POSIX modes; the file is still ours
        pass
