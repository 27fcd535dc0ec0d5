"""HTTP routes behind the key setup in ComfyUI's settings (web/cometapi_omni_key.js).

`register` takes the route table and two callables instead of importing ComfyUI, so the
tests mount the very same handlers on a plain aiohttp app. The bridge calls it with
`PromptServer.instance.routes` at import time; ComfyUI also serves each route under /api.

Every answer carries the masked status only. The key is read from the request body once,
written to the store, and never echoed, logged or put in an error message.

Every route is wrapped in `same_origin_only`: ComfyUI's own origin check covers a loopback
Host only, and with `--listen` on a LAN address (or through DNS rebinding) any web page the
user visits could otherwise replace or delete the key.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ipaddress
import logging
import os
import socket
from pathlib import Path
from typing import Awaitable, Callable, Optional, Tuple, Union
from urllib.parse import urlsplit

from aiohttp import web

from ..kling_omni import credentials
from ..kling_omni.errors import KeyMissing, KeyRejected, redact

PREFIX = "/cometapi_omni"
ALLOWED_HOSTS_ENV = "COMETAPI_OMNI_ALLOWED_HOSTS"  # extra names this server is reached by (reverse proxies)
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
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
    @same_origin_only
    async def get_key(request: web.Request) -> web.Response:
        return web.json_response(credentials.key_status(store_dir_fn()))

    @routes.post(PREFIX + "/key")
    @same_origin_only
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
    @same_origin_only
    async def delete_key(request: web.Request) -> web.Response:
        store = store_dir_fn()
        try:
            credentials.clear_key(store)
        except OSError as exc:
            return _error(500, f"Could not remove the key file in {store}: {exc.strerror}.")
        log.info("CometAPI key removed from %s", store)
        return web.json_response(credentials.key_status(store))

    @routes.post(PREFIX + "/key/test")
    @same_origin_only
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


# --- cross-site requests -----------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def same_origin_only(handler: Handler) -> Handler:
    """Wrap a route of the pack: a request a web page of another site could have sent gets a
    403 with a plain explanation, and the handler never runs."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        problem = await cross_site_problem(request)
        if problem is not None:
            log.warning("Refused %s %s: %s", request.method, request.path, problem)
            return _error(403, problem)
        return await handler(request)

    return guarded


OWN_PAGE_ONLY = "The CometAPI pack's key, settings and tasks answer only ComfyUI's own page."


async def cross_site_problem(request: web.Request, own_page_only: str = OWN_PAGE_ONLY) -> Optional[str]:
    """Why this request may come from another site's page, or None. A browser marks such a
    request (Sec-Fetch-Site, Origin); one it does not mark cannot have a JSON body without a
    CORS preflight, which the pack never grants; and a rebound DNS name shows in Host.
    `own_page_only` says what answers only ComfyUI's own page (the routes, or paid prompts)."""
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"This request came from a page of another site (Sec-Fetch-Site: {site}). {own_page_only}"
    host = request.headers.get("Host", "")
    origin = request.headers.get("Origin")
    if origin is not None and not _same_host(origin, host):
        return f"This request came from a page at {origin}, not from this ComfyUI ({host}). {own_page_only}"
    name = _hostname(host)
    if not await _known_name(name):
        return (f"This ComfyUI was reached by the name {name!r}, which is not this machine's: a web page "
                f"can point such a name at it (DNS rebinding). If that is really how you reach ComfyUI (e.g. "
                f"through a reverse proxy), start ComfyUI with the environment variable {ALLOWED_HOSTS_ENV}={name} "
                f"(several names separated by commas).")
    if request.method in STATE_CHANGING and request.content_type != "application/json":
        return (f"{request.method} {request.path} takes Content-Type: application/json (a web page of another "
                f"site cannot send that without asking first); it got {request.headers.get('Content-Type', 'none')}.")
    return None


def _hostname(host_header: str) -> str:
    try:
        return (urlsplit("//" + host_header).hostname or "").rstrip(".")
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        return host_header.lower()


def _same_host(origin: str, host_header: str) -> bool:
    """Origin's host[:port] is the Host header's. A port missing on either side is not
    compared (browsers omit default ports), as ComfyUI's own origin check does."""
    try:
        theirs, ours = urlsplit(origin), urlsplit("//" + host_header)
        if not theirs.hostname or theirs.hostname.rstrip(".") != (ours.hostname or "").rstrip("."):
            return False
        return theirs.port is None or ours.port is None or theirs.port == ours.port
    except ValueError:  # an unparsable port or address
        return False


async def _known_name(name: str) -> bool:
    """An IP address, localhost, this machine's own names, or one the user allowed."""
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name == "localhost" or name.endswith(".localhost"):
        return True  # browsers resolve these to loopback themselves: no page can rebind them
    allowed = {n.strip().lower().rstrip(".") for n in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",")}
    return name in allowed or name in await asyncio.to_thread(_machine_names)


@functools.lru_cache(maxsize=1)
def _machine_names() -> frozenset:
    # getfqdn may ask DNS: once, off the event loop.
    names = {socket.gethostname(), socket.getfqdn()}
    return frozenset(n.lower().rstrip(".") for n in names if n)


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
