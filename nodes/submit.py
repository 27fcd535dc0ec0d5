"""CometOmniSubmit: one creation request per intent (request + seed), journalled."""

from __future__ import annotations

import asyncio
import logging
import threading

from ..kling_omni import submission
from ..kling_omni.errors import InputError, SlotWaitCancelled, SlotWaitStopped
from ..kling_omni.request import OmniRequest
from ..kling_omni.rules import validate_request
from . import bridge
from .runtime import CATEGORY, journal, make_client

log = logging.getLogger("cometapi_omni")


class CometOmniSubmit:
    DESCRIPTION = ("Creates the Kling task (this is what costs money). The same request and seed never "
                   "create a second task, even after a restart: change the seed to ask for a new generation.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("OMNI_TASK", "STRING")
    RETURN_NAMES = ("task", "task_id")
    FUNCTION = "submit"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "request": ("OMNI_REQUEST",),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": False,
                                 "tooltip": "Never sent to the API. The same request with the same seed returns "
                                            "the task already made; a new seed pays for a new generation."}),
            },
            "optional": {
                "timeout_minutes": ("INT", {"default": 30, "min": 1, "max": 24 * 60,
                                            "tooltip": "How long Submit waits for a free slot when your account is at "
                                                       "its limit of tasks running at once (CometAPI answers 429); "
                                                       "nothing is created while it waits."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, unique_id=None, **_):
        # A task of this node that failed makes the next run submit again (a new attempt);
        # otherwise ComfyUI's cache would keep handing out the failed task.
        return journal().failures_for_node(str(unique_id))

    async def submit(self, request, seed, timeout_minutes=30, unique_id=None):
        if not isinstance(request, OmniRequest):
            raise InputError("CometOmniSubmit", "request", type(request).__name__,
                             "connect the request output of a CometOmniPrompt node")
        validate_request(request)
        # A wait for a free slot notices Cancel, or that nobody awaits it any more, within a
        # fraction of a second: the end of the prompt (asyncio.run joins the default executor,
        # after cancelling what is left) is never held up by it.
        abandoned = threading.Event()
        try:
            task = await asyncio.to_thread(
                submission.submit, request, seed, journal(), make_client, node_id=str(unique_id or ""),
                timeout=timeout_minutes * 60.0, should_stop=lambda: abandoned.is_set() or bridge.interrupted(),
                on_wait=lambda text: bridge.progress_text(unique_id, text))
        except SlotWaitStopped as exc:
            bridge.progress_text(unique_id, str(exc))
            log.warning("%s", exc)
            if isinstance(exc, SlotWaitCancelled):
                raise bridge.interrupt_error(exc) from exc
            raise
        finally:
            abandoned.set()
        bridge.progress_text(unique_id, f"task {task.task_id}")
        return {"ui": {"task_id": [task.task_id]}, "result": (task, task.task_id)}
