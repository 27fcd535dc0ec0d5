"""Refuses, at ComfyUI's POST /prompt, a paid prompt that a page of another site sent.

ComfyUI's /prompt parses any body as JSON, whatever its Content-Type, and its own origin check
covers a loopback Host only: with --listen on a LAN address (or through DNS rebinding) a page
the user visits can queue a workflow with a text/plain POST, and the key is on the server, so
that page would spend the user's money. ComfyUI hands its on-prompt handlers the JSON only,
never the request; but it builds its aiohttp app before it imports custom nodes and freezes
the app's middleware list only when the server starts (0.3.64 and 0.33 alike), so the pack
adds a middleware to it (bridge.add_middleware).

The middleware looks only at POST /prompt and /api/prompt sent by a browser (every browser of
the last years marks its POSTs with Origin or Sec-Fetch-Site; a script marks nothing, so scripts
written as ComfyUI's own examples, with any Content-Type, keep working). It reads the body only
of a browser's request that may come from another site's page (routes.cross_site_problem, the
same rule as the pack's own routes), and refuses only one whose prompt holds a paid node: 403 with
the reason, in ComfyUI's error shape. Every other request reaches ComfyUI untouched. A browser old
enough to mark nothing is not told apart from a script: the daily limit caps what it could spend.

It also says, at start-up, what ComfyUI's --listen exposes (exposure_warning).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Optional

from aiohttp import web

from . import bridge
from .routes import cross_site_problem

log = logging.getLogger("cometapi_omni")
PAID_NODES = frozenset({"CometOmniSubmit"})  # the only node that creates (paid) tasks
PROMPT_PATHS = frozenset({"/prompt", "/api/prompt"})
ERROR_TYPE = "cometapi_omni_cross_site"
PAID_PROMPTS_OWN_PAGE_ONLY = ("A prompt that creates paid Kling tasks is taken from a browser only on ComfyUI's own "
                              "page (scripts are not concerned).")
BROWSER_MARKS = ("Origin", "Sec-Fetch-Site")  # what browsers add to a POST and scripts do not


@web.middleware
async def refuse_cross_site_paid_prompts(request: web.Request, handler):
    if request.method != "POST" or _route_path(request) not in PROMPT_PATHS:
        return await handler(request)
    if not any(mark in request.headers for mark in BROWSER_MARKS):
        return await handler(request)  # a script (or a browser too old to say where its page is)
    problem = await cross_site_problem(request, PAID_PROMPTS_OWN_PAGE_ONLY)
    if problem is None:
        return await handler(request)
    try:
        # The very parse ComfyUI's handler makes next (aiohttp keeps the body): both read one prompt.
        body = await request.json()
    except Exception:  # not JSON: nothing ComfyUI could queue; its handler answers as it always has
        return await handler(request)
    paid = paid_nodes(body)
    if not paid:
        return await handler(request)
    nodes = ", ".join(f"{class_type} #{node_id}" for node_id, class_type in paid)
    message = (f"The CometAPI Kling Omni pack refused this prompt: it would create paid Kling tasks ({nodes}), "
               f"and it may come from a web page of another site, which must not spend your money.")
    log.warning("CometAPI Omni: refused POST %s from %s (Origin %s): %s %s", request.path, request.remote,
                request.headers.get("Origin", "none"), message, problem)
    error = {"type": ERROR_TYPE, "message": message, "details": problem, "extra_info": {}}
    return web.json_response({"error": error, "node_errors": {}}, status=403)


def paid_nodes(body) -> list:
    """[(node id, class type)] of the paid nodes in a /prompt body (API format), in order."""
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if not isinstance(prompt, dict):
        return []
    return [(str(node_id), node["class_type"]) for node_id, node in prompt.items()
            if isinstance(node, dict) and node.get("class_type") in PAID_NODES]


def _route_path(request: web.Request) -> str:
    # The route aiohttp matched, so an encoded path (/%70rompt) is judged as the handler it reaches.
    resource = getattr(request.match_info.route, "resource", None)
    return getattr(resource, "canonical", None) or request.path


def start(daily_limit: float) -> bool:
    """In a ComfyUI server, before it starts: add the middleware, and say once what --listen
    exposes (nothing when ComfyUI listens on this machine only). True when /prompt is guarded."""
    guarded = install()
    addresses, port = bridge.listening()
    warning = exposure_warning(addresses, port, guarded=guarded, daily_limit=daily_limit)
    if warning:
        log.warning("%s", warning)
    return guarded


def install() -> bool:
    """In a ComfyUI server, before it starts: add the middleware. False (and a warning) if it cannot."""
    if bridge.add_middleware(refuse_cross_site_paid_prompts):
        return True
    log.warning("CometAPI Omni: could not guard ComfyUI's /prompt (no server, or it had already started): a web "
                "page of another site may be able to queue paid prompts when ComfyUI listens beyond this machine. "
                "The daily limit (Settings › CometAPI › Spending) still caps the spend.")
    return False


def exposure_warning(addresses: Optional[list], port, *, guarded: bool, daily_limit: float) -> Optional[str]:
    """What ComfyUI's --listen exposes, in words, or None when it listens on this machine only."""
    if not addresses or all(_loopback(a) for a in addresses):
        return None
    if guarded:
        pages = ("The pack refuses such prompts sent by web pages of other sites (cross-site requests, DNS "
                 "rebinding), as it refuses them its own routes (key, settings, tasks); its live events carry no "
                 "content.")
    else:
        pages = "The pack could not guard /prompt in this ComfyUI: web pages of other sites may queue them too."
    cap = (f"The daily limit (${daily_limit:.2f}) caps what is spent in a day" if daily_limit > 0
           else "There is no daily limit (0), so nothing caps that spend")
    return (f"CometAPI Omni: ComfyUI listens on {','.join(addresses)} port {port} (--listen), beyond this machine. "
            f"Anyone who can reach that port can queue prompts with paid Kling Submit nodes, paid with the key "
            f"stored on this server: ComfyUI's /prompt asks for no login. {pages} {cap}: change it in Settings › "
            f"CometAPI › Spending. Listen on 127.0.0.1 unless other machines must reach ComfyUI; reached by a name "
            f"(a reverse proxy), set COMETAPI_OMNI_ALLOWED_HOSTS=that.name.")


def _loopback(address: str) -> bool:
    name = address.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
