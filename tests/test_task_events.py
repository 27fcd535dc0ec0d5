"""Live task events: every change of a journal row reaches the sidebar, a burst as a few events."""

import asyncio
import json
import struct
import threading
import time

import pytest

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import bridge, runtime, task_events


class Sent(list):
    """What bridge.send_event would hand to PromptServer.send_sync: (monotonic time, event, data)."""

    def __init__(self):
        super().__init__()
        self._changed = threading.Condition()

    def __call__(self, event, data):
        with self._changed:
            self.append((time.monotonic(), event, data))
            self._changed.notify_all()

    def wait_for(self, predicate, timeout=10.0):
        with self._changed:
            assert self._changed.wait_for(lambda: predicate(self), timeout), list(self)


@pytest.fixture
def sent():
    return Sent()


def test_outside_comfyui_an_event_goes_nowhere():
    assert bridge.send_event(task_events.EVENT, {"task_id": None, "as_of": 0.0}) is None


def test_a_burst_of_changes_is_a_few_events_the_last_stamped_after_the_last_change(sent):
    events = task_events.TaskEvents(sent, gap=0.2)
    started = time.monotonic()
    for n in range(1, 41):  # a download updating its row, faster than anyone can read
        last_change = time.time()
        events.changed("7")
        time.sleep(0.01)
    burst = time.monotonic() - started
    sent.wait_for(lambda e: e and e[-1][2]["as_of"] >= last_change)
    times = [t for t, _, data in sent if data["task_id"] == "7"]
    assert len(times) <= burst / 0.2 + 2  # at most one per gap, plus the first and the last
    assert all(event == task_events.EVENT and set(data) == {"task_id", "as_of"} for _, event, data in sent)


def test_a_batch_of_tasks_is_one_event_each_and_rows_without_a_task_are_announced(sent):
    events = task_events.TaskEvents(sent)
    for i in range(16):  # 16 variations settle at once
        events.changed(str(i))
        events.changed(None)
    sent.wait_for(lambda e: len(e) >= 17)
    ids = sorted(data["task_id"] for _, _, data in sent if data["task_id"] is not None)
    assert ids == sorted(str(i) for i in range(16))
    assert 1 <= len([data for _, _, data in sent if data["task_id"] is None]) <= 2  # 16 changes: one event, or two


def test_a_chain_run_is_announced_live(sent, fake_server, tmp_path, monkeypatch):
    monkeypatch.setattr(bridge, "send_event", sent)
    for key, value in {"COMETAPI_KEY": fake_server.key, "COMETAPI_BASE_URL": fake_server.base_url,
                       "COMETAPI_OMNI_HOME": str(tmp_path / "home"), "COMETAPI_OMNI_OUTPUT": str(tmp_path / "output"),
                       "COMETAPI_OMNI_POLL_SECONDS": "0.02"}.items():
        monkeypatch.setenv(key, value)
    runtime._journal_at.cache_clear()
    task_events.watch_journal()  # as the pack does when it loads in a ComfyUI server

    task_id = asyncio.run(chain("live"))
    saved = time.time()  # the video is on disk and journalled
    sent.wait_for(lambda e: e and e[-1][2]["task_id"] == task_id and e[-1][2]["as_of"] >= saved)
    # the intent, journalled before its request left (reserved, then sending): no task id yet
    first = next(i for i, (_, _, data) in enumerate(sent) if data["task_id"] is not None)
    assert 1 <= first <= 2 and all(data["task_id"] is None for _, _, data in sent[:first])
    ids = [data["task_id"] for _, _, data in sent if data["task_id"] is not None]
    assert set(ids) == {task_id} and len(ids) <= 6
    stamps = [data["as_of"] for _, _, data in sent]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # strictly later each time


# --- what a page of another site can read (issue 16, part 3) -------------------------------

FOREIGN = "http://evil.example"
LAN = "192.168.1.20:8188"


class BroadcastServer:
    """ComfyUI's side of live events, over real HTTP: its /ws takes any page's connection when the
    Host is not loopback; send_sync (and so send_progress_text) sends to one client id, or to every
    socket when given none. `client_id` is the running prompt's, as ComfyUI's executor sets it."""

    client_id = "ui-tab"

    def __init__(self, loop):
        self.loop, self.sockets = loop, {}

    async def ws_handler(self, request):
        from aiohttp import web
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or f"anon-{len(self.sockets)}"
        self.sockets[sid] = ws
        async for _ in ws:
            pass
        self.sockets.pop(sid, None)
        return ws

    def send_sync(self, event, data, sid=None):  # PromptServer.send_sync: thread-safe
        def send():
            for to, ws in list(self.sockets.items()):
                if sid is None or to == sid:
                    coro = ws.send_bytes(data) if isinstance(data, bytes) else ws.send_json({"type": event, "data": data})
                    asyncio.ensure_future(coro)
        self.loop.call_soon_threadsafe(send)

    def send_progress_text(self, text, node_id, sid=None):  # ComfyUI's binary frame: type 3, node id, text
        node = str(node_id).encode()
        self.send_sync(3, struct.pack(">II", 3, len(node)) + node + text.encode(), sid)


async def received(ws) -> list:
    """Every message that reached this socket, once nothing more comes."""
    from aiohttp import WSMsgType
    messages = []
    while True:
        try:
            message = await ws.receive(timeout=0.3)
        except asyncio.TimeoutError:
            return messages
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return messages
        messages.append(message.data)


def test_a_page_of_another_site_reads_no_content_from_live_events(env, monkeypatch):
    from aiohttp import web
    from aiohttp import test_utils  # not imported by name: pytest would try to collect Test* classes
    from cometapi_kling_omni.nodes import task_routes

    async def main():
        server = BroadcastServer(asyncio.get_running_loop())
        table = web.RouteTableDef()
        task_routes.register(table, data_dir=bridge.data_dir, journal=runtime.journal, output_root=bridge.output_root,
                             want=lambda task_id: None)
        app = web.Application()
        app.router.add_get("/ws", server.ws_handler)
        app.add_routes(table)
        monkeypatch.setattr(bridge, "_server", lambda: server)
        task_events.watch_journal()  # as the pack does when it loads in a ComfyUI server
        own = {"Host": LAN, "Origin": f"http://{LAN}", "Sec-Fetch-Site": "same-origin"}
        async with test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1")) as client:
            theirs = await client.ws_connect("/ws", headers={"Origin": FOREIGN, "Host": LAN})
            ours = await client.ws_connect(f"/ws?clientId={server.client_id}", headers=own)
            task_id = await asyncio.to_thread(asyncio.run, chain("a secret storyboard of the heist"))
            await asyncio.sleep(task_events.GAP * 2 + 0.3)  # the last events of the burst leave
            messages, our_messages = await received(theirs), await received(ours)
            await theirs.close()
            await ours.close()
            foreign = await client.get(f"/cometapi_omni/tasks/{task_id}", headers={"Host": LAN, "Origin": FOREIGN})
            mine = await client.get(f"/cometapi_omni/tasks/{task_id}", headers=own)
            missing = await client.get("/cometapi_omni/tasks/4242", headers=own)
            answer = await mine.json() if mine.status == 200 else None
            return task_id, messages, our_messages, foreign.status, mine.status, answer, missing.status

    task_id, messages, our_messages, foreign, mine, answer, missing = asyncio.run(main())
    texts = [m for m in messages if isinstance(m, str)]
    events = [json.loads(t)["data"] for t in texts if json.loads(t)["type"] == task_events.EVENT]
    everything = "\n".join(texts)
    assert task_events.EVENT in everything
    for content in ("secret", "heist", "kling_", ".mp4", "succeeded", "processing", "queued", "sending", "prompt",
                    "cometapi_omni/", "file"):
        assert content not in everything, content
    assert all(set(e) == {"task_id", "as_of"} for e in events), events
    assert any(e["task_id"] == task_id for e in events) and any(e["task_id"] is None for e in events)
    # The nodes' status texts (task ids, states) go to the page that queued the prompt only.
    assert [m for m in messages if isinstance(m, bytes)] == []
    assert any(isinstance(m, bytes) and f"task {task_id}".encode() in m for m in our_messages)
    # The sidebar reads the row through the guarded route: refused to that page, answered to ComfyUI's own.
    assert (foreign, mine, missing) == (403, 200, 404)
    row = answer["task"]
    assert row["task_id"] == task_id and row["state"] == "succeeded" and row["prompt"].endswith("heist")
    assert row["as_of"] >= max(e["as_of"] for e in events if e["task_id"] == task_id)  # read after the last change


async def chain(words):
    (request,) = await NODES["CometOmniPrompt"]().build(prompt=words, mode="pro", aspect_ratio="16:9", duration=5)
    (task,), _ = (await NODES["CometOmniSubmit"]().submit(request=request, seed=0, unique_id="4"))["result"]
    await NODES["CometOmniPoll"]().poll(task=task, unique_id="5")
    return task.task_id
