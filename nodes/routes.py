"""HTTP routes behind the key setup in ComfyUI's settings (web/cometapi_omni_key.js).

`register` takes the route table and two callables instead of importing ComfyUI, so the
tests mount the very same handlers on a plain aiohttp app. The bridge calls it with
`PromptServer.instance.routes` at import time; ComfyUI also serves each route under /api.

Every answer carries the masked status only. The key is read from the request body once,
written to the store, and never echoed, logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from pathlib import Path
from typing import Awaitable, Callable, Tuple, Union

from aiohttp import web

from ..kling_omni import credentials
from ..kling_omni.errors import KeyMissing, KeyRejected, redact

PREFIX = "/cometapi_omni"
log = logging.getLogger(__name__)

TestResult = Tuple[bool, str]
TestKeyFn = Callable[[str], Union[TestResult, Awaitable[TestResult]]]


def register(routes: web.RouteTableDef, store_dir_fn: Callable[[], Path],
             test_key_fn: TestKeyFn) -> None:
    """Add GET/POST/DELETE {PREFIX}/key and POST {PREFIX}/key/test to `routes`.

    `store_dir_fn()` gives the key store folder (called per request: ComfyUI's folders
    may be configured after import). `test_key_fn(key)` makes one cheap authenticated
    request and returns (ok, plain-language message); it may be sync (run off the event
    loop) or async.
    """

    @routes.get(PREFIX + "/key")
    async def get_key(request: web.Request) -> web.Response:
        return web.json_response(credentials.key_status(store_dir_fn()))

    @routes.post(PREFIX + "/key")
    async def post_key(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, 'Send JSON like {"key": "sk-..."}.')
        if not isinstance(body, dict) or "key" not in body:
            return _error(400, 'Send JSON like {"key": "sk-..."}.')
        store = store_dir_fn()
        try:
            credentials.save_key(store, body["key"])
        except KeyRejected as exc:
            return _error(400, str(exc))
        except OSError as exc:
            # strerror and the folder only: the exception text could quote the file content.
            return _error(500, f"Could not write the key file in {store}: {exc.strerror}.")
        status = credentials.key_status(store)
        log.info("CometAPI key saved in %s (%s)", store, _masked(status))
        return web.json_response(status)

    @routes.delete(PREFIX + "/key")
    async def delete_key(request: web.Request) -> web.Response:
        store = store_dir_fn()
        try:
            credentials.clear_key(store)
        except OSError as exc:
            return _error(500, f"Could not remove the key file in {store}: {exc.strerror}.")
        log.info("CometAPI key removed from %s", store)
        return web.json_response(credentials.key_status(store))

    @routes.post(PREFIX + "/key/test")
    async def test_key(request: web.Request) -> web.Response:
        store = store_dir_fn()
        status = credentials.key_status(store)
        try:
            key = credentials.resolve_key(store)
        except KeyMissing as exc:
            return web.json_response({"ok": False, "message": str(exc), "status": status})
        try:
            ok, message = await _run(test_key_fn, key)
        except Exception as exc:  # report, don't crash the route: the UI shows the message
            ok, message = False, f"The test request failed: {exc}"
        return web.json_response({"ok": bool(ok), "message": redact(str(message), key),
                                  "status": status})


async def _run(fn: TestKeyFn, key: str) -> TestResult:
    if inspect.iscoroutinefunction(fn):
        return await fn(key)
    result = await asyncio.to_thread(fn, key)  # e.g. a blocking `requests` call
    if inspect.isawaitable(result):
        result = await result
    return result


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _masked(status: dict) -> str:
    return f"ends with {status['ends_with']}" if status.get("ends_with") else "short key"
