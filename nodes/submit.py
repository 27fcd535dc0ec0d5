"""CometOmniSubmit: one creation request per intent (request + seed), journalled."""

from __future__ import annotations

import asyncio

from ..kling_omni import submission
from ..kling_omni.errors import InputError
from ..kling_omni.request import OmniRequest
from ..kling_omni.rules import validate_request
from . import bridge
from .runtime import CATEGORY, journal, make_client


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
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, unique_id=None, **_):
        # A task of this node that failed makes the next run submit again (a new attempt);
        # otherwise ComfyUI's cache would keep handing out the failed task.
        return journal().failures_for_node(str(unique_id))

    async def submit(self, request, seed, unique_id=None):
        if not isinstance(request, OmniRequest):
            raise InputError("CometOmniSubmit", "request", type(request).__name__,
                             "connect the request output of a CometOmniPrompt node")
        validate_request(request)
        task = await asyncio.to_thread(submission.submit, request, seed, journal(), make_client,
                                       node_id=str(unique_id or ""))
        bridge.progress_text(unique_id, f"task {task.task_id}")
        return {"ui": {"task_id": [task.task_id]}, "result": (task, task.task_id)}
