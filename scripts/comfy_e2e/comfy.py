"""ComfyUI as a client sees it: a UI-format workflow made into the API prompt the frontend would
queue, and a running server's HTTP routes and websocket (queue a prompt, wait for its end, read
its history and the status texts nodes sent)."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid

import aiohttp

from .pack import template

VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
PROMPT_TIMEOUT = 120.0
PACK_NODE_PREFIX = "CometOmni"


DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # ComfyUI 0.33: a combo whose chosen option brings widgets of its own


def _options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def _is_widget(spec) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_KINDS or kind == DYNAMIC_COMBO


def _order(spec: dict) -> dict:
    """{section: input names} in the order the node declares them."""
    return spec.get("input_order") or {s: list((spec["input"].get(s) or {}).keys()) for s in ("required", "optional")}


def widget_names(spec: dict) -> list[str]:
    """The node's inputs that are widgets, in the order the frontend saves their values."""
    return [name for section in ("required", "optional") for name in _order(spec).get(section, [])
            if _is_widget(spec["input"][section][name])]


def _extra_widget_values(name: str, spec) -> int:
    """Values the frontend keeps in widgets_values after this input's own value."""
    options = _options(spec)
    extra = 1 if any(options.get(o) for o in UPLOAD_OPTIONS) else 0  # the upload button widget
    control = options.get("control_after_generate")
    if control or (control is None and spec[0] == "INT" and name in ("seed", "noise_seed")):
        extra += 1  # "fixed / increment / randomize"
    return extra


def _default(name: str, spec) -> object:
    """The value the frontend gives a widget the saved workflow has no value for: the input's
    default, else a combo's first option (LiteGraph keeps a new widget's own value)."""
    options = _options(spec)
    if "default" in options:
        return options["default"]
    choices = spec[0] if isinstance(spec[0], list) else options.get("options")
    if choices:
        return choices[0]["key"] if isinstance(choices[0], dict) else choices[0]
    raise KeyError(name)


def _take_widgets(node: dict, spec: dict, values: list, inputs: dict, linked: dict, prefix: str = "") -> None:
    """Fill `inputs` from the saved `values`, in the order the frontend saves them. A dynamic
    combo's chosen option brings its own widgets right after it, queued as '<combo>.<name>'
    (frontend 1.58 on ComfyUI 0.33 queues SaveVideo as format, format.codec, and its hidden codec
    at its default)."""
    for section in ("required", "optional"):
        for name in _order(spec).get(section, []):
            input_spec, key = spec["input"][section][name], prefix + name
            if _is_widget(input_spec):
                if values:
                    inputs[key] = values.pop(0)
                    del values[:_extra_widget_values(name, input_spec)]
                elif node["type"].startswith(PACK_NODE_PREFIX):
                    raise ValueError(f"node {node['id']} ({node['type']}) has no widget value for {key}")
                else:
                    try:
                        inputs[key] = _default(key, input_spec)
                    except KeyError:
                        raise ValueError(f"node {node['id']} ({node['type']}) has no widget value for {key}, "
                                         "and /object_info gives it no default") from None
                if input_spec[0] == DYNAMIC_COMBO and key in inputs:
                    chosen = next((o for o in _options(input_spec)["options"] if o["key"] == inputs[key]), None)
                    if chosen is None:
                        raise ValueError(f"node {node['id']} ({node['type']}): {key} has no option {inputs[key]!r}")
                    _take_widgets(node, {"input": chosen["inputs"]}, values, inputs, linked, key + ".")
            if key in linked:
                inputs[key] = list(linked[key])


def to_api_prompt(workflow: dict, info: dict) -> dict:
    """What the frontend's graphToPrompt makes of a UI-format workflow (no subgraphs).

    Widgets the saved workflow has no value for (an input the node gained after it was saved,
    e.g. ComfyUI 0.33's CreateVideo bit_depth) get their default from /object_info, as the
    frontend gives them; except on the pack's own nodes, whose templates must match the pack."""
    links = {link[0]: (str(link[1]), link[2]) for link in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES or node.get("mode", 0) == 2:
            continue
        if node.get("mode", 0) == 4:
            raise ValueError(f"node {node['id']} is bypassed; this converter does not follow bypasses")
        linked = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs = {}
        _take_widgets(node, info[node["type"]], values, inputs, linked)
        if values:
            raise ValueError(f"node {node['id']} ({node['type']}) has unused widget values {values}")
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title") or node["type"]}}
    return prompt


def template_prompt(name: str, info: dict) -> tuple[dict, dict]:
    """(API prompt, UI workflow) of a template."""
    workflow = template(name)
    return to_api_prompt(workflow, info), workflow


class Comfy:
    """A running ComfyUI: HTTP calls and one websocket that records every event."""

    def __init__(self, http: aiohttp.ClientSession, url: str):
        self.http, self.url = http, url
        self.client_id = uuid.uuid4().hex
        self.events: list[tuple[float, str, object]] = []  # (monotonic, type, data)
        self._changed = asyncio.Condition()
        self._reader = None

    async def connect(self, headers: dict | None = None) -> None:
        self.ws = await self.http.ws_connect(f"{self.url}/ws?clientId={self.client_id}", max_msg_size=0,
                                             headers=headers)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            now = time.monotonic()
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                event = (now, data.get("type"), data.get("data"))
            elif msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) >= 8:
                kind = struct.unpack(">I", msg.data[:4])[0]
                if kind != 3:  # previews
                    continue
                size = struct.unpack(">I", msg.data[4:8])[0]
                node = msg.data[8:8 + size].decode()
                event = (now, "progress_text", {"node": node, "text": msg.data[8 + size:].decode()})
            else:
                continue
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def close(self) -> None:
        if self._reader:
            await self.ws.close()
            self._reader.cancel()

    async def get_json(self, path: str):
        async with self.http.get(self.url + path) as r:
            r.raise_for_status()
            return await r.json()

    async def text(self, method: str, path: str, **kw) -> tuple[int, str]:
        async with self.http.request(method, self.url + path, **kw) as r:
            return r.status, await r.text()

    async def history_text(self, max_items: int = 1000) -> str:
        """The whole history as ComfyUI serves it (searched for the key)."""
        return (await self.text("GET", f"/history?max_items={max_items}"))[1]

    async def run(self, prompt: dict, workflow: dict | None = None, timeout: float = PROMPT_TIMEOUT,
                  headers: dict | None = None) -> dict:
        """Queue a prompt and wait for its end; returns {prompt_id, outcome, error, history, seconds, start}."""
        body = {"prompt": prompt, "client_id": self.client_id}
        if workflow is not None:  # as the frontend does: it ends up in saved files' metadata
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        start = time.monotonic()
        async with self.http.post(self.url + "/prompt", json=body, headers=headers) as r:
            answer = await r.json()
            if r.status != 200:
                return {"outcome": "rejected", "error": answer, "history": {}, "seconds": 0.0, "start": start}
        prompt_id = answer["prompt_id"]
        ends = {"execution_success": "success", "execution_error": "error", "execution_interrupted": "interrupted"}

        def finished():
            for _, kind, data in self.events:
                if kind in ends and isinstance(data, dict) and data.get("prompt_id") == prompt_id:
                    return ends[kind], data
            return None

        async with self._changed:
            try:
                end = await asyncio.wait_for(self._changed.wait_for(finished), timeout)
            except asyncio.TimeoutError:
                end = ("timeout", None)
        seconds = time.monotonic() - start
        history = {}
        for _ in range(100):  # ComfyUI stores the history entry just after the end event
            history = (await self.get_json(f"/history/{prompt_id}")).get(prompt_id, {})
            if history.get("status", {}).get("completed") is not None or end[0] == "timeout":
                break
            await asyncio.sleep(0.1)
        return {"prompt_id": prompt_id, "outcome": end[0], "error": end[1], "history": history,
                "seconds": seconds, "start": start}

    def texts(self, node_id: str, since: float) -> list[tuple[float, str]]:
        return [(t, d["text"]) for t, kind, d in self.events
                if kind == "progress_text" and t >= since and d["node"] == str(node_id)]


async def connect(c) -> tuple[Comfy, dict]:
    """A client of the ComfyUI `c` (processes.comfyui) that listens on its websocket, and its /object_info."""
    comfy = Comfy(c.http, c.url)
    await comfy.connect()
    return comfy, await comfy.get_json("/object_info")


def outcome_text(run: dict) -> str:
    if run["outcome"] == "success":
        return f"{run['seconds']:.1f} s"
    error = run["error"] or {}
    where = f"{error.get('node_type')} #{error.get('node_id')}: " if error.get("node_type") else ""
    return f"{run['outcome']}: {where}{error.get('exception_message') or json.dumps(error)[:1500]}"


def poll_nodes(prompt: dict) -> list[str]:
    return [nid for nid, node in prompt.items() if node["class_type"] == "CometOmniPoll"]



def node_of(prompt: dict, class_type: str) -> str:
    """The id of the (first) node of this type."""
    return next(nid for nid, node in prompt.items() if node["class_type"] == class_type)


def outputs(run: dict, node_id: str) -> dict:
    """What a node put in the run's history entry ({} if nothing)."""
    return run["history"].get("outputs", {}).get(str(node_id), {})
