"""The key routes refuse what a hostile web page can send, whatever ComfyUI's middleware does.

ComfyUI's own origin check covers a loopback Host only. With `--listen` on a LAN address, or
through DNS rebinding, a page the user visits can send simple requests (a form, text/plain)
to the routes. Served on a plain aiohttp app over real loopback HTTP, with the headers a
browser would send.
"""

import asyncio
import importlib
import json
import socket

import pytest
from aiohttp import web
from aiohttp import test_utils  # not imported by name: pytest would try to collect Test* classes

from kling_omni import credentials

routes_module = importlib.import_module("cometapi_kling_omni.nodes.routes")

KEY = "sk-victim-0123456789-abcdefghij-klmn7f3a"
ATTACKER_KEY = "sk-attacker-0123456789-abcdefghij-0bad"
PREFIX = routes_module.PREFIX
LAN = "192.168.1.20:8188"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(credentials.ENV_VAR, raising=False)
    monkeypatch.delenv("COMETAPI_OMNI_ALLOWED_HOSTS", raising=False)


@pytest.fixture
def store(tmp_path):
    store = tmp_path / "__cometapi_omni"
    credentials.save_key(store, KEY)
    return store


def send(store, *requests):
    """Send each (method, path, headers, body) in turn; return [(status, json answer)]."""
    tested = []

    async def main():
        table = web.RouteTableDef()
        routes_module.register(table, lambda: store, lambda key: tested.append(key) or (True, "ok"))
        app = web.Application()
        app.add_routes(table)
        answers = []
        async with test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1")) as client:
            for method, path, headers, body in requests:
                response = await client.request(method, PREFIX + path, headers=headers, data=body)
                answers.append((response.status, await response.json()))
        return answers

    answers = asyncio.run(main())
    send.tested = tested
    return answers


def browser(host, origin=None, site=None, content_type=None):
    headers = {"Host": host}
    if origin is not None:
        headers["Origin"] = origin
    if site is not None:
        headers["Sec-Fetch-Site"] = site
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


def refused(answer, *words):
    status, body = answer
    return status == 403 and set(body) == {"error"} and all(w.lower() in body["error"].lower() for w in words)


def test_a_cross_site_text_plain_post_cannot_replace_the_key(store):
    # What <form enctype="text/plain"> or fetch(..., {mode: "no-cors"}) from evil.example sends.
    (answer,) = send(store, ("POST", "/key", browser(LAN, "http://evil.example", content_type="text/plain"),
                             json.dumps({"key": ATTACKER_KEY})))
    assert refused(answer, "evil.example")
    assert credentials.resolve_key(store) == KEY


def test_a_cross_site_post_without_fetch_metadata_is_refused_on_the_content_type(store):
    # An older browser, or a page on this very host (Origin matches): text/plain needs no preflight.
    (answer,) = send(store, ("POST", "/key", browser(LAN, f"http://{LAN}", content_type="text/plain"),
                             json.dumps({"key": ATTACKER_KEY})))
    assert refused(answer, "application/json")
    assert credentials.resolve_key(store) == KEY


def test_a_cross_site_delete_cannot_remove_the_key(store):
    answers = send(store,
                   ("DELETE", "/key", browser(LAN, "http://evil.example"), None),
                   ("DELETE", "/key", browser(LAN, "http://evil.example", "cross-site", "application/json"), None))
    assert all(refused(a) for a in answers)
    assert credentials.resolve_key(store) == KEY


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_fetch_metadata_of_another_site_is_refused_even_for_reads(store, site):
    answers = send(store,
                   ("GET", "/key", browser(LAN, site=site), None),
                   ("POST", "/key/test", browser(LAN, site=site, content_type="application/json"), None))
    assert all(refused(a, site) for a in answers)
    assert send.tested == []  # the key was not used


def test_dns_rebinding_is_refused_with_how_to_allow_a_name(store):
    # evil.example resolves to this machine: the page is "same-origin" with the server it reaches.
    host = "evil.example:8188"
    answers = send(store,
                   ("GET", "/key", browser(host, f"http://{host}", "same-origin"), None),
                   ("POST", "/key", browser(host, f"http://{host}", "same-origin", "application/json"),
                    json.dumps({"key": ATTACKER_KEY})))
    assert all(refused(a, "evil.example", "COMETAPI_OMNI_ALLOWED_HOSTS") for a in answers)
    assert credentials.resolve_key(store) == KEY


def test_a_name_listed_in_the_environment_is_allowed(store, monkeypatch):
    monkeypatch.setenv("COMETAPI_OMNI_ALLOWED_HOSTS", " other.example , Comfy.Studio.example ")
    host = "comfy.studio.example"
    (answer,) = send(store, ("POST", "/key", browser(host, f"https://{host}", "same-origin", "application/json"),
                             json.dumps({"key": ATTACKER_KEY})))
    assert answer[0] == 200 and answer[1]["ends_with"] == "0bad"


def test_the_frontend_s_own_calls_work_on_a_lan_address(store):
    # api.fetchApi from the page served by this ComfyUI: same origin, JSON content type (web/lib/key_request.js).
    origin = f"http://{LAN}"
    answers = send(store,
                   ("GET", "/key", browser(LAN, origin, "same-origin"), None),
                   ("POST", "/key/test", browser(LAN, origin, "same-origin", "application/json"), None),
                   ("POST", "/key", browser(LAN, origin, "same-origin", "application/json"),
                    json.dumps({"key": ATTACKER_KEY})),
                   ("DELETE", "/key", browser(LAN, origin, "same-origin", "application/json"), None))
    assert [status for status, _ in answers] == [200, 200, 200, 200]
    assert answers[0][1]["ends_with"] == "7f3a" and answers[2][1]["ends_with"] == "0bad"
    assert answers[3][1]["stored"] is False and send.tested == [KEY]


@pytest.mark.parametrize("host", ["localhost:8188", "127.0.0.1:8188", "[::1]:8188", "10.0.0.7",
                                  f"{socket.gethostname()}:8188"])
def test_this_machine_s_names_and_addresses_are_allowed(store, host):
    (answer,) = send(store, ("GET", "/key", browser(host, f"http://{host}", "same-origin"), None))
    assert answer[0] == 200


def test_a_mismatched_origin_is_refused_even_with_json(store):
    # Only reachable cross-site after a preflight, e.g. with ComfyUI's --enable-cors-header.
    (answer,) = send(store, ("POST", "/key", browser(LAN, "http://evil.example:8188", None, "application/json"),
                             json.dumps({"key": ATTACKER_KEY})))
    assert refused(answer, "evil.example")
    assert credentials.resolve_key(store) == KEY


SIDEBAR_ROUTES = [("GET", "/settings", None), ("POST", "/settings", '{"daily_limit_usd": 1}'), ("GET", "/tasks", None),
                  ("GET", "/tasks/31", None), ("GET", "/tasks/31/thumb", None), ("POST", "/tasks/31/collect", "{}")]


@pytest.mark.parametrize("method, path, body", SIDEBAR_ROUTES)
def test_the_sidebar_and_spending_routes_refuse_other_sites(tmp_path, monkeypatch, method, path, body):
    from fake_cometapi.media import make_mp4
    from kling_omni.journal import Journal
    task_routes = importlib.import_module("cometapi_kling_omni.nodes.task_routes")
    monkeypatch.setenv(credentials.ENV_VAR, KEY)
    home, output = tmp_path / "home", tmp_path / "output"
    journal = Journal(home / "journal.sqlite3")
    video = make_mp4(output / "cometapi_omni" / "kling_31.mp4", seconds=0.5, fps=12, width=160, height=120, audio=False)
    journal.begin("f", 1, "comfy-f-1", prompt="p", base_url="b", mode="pro", seconds=5)
    journal.settle("f", 1, "succeeded", task_id="31")
    journal.update_task("31", video_path=str(video))
    wanted = []
    writes = method == "POST"
    hostile = [browser(LAN, site="cross-site", content_type="application/json" if writes else None),
               browser(LAN, "http://evil.example", content_type="application/json" if writes else None),
               browser("evil.example:8188", "http://evil.example:8188", "same-origin",
                       "application/json" if writes else None)]
    if writes:
        hostile.append(browser(LAN, f"http://{LAN}", "same-origin", "text/plain"))
    own = browser(LAN, f"http://{LAN}", "same-origin", "application/json" if writes else None)

    async def main():
        table = web.RouteTableDef()
        task_routes.register(table, data_dir=lambda: home, journal=lambda: journal, output_root=lambda: output,
                             want=wanted.append)
        app = web.Application()
        app.add_routes(table)
        statuses = []
        async with test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1")) as client:
            for headers in hostile + [own]:
                if headers is own:  # the refused requests changed nothing
                    assert wanted == [] and not (home / "settings.json").exists()
                response = await client.request(method, PREFIX + path, headers=headers, data=body)
                statuses.append((response.status, await response.read()))
        return statuses

    *refusals, (own_status, _) = asyncio.run(main())
    assert all(status == 403 and json.loads(text).keys() == {"error"} for status, text in refusals)
    assert 200 <= own_status < 300  # the same request from ComfyUI's own page is answered
    assert wanted == (["31"] if path.endswith("/collect") else [])
