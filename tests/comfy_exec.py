"""Run one node as ComfyUI 0.3.64's execution.py does with lists, for tests without ComfyUI.

ComfyUI hands every input to a node as a list: a widget's value is [value], a link brings
the list the upstream node produced. A node without INPUT_IS_LIST is called once per item
(the longest input sets the count, shorter ones repeat their last item) and async calls
run concurrently; one with INPUT_IS_LIST is called once with the lists. Outputs marked in
OUTPUT_IS_LIST are concatenated, the others collected one per call
(`_async_map_node_over_list` and `merge_result_data`); a failing call fails the node once all
its calls have ended (`resolve_map_node_over_list_results`). Each call runs in ComfyUI's executing
context (prompt id, node id, list index: comfy_execution/utils.py, defined here the same way
when ComfyUI is not importable).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
import types
from typing import NamedTuple, Optional


def _executing_context():
    """ComfyUI's CurrentNodeContext, or the same few lines of comfy_execution/utils.py (0.3.64)."""
    try:
        from comfy_execution.utils import CurrentNodeContext
        return CurrentNodeContext
    except ImportError:
        pass

    class ExecutionContext(NamedTuple):
        prompt_id: str
        node_id: str
        list_index: Optional[int]

    current = contextvars.ContextVar("current_executing_context", default=None)

    class CurrentNodeContext:
        def __init__(self, prompt_id: str, node_id: str, list_index: Optional[int] = None):
            self.context = ExecutionContext(prompt_id, node_id, list_index)
            self.token = None

        def __enter__(self):
            self.token = current.set(self.context)
            return self

        def __exit__(self, *exc):
            current.reset(self.token)

    utils = types.ModuleType("comfy_execution.utils")
    utils.ExecutionContext, utils.current_executing_context = ExecutionContext, current
    utils.get_executing_context = lambda: current.get(None)
    utils.CurrentNodeContext = CurrentNodeContext
    package = types.ModuleType("comfy_execution")
    package.utils = utils
    sys.modules.setdefault("comfy_execution", package)
    sys.modules.setdefault("comfy_execution.utils", utils)
    return CurrentNodeContext


CurrentNodeContext = _executing_context()


async def execute(cls, inputs: dict) -> tuple:
    """(outputs, uis): outputs[i] is the list ComfyUI would pass downstream for output i."""
    node = cls()
    function = getattr(node, cls.FUNCTION)
    node_id = str((inputs.get("unique_id") or [""])[0])
    if getattr(cls, "INPUT_IS_LIST", False):
        calls = [dict(inputs)]
    else:
        count = max((len(v) for v in inputs.values()), default=1)
        calls = [{k: v[i if len(v) > i else -1] for k, v in inputs.items()} for i in range(count)]

    async def call_async(index, call):
        with CurrentNodeContext("comfy-exec", node_id, index):
            return await function(**call)

    def call_sync(index, call):
        with CurrentNodeContext("comfy-exec", node_id, index):
            return function(**call)

    if inspect.iscoroutinefunction(function):
        # Like resolve_map_node_over_list_results: the node ends when every call has ended, then
        # the first failure is raised.
        returned = await asyncio.gather(*(call_async(i, call) for i, call in enumerate(calls)), return_exceptions=True)
        failed = [r for r in returned if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
    else:
        returned = [call_sync(i, call) for i, call in enumerate(calls)]
    results = [r["result"] if isinstance(r, dict) else r for r in returned]
    uis = [r["ui"] for r in returned if isinstance(r, dict) and "ui" in r]
    is_list = getattr(cls, "OUTPUT_IS_LIST", (False,) * len(results[0]))
    outputs = []
    for i, listed in enumerate(is_list):
        outputs.append([item for r in results for item in r[i]] if listed else [r[i] for r in results])
    return outputs, uis


def run(cls, **inputs) -> list:
    """execute() from sync code, each keyword a list as ComfyUI passes it; returns the outputs."""
    return asyncio.run(execute(cls, inputs))[0]
