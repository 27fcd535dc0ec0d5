"""A page of another site cannot queue paid prompts on ComfyUI's /prompt (issue 16, part 2).

ComfyUI's POST /prompt parses any body as JSON, whatever its Content-Type, and its origin check
covers a loopback Host only: with --listen on a LAN address, a page the user visits can queue a
paid workflow with a text/plain POST (no CORS preflight). Served here over real loopback HTTP
on an aiohttp app shaped like ComfyUI's (its /prompt handler reads the body as ComfyUI's does),
the pack's middleware put on it through the bridge, with the headers a browser sends.
"""

import asyncio
import json
import logging
import types

import pytest
from aiohttp import web
from aiohttp import test_utils  # not imported by name: pytest would try to collect Test* classes

from cometapi_kling_omni.nodes import bridge, prompt_guard

LAN = "192.168.1.20:8188"
EVIL = "http://evil.example"


@pytest.fixture(autouse=True)
def no_allowed_hosts(monkeypatch):
    monkeypatch.delenv("COMETAPI_OMNI_ALLOWED_HOSTS", raising=False)


def paid_prompt(variations=16):
    """A Kling Omni workflow in API format: 16 variations of 10 s pro, about $17.92."""
    return {"prompt": {
        "1": {"class_type": "CometOmniPrompt", "inputs": {"prompt": "a heist", "mode": "pro", "aspect_ratio": "16:9",
                                                          "duration": 10}},
        "2": {"class_type": "CometOmniSubmit", "inputs": {"request": ["1", 0], "seed": 7, "variations": variations}},
        "3": {"class_type": "CometOmniPoll", "inputs": {"task": ["2", 0]}},
    }, "client_id": "page"}


def free_prompt():
    return {"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                                   "color": 0}},
                       "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}}


class ComfyLike:
    """ComfyUI's server as far as /prompt goes: its handler parses the body as JSON whatever the
    Content-Type (as ComfyUI's post_prompt does) and queues the prompt."""

    def __init__(self, guarded: bool, monkeypatch, post_prompt=None):
        self.queued = []
        self.app = web.Application()
        for path in ("/prompt", "/api/prompt"):
            self.app.router.add_post(path, post_prompt or self.post_prompt)
            self.app.router.add_get(path, self.get_prompt)
        if guarded:
            monkeypatch.setattr(bridge, "_server", lambda: types.SimpleNamespace(app=self.app))
            assert prompt_guard.install() is True

    async def post_prompt(self, request):
        json_data = await request.json()
        self.queued.append(json_data["prompt"])
        return web.json_response({"prompt_id": f"p{len(self.queued)}", "number": len(self.queued), "node_errors": {}})

    async def get_prompt(self, request):
        return web.json_response({"exec_info": {"queue_remaining": len(self.queued)}})

    def send(self, *requests):
        """Each (method, path, headers, body) in turn; [(status, json answer)]."""
        async def main():
            answers = []
            async with test_utils.TestClient(test_utils.TestServer(self.app, host="127.0.0.1")) as client:
                for method, path, headers, body in requests:
                    response = await client.request(method, path, headers=headers, data=body)
                    answers.append((response.status, json.loads(await response.text() or "null")))
            return answers

        return asyncio.run(main())


def browser(host=LAN, origin=None, site=None, content_type=None):
    headers = {"Host": host}
    for name, value in (("Origin", origin), ("Sec-Fetch-Site", site), ("Content-Type", content_type)):
        if value is not None:
            headers[name] = value
    return headers


def refused(answer, *words):
    status, body = answer
    error = body.get("error", {}) if isinstance(body, dict) else {}
    text = f"{error.get('message', '')} {error.get('details', '')}"
    return (status == 403 and error.get("type") == "cometapi_omni_cross_site" and "CometAPI" in text
            and "CometOmniSubmit" in text and all(w.lower() in text.lower() for w in words))


def test_a_cross_site_text_plain_post_queued_paid_tasks_before_the_guard(monkeypatch):
    # The fault: what <form enctype="text/plain"> or fetch(..., {mode: "no-cors"}) from evil.example sends.
    comfy = ComfyLike(guarded=False, monkeypatch=monkeypatch)
    (answer,) = comfy.send(("POST", "/prompt", browser(origin=EVIL, site="cross-site", content_type="text/plain"),
                            json.dumps(paid_prompt())))
    assert answer[0] == 200 and len(comfy.queued) == 1


@pytest.mark.parametrize("path", ["/prompt", "/api/prompt"])
def test_a_cross_site_text_plain_post_of_a_paid_prompt_is_refused(monkeypatch, path, caplog):
    comfy = ComfyLike(guarded=True, monkeypatch=monkeypatch)
    with caplog.at_level(logging.WARNING, "cometapi_omni"):
        answers = comfy.send(
            ("POST", path, browser(origin=EVIL, site="cross-site", content_type="text/plain"), json.dumps(paid_prompt())),
            ("POST", path, browser(origin=EVIL, content_type="text/plain"), json.dumps(paid_prompt())),  # no fetch metadata
            ("POST", path, browser(origin="null", content_type="text/plain"), json.dumps(paid_prompt())))  # sandboxed
    assert refused(answers[0], "cross-site") and refused(answers[1], "evil.example") and refused(answers[2])
    assert comfy.queued == []
    assert "CometOmniSubmit" in caplog.text and path in caplog.text


def test_other_marks_of_another_site_are_refused_too(monkeypatch):
    comfy = ComfyLike(guarded=True, monkeypatch=monkeypatch)
    body = json.dumps(paid_prompt())
    answers = comfy.send(
        # after a CORS preflight (ComfyUI's --enable-cors-header): JSON, but another origin
        ("POST", "/prompt", browser(origin="http://evil.example:8188", content_type="application/json"), body),
        ("POST", "/prompt", browser(site="same-site", content_type="application/json"), body),
        # DNS rebinding: the page's own name now points at ComfyUI, so Origin matches Host
        ("POST", "/prompt", browser("evil.example:8188", "http://evil.example:8188", "same-origin", "application/json"),
         body),
        # a page on this very host without fetch metadata (an older browser): a body no page can send as JSON
        ("POST", "/prompt", browser(origin=f"http://{LAN}", content_type="text/plain"), body),
        # fetch(..., {mode: "no-cors", body: new Blob([...])}) sends no Content-Type at all
        ("POST", "/prompt", browser(origin=EVIL), body))
    assert refused(answers[0], "evil.example") and refused(answers[1], "same-site")
    assert refused(answers[2], "COMETAPI_OMNI_ALLOWED_HOSTS") and refused(answers[3], "application/json")
    assert refused(answers[4])
    assert comfy.queued == []


def test_comfyui_s_own_page_and_scripts_still_queue_paid_prompts(monkeypatch):
    comfy = ComfyLike(guarded=True, monkeypatch=monkeypatch)
    body = json.dumps(paid_prompt())
    answers = comfy.send(
        # the frontend's api.queuePrompt on a LAN address: same origin, application/json
        ("POST", "/prompt", browser(origin=f"http://{LAN}", site="same-origin", content_type="application/json"), body),
        ("POST", "/api/prompt", browser(origin=f"http://{LAN}", site="same-origin", content_type="application/json"),
         body),
        # a script (requests.post(url, json=...)): no Origin, no fetch metadata, JSON
        ("POST", "/prompt", browser("127.0.0.1:8188", content_type="application/json"), body))
    assert [status for status, _ in answers] == [200, 200, 200] and len(comfy.queued) == 3


def test_a_script_written_as_comfyui_s_examples_still_queues_paid_prompts(monkeypatch):
    # urllib's default (ComfyUI's script_examples): application/x-www-form-urlencoded, and no browser marks.
    # An API prompt a script posted before this guard existed runs as it did.
    comfy = ComfyLike(guarded=True, monkeypatch=monkeypatch)
    answers = comfy.send(
        ("POST", "/prompt", browser("127.0.0.1:8188", content_type="application/x-www-form-urlencoded"),
         json.dumps(paid_prompt())),
        ("POST", "/prompt", browser(LAN), json.dumps(paid_prompt())))  # from another machine, no Content-Type
    assert [status for status, _ in answers] == [200, 200] and len(comfy.queued) == 2


def test_prompts_without_a_paid_node_pass_untouched_whoever_sends_them(monkeypatch):
    comfy = ComfyLike(guarded=True, monkeypatch=monkeypatch)
    answers = comfy.send(
        ("POST", "/prompt", browser(origin=EVIL, site="cross-site", content_type="text/plain"), json.dumps(free_prompt())),
        ("POST", "/prompt", browser(origin=EVIL, site="cross-site", content_type="text/plain"),
         json.dumps({"prompt": {"3": {"class_type": "CometOmniPoll", "inputs": {"task_id": "31"}}}})),
        ("GET", "/prompt", browser(origin=EVIL, site="cross-site"), None))
    assert [status for status, _ in answers] == [200, 200, 200] and len(comfy.queued) == 2
    assert answers[2][1] == {"exec_info": {"queue_remaining": 2}}


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"prompt": [1]}', b'{"prompt": {"1": 5}}'])
def test_a_body_the_guard_cannot_read_is_left_to_comfyui(monkeypatch, body):
    seen = []

    async def post_prompt(request):  # records what reached ComfyUI's handler, which answers as it does
        seen.append(await request.read())
        return web.json_response({"error": "ComfyUI's own answer"}, status=400)

    comfy = ComfyLike(guarded=True, monkeypatch=monkeypatch, post_prompt=post_prompt)
    (answer,) = comfy.send(("POST", "/prompt", browser(origin=EVIL, site="cross-site", content_type="text/plain"), body))
    assert answer == (400, {"error": "ComfyUI's own answer"}) and seen == [body]


def test_a_duplicate_prompt_key_is_read_as_comfyui_reads_it(monkeypatch):
    # The guard parses with the same request.json() as ComfyUI: the last "prompt" wins for both.
    comfy = ComfyLike(guarded=True, monkeypatch=monkeypatch)
    body = '{"prompt": %s, "prompt": %s}' % (json.dumps(free_prompt()["prompt"]), json.dumps(paid_prompt()["prompt"]))
    (answer,) = comfy.send(("POST", "/prompt", browser(origin=EVIL, content_type="text/plain"), body))
    assert refused(answer) and comfy.queued == []


def test_the_guard_cannot_be_added_once_the_server_runs(monkeypatch):
    app = web.Application()
    monkeypatch.setattr(bridge, "_server", lambda: types.SimpleNamespace(app=app))
    app.freeze()  # what ComfyUI's server start does
    assert bridge.add_middleware(prompt_guard.refuse_cross_site_paid_prompts) is False
    monkeypatch.setattr(bridge, "_server", lambda: None)
    assert bridge.add_middleware(prompt_guard.refuse_cross_site_paid_prompts) is False  # outside ComfyUI


# --- what the pack says about --listen ---------------------------------------------------

@pytest.mark.parametrize("listen", [["127.0.0.1"], ["::1"], ["localhost"], ["127.0.0.1", "::1"]])
def test_loopback_only_says_nothing(listen):
    assert prompt_guard.exposure_warning(listen, 8188, guarded=True, daily_limit=10.0) is None


@pytest.mark.parametrize("listen", [["0.0.0.0", "::"], ["192.168.1.20"], ["127.0.0.1", "10.0.0.7"], ["comfy.lan"]])
def test_listening_beyond_loopback_says_what_it_exposes(listen):
    text = prompt_guard.exposure_warning(listen, 8188, guarded=True, daily_limit=10.0)
    assert ",".join(listen) in text and "8188" in text and "paid" in text and "$10.00" in text
    assert "127.0.0.1" in text and "Settings › CometAPI › Spending" in text
    unguarded = prompt_guard.exposure_warning(listen, 8188, guarded=False, daily_limit=0.0)
    assert "could not" in unguarded and "no daily limit" in unguarded


def test_at_start_up_the_guard_is_added_and_listen_explained(monkeypatch, caplog):
    app = web.Application()
    monkeypatch.setattr(bridge, "_server", lambda: types.SimpleNamespace(app=app))
    monkeypatch.setattr(bridge, "listening", lambda: (["0.0.0.0", "::"], 8188))
    with caplog.at_level(logging.WARNING, "cometapi_omni"):
        assert prompt_guard.start(daily_limit=10.0) is True
    assert list(app.middlewares) == [prompt_guard.refuse_cross_site_paid_prompts]
    (said,) = [r.getMessage() for r in caplog.records]
    assert "listens on 0.0.0.0,:: port 8188" in said and "$10.00" in said
