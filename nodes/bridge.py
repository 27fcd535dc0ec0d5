"""The only door to ComfyUI. Every ComfyUI-only service goes through here.

Imported lazily and degrading to plain-Python behaviour outside ComfyUI, so the nodes
run unchanged in tests, in `make demo` and in a real ComfyUI.
"""

from __future__ import annotations

import contextvars
import logging
import os
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("cometapi_omni")

PACK_DIR = Path(__file__).resolve().parent.parent
SUBFOLDER = "cometapi_omni"  # under ComfyUI's output directory


@lru_cache(maxsize=None)
def _comfy():
    """ComfyUI's modules, or None outside ComfyUI."""
    try:
        import folder_paths
        import comfy.model_management as model_management
    except ImportError:
        return None
    try:
        from server import PromptServer
    except ImportError:  # ComfyUI imported as a library, without its server
        PromptServer = None
    return {"folder_paths": folder_paths, "mm": model_management, "PromptServer": PromptServer}


def in_comfyui() -> bool:
    return _comfy() is not None


def _server():
    comfy = _comfy()
    server = comfy and comfy["PromptServer"]
    return getattr(server, "instance", None) if server else None


# --- interrupt -------------------------------------------------------------------------

def interrupted() -> bool:
    """True once the user pressed Cancel. Does not clear ComfyUI's flag."""
    comfy = _comfy()
    return bool(comfy and comfy["mm"].processing_interrupted())


def interrupt_error(fallback: Exception) -> Exception:
    """What to raise after Cancel: ComfyUI's own exception (an 'interrupted' run, not an error)."""
    comfy = _comfy()
    if comfy is None:
        return fallback
    return comfy["mm"].InterruptProcessingException(str(fallback))


# --- lists ---------------------------------------------------------------------------

def list_index() -> int | None:
    """Which item of an input list ComfyUI is running this node for (0-based), from its executing
    context; None outside ComfyUI or in one without that context."""
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None
    context = get_executing_context()
    return None if context is None else context.list_index


# --- progress --------------------------------------------------------------------------

def progress_text(node_id, text: str) -> None:
    """Status text shown on the node while it runs, sent only to the page that queued the prompt
    (its client id), as ComfyUI sends its own `executing` and `executed`. Given no client id,
    ComfyUI would send it to every page connected to /ws, a page of another site included; a
    prompt queued without one gets none, like ComfyUI's own events."""
    server = _server()
    client_id = getattr(server, "client_id", None)
    if server is not None and node_id is not None and client_id is not None:
        server.send_progress_text(text, str(node_id), client_id)


def progress_bar(node_id, total: int):
    """ComfyUI's progress bar for this node, or None outside ComfyUI."""
    if not in_comfyui():
        return None
    import comfy.utils
    return _Bar(comfy.utils.ProgressBar(total, node_id=node_id))


class _Bar:
    def __init__(self, bar):
        self._bar = bar

    def update(self, value: int, total: int) -> None:
        try:
            self._bar.update_absolute(value, total)
        except Exception as exc:
            # ComfyUI's progress hook raises on Cancel and clears the flag; put it back so
            # the pack's own cancellation check (with its task-id message) still fires.
            mm = _comfy()["mm"]
            if isinstance(exc, mm.InterruptProcessingException):
                mm.interrupt_current_processing(True)
            else:
                raise


def send_event(event: str, data: dict) -> None:
    """A custom event to every open ComfyUI page (api.addEventListener(event, ...) there).
    send_sync is thread-safe: callable from any thread."""
    server = _server()
    if server is not None:
        server.send_sync(event, data)


# --- folders ---------------------------------------------------------------------------

def output_dir() -> Path:
    """Where paid videos are kept: the pack's folder in ComfyUI's output folder."""
    return output_root() / SUBFOLDER


def output_root() -> Path:
    """ComfyUI's output folder, what its /view serves as type=output (or $COMETAPI_OMNI_OUTPUT, ./output)."""
    comfy = _comfy()
    if comfy is not None:
        return Path(comfy["folder_paths"].get_output_directory())
    return Path(os.environ.get("COMETAPI_OMNI_OUTPUT", "output"))


def data_dir() -> Path:
    """The pack's private folder: key store and job journal.

    ComfyUI's system-user directory when it has one (not reachable over HTTP), else a
    git-ignored data/ folder of the pack; outside ComfyUI $COMETAPI_OMNI_HOME or ~/.cometapi-omni.
    """
    comfy = _comfy()
    if comfy is None:
        from ..kling_omni.credentials import default_store_dir
        return default_store_dir()
    get_system = getattr(comfy["folder_paths"], "get_system_user_directory", None)
    if get_system is not None:
        return Path(get_system("cometapi_omni"))
    return PACK_DIR / "data"


# --- types -----------------------------------------------------------------------------

def video_output(path: Path):
    """ComfyUI's VIDEO value for a file on disk (lazy: nothing is decoded here)."""
    if in_comfyui():
        try:
            from comfy_api.input_impl import VideoFromFile
            return VideoFromFile(str(path))
        except ImportError:  # ComfyUI older than the VIDEO type
            pass
    return LocalVideo(str(path))


class LocalVideo:
    """Stand-in VIDEO outside ComfyUI: a reference to the file, like VideoFromFile."""

    def __init__(self, path: str):
        self.path = path

    def get_stream_source(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"LocalVideo({self.path!r})"


# --- the running prompt ----------------------------------------------------------------

def running_prompt() -> dict | None:
    """The API-format prompt being executed, or None when it cannot be known.

    IS_CHANGED is called without the PROMPT hidden input, so the Poll node reads it here
    to learn which of its outputs are linked.
    """
    server = _server()
    queue = getattr(server, "prompt_queue", None)
    running = getattr(queue, "currently_running", None)
    if not running:
        return None
    item = next(iter(dict(running).values()))
    return item[2] if len(item) > 2 and isinstance(item[2], dict) else None


# --- routes ----------------------------------------------------------------------------

def route_table():
    """PromptServer's aiohttp route table, or None outside a running ComfyUI server."""
    server = _server()
    return getattr(server, "routes", None)


def add_middleware(middleware) -> bool:
    """Put an aiohttp middleware on ComfyUI's server, after ComfyUI's own (so theirs run first).

    ComfyUI builds its app before it imports custom nodes, and aiohttp freezes the middleware
    list only when the server starts: an import-time append takes effect. False outside a
    ComfyUI server, or once it has started.
    """
    app = getattr(_server(), "app", None)
    middlewares = getattr(app, "middlewares", None)
    if middlewares is None:
        return False
    try:
        middlewares.append(middleware)
    except RuntimeError:  # "Cannot modify frozen list": the server is already running
        return False
    return True


def listening() -> tuple:
    """(the addresses ComfyUI listens on, its port) from its --listen and --port, or (None, None)
    outside ComfyUI."""
    if not in_comfyui():
        return None, None
    try:
        from comfy.cli_args import args
    except ImportError:
        return None, None
    listen = str(getattr(args, "listen", "") or "127.0.0.1")
    return [a.strip() for a in listen.split(",") if a.strip()], getattr(args, "port", None)


# --- the prompt being queued -------------------------------------------------------------

_queued_prompt = contextvars.ContextVar("cometapi_omni_queued_prompt", default=None)


def watch_queued_prompts() -> None:
    """Let VALIDATE_INPUTS see the graph being queued (ComfyUI does not pass it).

    ComfyUI calls on-prompt handlers in the same task that then validates the prompt, so a
    context variable carries the graph there, and concurrent requests never see each other's.
    """
    server = _server()
    if server is not None and hasattr(server, "add_on_prompt_handler"):
        server.add_on_prompt_handler(_remember_prompt)


def _remember_prompt(json_data):
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    _queued_prompt.set(prompt if isinstance(prompt, dict) else None)
    return json_data


def queued_prompt() -> dict | None:
    """The API-format graph being queued right now, or None outside that moment."""
    return _queued_prompt.get()
