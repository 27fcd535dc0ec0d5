"""CometOmniSubmit: one creation request per intent (request + seed), journalled; N variations at the account's pace."""

from __future__ import annotations

import asyncio
import logging
import threading

from ..kling_omni import submission
from ..kling_omni.errors import InputError, SlotWaitCancelled, SlotWaitStopped
from ..kling_omni.request import OmniRequest
from ..kling_omni.rules import validate_request
from . import bridge
from .runtime import CATEGORY, journal, label, make_client, poll_interval, settings

log = logging.getLogger("cometapi_omni")
NODE = "CometOmniSubmit"
MAX_VARIATIONS = 16


def _one(value, default):
    """A widget's value: ComfyUI hands a list-taking node every input as a list."""
    if isinstance(value, list):
        return value[0] if value else default
    return default if value is None else value


class CometOmniSubmit:
    DESCRIPTION = ("Creates the Kling tasks (this is what costs money): `variations` tasks per request, with seeds "
                   "seed, seed+1, ... The same request and seed never create a second task, even after a restart: "
                   "a seed not used before asks for a new generation (with N variations, move the seed by N). "
                   "Tasks are created at your account's pace.")
    CATEGORY = CATEGORY
    # A prompt list and its variations are one batch: priced whole by the spend guard, created in turn.
    INPUT_IS_LIST = True
    RETURN_TYPES = ("OMNI_TASK", "STRING")
    RETURN_NAMES = ("task", "task_id")
    OUTPUT_TOOLTIPS = ("The created tasks: wire into a Kling Omni Poll.", "Their ids, to collect them later.")
    OUTPUT_IS_LIST = (True, True)  # one item per task: Poll and the core nodes map over them
    FUNCTION = "submit"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "request": ("OMNI_REQUEST",),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": False,
                                 "tooltip": "Never sent to the API. The same request with the same seed returns "
                                            "the task already made; a new seed pays for a new generation. With "
                                            "variations N it uses seed to seed+N-1: move it by N for N new ones."}),
            },
            "optional": {
                "variations": ("INT", {"default": 1, "min": 1, "max": MAX_VARIATIONS,
                                       "tooltip": "How many tasks to make of each request, with seeds seed, seed+1, "
                                                  "...: each one is paid once. Raising it from 4 to 6 pays for 2 "
                                                  "more; the first 4 are reused."}),
                "timeout_minutes": ("INT", {"default": 30, "min": 1, "max": 24 * 60,
                                            "tooltip": "How long Submit waits for a free slot when your account is at "
                                                       "its limit of tasks running at once; nothing is created while "
                                                       "it waits. Each created task starts the clock again."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, unique_id=None, **_):
        # A task of this node that failed makes the next run submit again (a new attempt);
        # otherwise ComfyUI's cache would keep handing out the failed task.
        return journal().failures_for_node(str(_one(unique_id, "")))

    async def submit(self, request, seed, variations=1, timeout_minutes=30, unique_id=None):
        uid = _one(unique_id, None)
        node = label(NODE, uid)
        requests = request if isinstance(request, list) else [request]
        for item in requests:
            if not isinstance(item, OmniRequest):
                raise InputError(node, "request", type(item).__name__,
                                 "connect the request output of a CometOmniPrompt node")
            validate_request(item)
        seed, count = int(_one(seed, 0)), _one(variations, 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_VARIATIONS:
            raise InputError(node, "variations", count, f"a whole number from 1 to {MAX_VARIATIONS}")
        intents = [submission.Intent(item, seed + k) for item in requests for k in range(count)]
        current = settings()
        current.require_daily_limit(node)  # a settings file that cannot be read: refuse, never spend unguarded
        # A wait for a free slot notices Cancel, or that nobody awaits it any more, within a
        # fraction of a second: the end of the prompt (asyncio.run joins the default executor,
        # after cancelling what is left) is never held up by it.
        abandoned = threading.Event()
        try:
            tasks = await asyncio.to_thread(
                submission.submit_all, intents, journal(), make_client, node=node, node_id=str(uid or ""),
                timeout=float(_one(timeout_minutes, 30)) * 60.0, settings=current, interval=poll_interval(),
                should_stop=lambda: abandoned.is_set() or bridge.interrupted(),
                on_wait=lambda text: bridge.progress_text(uid, text))
        except SlotWaitStopped as exc:
            bridge.progress_text(uid, str(exc))
            log.warning("%s", exc)
            if isinstance(exc, SlotWaitCancelled):
                raise bridge.interrupt_error(exc) from exc
            raise
        finally:
            abandoned.set()
        ids = [task.task_id for task in tasks]
        bridge.progress_text(uid, f"task {ids[0]}" if len(ids) == 1 else f"{len(ids)} tasks: {', '.join(ids)}")
        return {"ui": {"task_id": ids}, "result": (tasks, ids)}
