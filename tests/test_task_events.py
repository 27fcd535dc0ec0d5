"""Live task events: every change of a journal row reaches the sidebar, a burst as a few events."""

import asyncio
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
    assert bridge.send_event(task_events.EVENT, {"task": None}) is None


def test_a_burst_of_changes_is_a_few_events_ending_with_the_last_state(sent):
    state = {"n": 0}
    events = task_events.TaskEvents(lambda task_id: {"task_id": task_id, "n": state["n"]}, sent, gap=0.2)
    started = time.monotonic()
    for n in range(1, 41):  # a download updating its row, faster than anyone can read
        state["n"] = n
        events.changed("7")
        time.sleep(0.01)
    burst = time.monotonic() - started
    sent.wait_for(lambda e: e and e[-1][2]["task"]["n"] == 40)
    times = [t for t, _, data in sent if data["task"]["task_id"] == "7"]
    assert len(times) <= burst / 0.2 + 2  # at most one per gap, plus the first and the last
    assert all(event == task_events.EVENT for _, event, _ in sent)


def test_a_batch_of_tasks_is_one_event_each_and_rows_without_a_task_are_announced(sent):
    events = task_events.TaskEvents(lambda task_id: {"task_id": task_id}, sent)
    for i in range(16):  # 16 variations settle at once
        events.changed(str(i))
        events.changed(None)
    sent.wait_for(lambda e: len(e) >= 17)
    ids = sorted(data["task"]["task_id"] for _, _, data in sent if data["task"] is not None)
    assert ids == sorted(str(i) for i in range(16))
    assert 1 <= len([data for _, _, data in sent if data["task"] is None]) <= 2  # 16 changes: one event, or two


def test_a_chain_run_is_seen_live_in_the_sidebar(sent, fake_server, tmp_path, monkeypatch):
    monkeypatch.setattr(bridge, "send_event", sent)
    for key, value in {"COMETAPI_KEY": fake_server.key, "COMETAPI_BASE_URL": fake_server.base_url,
                       "COMETAPI_OMNI_HOME": str(tmp_path / "home"), "COMETAPI_OMNI_OUTPUT": str(tmp_path / "output"),
                       "COMETAPI_OMNI_POLL_SECONDS": "0.02"}.items():
        monkeypatch.setenv(key, value)
    runtime._journal_at.cache_clear()
    task_events.watch_journal()  # as the pack does when it loads in a ComfyUI server

    async def chain():
        (request,) = await NODES["CometOmniPrompt"]().build(prompt="live", mode="pro", aspect_ratio="16:9", duration=5)
        (task,), _ = (await NODES["CometOmniSubmit"]().submit(request=request, seed=0, unique_id="4"))["result"]
        await NODES["CometOmniPoll"]().poll(task=task, unique_id="5")
        return task.task_id

    task_id = asyncio.run(chain())
    sent.wait_for(lambda e: e and e[-1][2]["task"] and e[-1][2]["task"]["on_disk"])
    # the intent, journalled before its request left (reserved, then sending): no task id yet
    first = next(i for i, (_, _, data) in enumerate(sent) if data["task"] is not None)
    assert 1 <= first <= 2 and all(data == {"task": None} for _, _, data in sent[:first])
    rows = [data["task"] for _, _, data in sent if data["task"] is not None]
    assert all(row["task_id"] == task_id for row in rows) and len(rows) <= 6
    last = rows[-1]
    assert last["state"] == "succeeded" and last["prompt"].endswith("live")
    assert last["file"]["subfolder"] == "cometapi_omni" and last["thumb"].endswith(f"/{task_id}/thumb")
    assert last["actual_units"] and last["actual_usd"] > 0
