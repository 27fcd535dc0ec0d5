"""Run one node as ComfyUI 0.3.64's execution.py does with lists, for tests without ComfyUI.

ComfyUI hands every input to a node as a list: a widget's value is [value], a link brings
the list the upstream node produced. A node without INPUT_IS_LIST is called once per item
(the longest input sets the count, shorter ones repeat their last item) and async calls
run concurrently; one with INPUT_IS_LIST is called once with the lists. Outputs marked in
OUTPUT_IS_LIST are concatenated, the others collected one per call
(`_async_map_node_over_list` and `merge_result_data`).
"""

from __future__ import annotations

import asyncio
import inspect


async def execute(cls, inputs: dict) -> tuple:
    """(outputs, uis): outputs[i] is the list ComfyUI would pass downstream for output i."""
    node = cls()
    function = getattr(node, cls.FUNCTION)
    if getattr(cls, "INPUT_IS_LIST", False):
        calls = [dict(inputs)]
    else:
        count = max((len(v) for v in inputs.values()), default=1)
        calls = [{k: v[i if len(v) > i else -1] for k, v in inputs.items()} for i in range(count)]
    if inspect.iscoroutinefunction(function):
        returned = await asyncio.gather(*(function(**call) for call in calls))
    else:
        returned = [function(**call) for call in calls]
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
