"""End-to-end check of the pack in a real ComfyUI, against the bundled fake CometAPI.

    .venv/bin/python scripts/comfyui_check.py --comfyui /path/to/ComfyUI \
        --python /path/to/comfy/venv/bin/python [--browser | --browser-only] [--batch | --batch-only] [--keep] \
        [--front-end-root DIR/comfyui_frontend_package/static] [--nodes2 on|off] [--faults | --faults-only]

Frontends: ComfyUI's bundled one, or any other with --front-end-root (`pip install --no-deps
--target DIR comfyui-frontend-package==X`); --nodes2 turns Nodes 2.0 (Vue-rendered nodes) on or
off before the browser steps. The browser steps find elements by role and visible name, so one
set of steps serves 1.27 and 1.5x, canvas and Nodes 2.0. A 1.5x frontend on an older server
asks for routes it lacks (e.g. /api/jobs): the server's age, not the pack.

What it does (every wait is bounded; every process it starts is stopped on exit):
1. starts `python -m fake_cometapi` on a free loopback port with a throwaway key;
2. env-key run: a temp base directory (--base-directory) with a COPY of the pack in its
   custom_nodes (a copy, not a symlink: ComfyUI 0.3.x has no system-user directory, so the
   pack keeps its key file and job journal in <pack>/data, which must not be the developer's
   clone) and a test PNG `input/example.png`; ComfyUI runs with COMETAPI_KEY and
   COMETAPI_BASE_URL. Checks the log, /object_info, every template in example_workflows/
   (converted to API format from /object_info, queued on /prompt, followed on the websocket),
   the Poll preview entry, the MP4s on disk, the core nodes downstream, two Polls waiting
   at the same time;
3. stored-key run: a fresh base directory, no COMETAPI_KEY; the key is POSTed to the pack's
   route /cometapi_omni/key, tested, and a template runs with it;
4. --browser: a fresh base directory and headless Chromium driven over the DevTools protocol,
   against a fake CometAPI of its own (in this process: the steps see what it was sent):
   the key is typed into Settings › CometAPI and tested, a template is opened from Browse
   Templates, the Submit node's price and the whole graph's are read (and follow the widgets),
   the Prompt node's token help is read and a token that points at nothing typed in, the
   template is queued, the Poll node's status text, video preview and task id (Copy) are
   watched; Settings › CometAPI › Spending shows today's spend, takes a daily limit (and shows
   the server's refusal of a bad one) and a rate; a run past the limit stops with the guard's
   message and no creation request; a Poll cancelled mid-wait leaves its task to the background
   collector, which the Tasks sidebar shows live (thumbnail, /view preview, totals equal to the
   journal's, Collect now, Add a Poll node, Copy id); the workflow is saved from the UI; the
   Prompt and Submit become a subgraph, the Submit's variations are promoted to the subgraph
   node and set there, and the sidebar's "This graph, if run" follows (and drops it when the
   subgraph node is bypassed), as does the prompt Run would queue. Kling 3.0 (nothing queued):
   the v3 templates from Browse Templates are priced before Run as the rate table says (with
   and without sound; a storyboard at its duration in N shots), the v3 rates in Settings
   reprice them and Reset restores every model's; O1 with sound shows what to fix instead of a
   price; the Prompt shows its shots line, and a problem (and the Submit no price) when a shot's
   duration makes the sum wrong; a workflow saved before the model choice (4 Prompt values)
   opens on kling-video-o1 at the O1 price, in the root graph and inside a subgraph, while a
   Prompt added fresh starts on kling-v3-omni; the sidebar row names the task's model. The key
   is removed. Screenshots go to <work dir>/screenshots;
5. --faults: a fresh base directory with a stored key and a fake of its own, driven through
   the fake's remote control (POST /_fake/control, GET /_fake/state): cross-site writes to the
   pack's routes with a LAN Host and a rebound name, a chunked (and gzipping) file host, 201 and
   202 creations queued twice, a 0-byte, an HTML and a cut file each before a good one, HTML
   every time and then queued again, two 429 code 1303 answers before the creation, the journal
   deleted under ComfyUI then a new intent and an old one queued again. Each: the tasks the fake
   made (one per intent), every frame of the MP4 decoded, what the node or the error said. This
   ComfyUI runs with --listen 0.0.0.0: its start-up warning is read, and, reached at this
   machine's LAN address with the daily limit off, a page of another site POSTs a paid workflow
   (16 variations of 10 s pro) to /prompt and /api/prompt as text/plain (refused, no task made,
   nothing queued) and listens on /ws from its own Origin (no prompt, state or file name reaches
   it), while ComfyUI's own page on that address still runs a paid prompt;
6. --batch (or --batch-only): a fresh ComfyUI against a fake account that allows 3 tasks in flight
   (each task 6 s): 8 variations in one queued run (8 tasks created, no more; 8 whole MP4s; frames
   for each through a core SaveImage; no failed node; about ceil(8/3) task durations, against one
   chain measured in the same run), re-queued (nothing sent), raised to 10 (exactly 2 more), and
   the prompt-list template;
7. after each run: the key string must appear nowhere (history, every file under the base
   directory including MP4/PNG metadata, the ComfyUI log) except the pack's key file.

Prints PASS/FAIL per check and a summary; exit status 0 only when everything passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import types
import uuid
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
PACK_DIR_NAME = "cometapi-kling-omni"
NODE_IDS = ("CometOmniImageRef", "CometOmniElementRef", "CometOmniVideoRef",
            "CometOmniPrompt", "CometOmniShot", "CometOmniSubmit", "CometOmniPoll")
POLL_OUTPUTS = (["IMAGE", "AUDIO", "VIDEO", "FLOAT", "STRING", "STRING"],
                ["frames", "audio", "video", "fps", "task_id", "video_url"])
# issue 2's fixed sockets: (section, name, type); a list type is a COMBO with these options.
REQUIRED_INPUTS = {
    "CometOmniImageRef": [("required", "image", "IMAGE"),
                          ("required", "role", ["reference", "first_frame", "end_frame"]),
                          ("optional", "refs", "OMNI_REFS")],
    "CometOmniElementRef": [("required", "element_id", "STRING"), ("optional", "refs", "OMNI_REFS")],
    "CometOmniVideoRef": [("required", "video_url", "STRING"), ("required", "refer_type", ["base", "feature"]),
                          ("required", "keep_original_sound", "BOOLEAN"), ("optional", "refs", "OMNI_REFS")],
    "CometOmniPrompt": [("required", "prompt", "STRING"), ("required", "mode", ["pro", "std"]),
                        ("required", "aspect_ratio", ["16:9", "9:16", "1:1"]), ("required", "duration", "INT"),
                        ("optional", "model", ["kling-v3-omni", "kling-video-o1"]), ("optional", "sound", "BOOLEAN"),
                        ("optional", "auto_shots", "BOOLEAN"), ("optional", "refs", "OMNI_REFS"),
                        ("optional", "shots", "OMNI_SHOTS")],
    "CometOmniShot": [("required", "prompt", "STRING"), ("required", "duration", "INT"),
                      ("optional", "shots", "OMNI_SHOTS")],
    "CometOmniSubmit": [("required", "request", "OMNI_REQUEST"), ("required", "seed", "INT")],
    "CometOmniPoll": [("optional", "task", "OMNI_TASK"), ("optional", "task_id", "STRING")],
}
NODE_OUTPUTS = {"CometOmniImageRef": ["OMNI_REFS"], "CometOmniElementRef": ["OMNI_REFS"],
                "CometOmniVideoRef": ["OMNI_REFS"], "CometOmniPrompt": ["OMNI_REQUEST"], "CometOmniShot": ["OMNI_SHOTS"],
                "CometOmniSubmit": ["OMNI_TASK", "STRING"], "CometOmniPoll": POLL_OUTPUTS[0]}
VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
PROMPT_TIMEOUT = 120.0
START_TIMEOUT = 180.0


# --- reporting ---------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.results: list[tuple[bool, str, str]] = []

    def check(self, ok, name: str, detail: str = "") -> bool:
        ok = bool(ok)
        self.results.append((ok, name, detail))
        print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def note(self, text: str) -> None:
        print(f"       {text}", flush=True)

    @property
    def failed(self):
        return [r for r in self.results if not r[0]]

    def summary(self) -> int:
        passed = len(self.results) - len(self.failed)
        print("\n" + "=" * 72)
        for ok, name, detail in self.failed:
            print(f"FAIL {name}: {detail}")
        verdict = "PASS" if not self.failed and self.results else "FAIL"
        print(f"{verdict}: {passed} of {len(self.results)} checks passed")
        return 0 if verdict == "PASS" else 1


class CheckFailed(Exception):
    """A failure after which the current run cannot go on."""


# --- processes ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A child process in its own session, its output in a log file; stop() ends that group."""

    running: list["Service"] = []

    def __init__(self, name: str, argv: list, log_path: Path, cwd=None, env=None):
        self.name, self.log_path = name, log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        Service.running.append(self)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log.close()
        if self in Service.running:
            Service.running.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for service in list(cls.running):
            service.stop()


def start_fake_server(work: Path, key: str, processing_seconds: float = 3, name: str = "fake_cometapi",
                      video_seconds: int = 3, extra: tuple[str, ...] = ()) -> tuple[Service, str]:
    argv = [sys.executable, "-m", "fake_cometapi", "--port", "0", "--key", key,
            "--submitted-seconds", "1", "--processing-seconds", str(processing_seconds),
            "--video-seconds", str(video_seconds), "--fps", "24", "--size", "640x360", *extra]
    service = Service(name, argv, work / f"{name}.log", cwd=REPO)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r" at (http://\S+)", service.log())
        if match:
            return service, match.group(1)
        if not service.alive():
            break
        time.sleep(0.1)
    raise CheckFailed(f"the fake server {name} did not start: {service.log()[-2000:]}")


def make_base_dir(work: Path, name: str) -> Path:
    """A ComfyUI base directory with a copy of the pack and input/example.png."""
    from PIL import Image, ImageDraw

    base = work / name
    ignore = shutil.ignore_patterns(".git", ".venv", "node_modules", "data", "__pycache__", "*.pyc",
                                    ".pytest_cache", "demo_output", ".work")
    shutil.copytree(REPO, base / "custom_nodes" / PACK_DIR_NAME, ignore=ignore, symlinks=True)
    (base / "input").mkdir(parents=True)
    image = Image.new("RGB", (640, 480), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    for i in range(0, 640, 40):
        draw.rectangle([i, 0, i + 19, 479], fill=(200, 120 + i // 8, 60))
    draw.ellipse([220, 140, 420, 340], fill=(250, 240, 200))
    image.save(base / "input" / "example.png")
    return base


def start_comfyui(args, base: Path, port: int, fake_url: str, key: str | None, listen: str = "127.0.0.1") -> Service:
    env = dict(os.environ)
    env.pop("COMETAPI_KEY", None)
    env.update(COMETAPI_BASE_URL=fake_url, COMETAPI_OMNI_POLL_SECONDS="0.5", PYTHONUNBUFFERED="1")
    if key is not None:
        env["COMETAPI_KEY"] = key
    argv = [args.python, "main.py", "--cpu", "--listen", listen, "--port", str(port),
            "--disable-auto-launch", "--base-directory", str(base)]
    if getattr(args, "front_end_root", None):
        argv += ["--front-end-root", str(args.front_end_root)]
    return Service("ComfyUI", argv, base.parent / f"{base.name}.comfyui.log", cwd=args.comfyui, env=env)


async def wait_until_up(http: aiohttp.ClientSession, comfy: Service, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not comfy.alive():
            raise CheckFailed(f"ComfyUI exited during start-up; log tail:\n{comfy.log()[-3000:]}")
        try:
            async with http.get(url + "/system_stats", timeout=aiohttp.ClientTimeout(total=3)) as r:
                if r.status == 200:
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.5)
    raise CheckFailed(f"ComfyUI did not answer within {START_TIMEOUT:.0f} s")


@contextlib.asynccontextmanager
async def comfyui(args, work: Path, name: str, fake_url: str, key: str | None, listen: str = "127.0.0.1"):
    """A ComfyUI of its own (a base directory with a copy of the pack), up and answering, with an
    HTTP session; stopped on exit. Yields (http, url, base, proc, port); proc.log() stays readable
    after. `listen` is its --listen; it is reached on loopback either way."""
    base = make_base_dir(work, name)
    port = free_port()
    proc = start_comfyui(args, base, port, fake_url, key, listen)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        try:
            await wait_until_up(http, proc, url)
            yield types.SimpleNamespace(http=http, url=url, base=base, proc=proc, port=port)
        finally:
            proc.stop()


# --- checks on the log and /object_info --------------------------------------------------

def check_log(report: Report, log: str, label: str, expected: tuple = ()) -> None:
    """The pack imported, and no traceback in the log runs through the pack's files.

    `expected`: error class names of failures the check provoked on purpose (ComfyUI logs
    every node error with its traceback).
    """
    pack_failed = [line for line in log.splitlines()
                   if "IMPORT FAILED" in line and PACK_DIR_NAME in line]
    report.check(not pack_failed and re.search(r"seconds: \S*" + re.escape(PACK_DIR_NAME), log),
                 f"{label}: the pack imported", "; ".join(pack_failed) or "listed in 'Import times'")
    pack_tracebacks = [tb for tb in re.split(r"(?=Traceback \(most recent call last\))", log)
                       if tb.startswith("Traceback") and PACK_DIR_NAME in tb.split("\n\n")[0]
                       and not any(f".errors.{name}: " in tb for name in expected)]
    report.check(not pack_tracebacks, f"{label}: no traceback from the pack in the ComfyUI log",
                 pack_tracebacks[0][:1500] if pack_tracebacks else "")
    others = sorted({line.split(":", 1)[1].strip() for line in log.splitlines()
                     if line.startswith("IMPORT FAILED:")})
    if others:
        report.note(f"(core modules that failed to import in this ComfyUI, not the pack: {', '.join(others)})")


def check_object_info(report: Report, info: dict) -> None:
    missing = [n for n in NODE_IDS if n not in info]
    report.check(not missing, f"/object_info has the {len(NODE_IDS)} node ids", f"missing {missing}" if missing else "")
    for node_id in NODE_IDS:
        if node_id not in info:
            continue
        spec, problems = info[node_id], []
        for section, name, kind in REQUIRED_INPUTS[node_id]:
            got = (spec["input"].get(section) or {}).get(name)
            if got is None:
                problems.append(f"no {section} input {name}")
                continue
            got_kind = got[0]
            if isinstance(kind, list):
                options = got_kind if isinstance(got_kind, list) else (got[1] or {}).get("options")
                if options != kind:
                    problems.append(f"{name} options {options} != {kind}")
            elif got_kind != kind:
                problems.append(f"{name} is {got_kind}, not {kind}")
        if spec["output"] != NODE_OUTPUTS[node_id]:
            problems.append(f"outputs {spec['output']} != {NODE_OUTPUTS[node_id]}")
        if node_id == "CometOmniPoll" and spec["output_name"] != POLL_OUTPUTS[1]:
            problems.append(f"output names {spec['output_name']}")
        if node_id == "CometOmniPrompt":  # 3 to 15 s since Kling 3.0 (O1's 3 to 10 are checked per model)
            duration = spec["input"]["required"].get("duration", [None, {}])[1] or {}
            if (duration.get("min"), duration.get("max"), duration.get("default")) != (3, 15, 5):
                problems.append(f"duration {duration}")
            model = (spec["input"].get("optional") or {}).get("model", [None, {}])[1] or {}
            if model.get("default") != "kling-v3-omni":
                problems.append(f"model {model}")
        report.check(not problems, f"{node_id} sockets as fixed in issue 2 (and the Kling 3.0 issue)",
                     "; ".join(problems))


# --- UI workflow -> API prompt -----------------------------------------------------------

def _is_widget(spec) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_KINDS


def _extra_widget_values(name: str, spec) -> int:
    """Values the frontend keeps in widgets_values after this input's own value."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    extra = 1 if any(options.get(o) for o in UPLOAD_OPTIONS) else 0  # the upload button widget
    control = options.get("control_after_generate")
    if control or (control is None and spec[0] == "INT" and name in ("seed", "noise_seed")):
        extra += 1  # "fixed / increment / randomize"
    return extra


def to_api_prompt(workflow: dict, info: dict) -> dict:
    """What the frontend's graphToPrompt makes of a UI-format workflow (no subgraphs)."""
    links = {link[0]: (str(link[1]), link[2]) for link in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES or node.get("mode", 0) == 2:
            continue
        if node.get("mode", 0) == 4:
            raise ValueError(f"node {node['id']} is bypassed; this converter does not follow bypasses")
        spec = info[node["type"]]
        linked = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        order = spec.get("input_order") or {s: list((spec["input"].get(s) or {}).keys())
                                             for s in ("required", "optional")}
        inputs = {}
        for section in ("required", "optional"):
            for name in order.get(section, []):
                input_spec = spec["input"][section][name]
                if _is_widget(input_spec):
                    if not values:
                        raise ValueError(f"node {node['id']} ({node['type']}) has no widget value for {name}")
                    inputs[name] = values.pop(0)
                    del values[:_extra_widget_values(name, input_spec)]
                if name in linked:
                    inputs[name] = list(linked[name])
        if values:
            raise ValueError(f"node {node['id']} ({node['type']}) has unused widget values {values}")
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title") or node["type"]}}
    return prompt


# --- running prompts ---------------------------------------------------------------------

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


def outcome_text(run: dict) -> str:
    if run["outcome"] == "success":
        return f"{run['seconds']:.1f} s"
    error = run["error"] or {}
    where = f"{error.get('node_type')} #{error.get('node_id')}: " if error.get("node_type") else ""
    return f"{run['outcome']}: {where}{error.get('exception_message') or json.dumps(error)[:1500]}"


def poll_nodes(prompt: dict) -> list[str]:
    return [nid for nid, node in prompt.items() if node["class_type"] == "CometOmniPoll"]


def check_poll_output(report: Report, label: str, run: dict, node_id: str, base: Path,
                      expect_task: str | None = None) -> str | None:
    """The Poll's history entry has the video preview and the task id; the MP4 exists. Returns the task id."""
    out = run["history"].get("outputs", {}).get(node_id, {})
    images = out.get("images") or []
    task_ids = out.get("task_id") or []
    # One entry per task: a Poll mapped over a batch's tasks has several.
    ok = (images and len(images) == len(task_ids) and all(task_ids) and out.get("animated") == [True] * len(images)
          and all(e.get("filename", "").endswith(".mp4") and e.get("type") == "output" for e in images)
          and (expect_task is None or task_ids == [expect_task]))
    report.check(ok, f"{label}: Poll #{node_id} history has the video preview entry and the task id",
                 json.dumps(out)[:400])
    paths = [base / "output" / e.get("subfolder", "") / e.get("filename", "") for e in images]
    sizes = [path.stat().st_size if path.is_file() else 0 for path in paths]
    report.check(paths and all(size > 0 and video_info(path)["frames"] > 0 for path, size in zip(paths, sizes)),
                 f"{label}: the MP4 is in the output folder",
                 ", ".join(f"{path.relative_to(base)} ({size} bytes)" for path, size in zip(paths, sizes)))
    return task_ids[0] if task_ids else None


def video_info(path: Path) -> dict:
    import av
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            frames = sum(1 for _ in container.decode(video=0))
            return {"frames": frames, "fps": float(video.average_rate or 0),
                    "audio": len(container.streams.audio) > 0, "metadata": dict(container.metadata)}
    except Exception:
        return {"frames": 0, "fps": 0.0, "audio": False, "metadata": {}}


def check_status_texts(report: Report, label: str, comfy: Comfy, run: dict, node_id: str) -> None:
    texts = [text for _, text in comfy.texts(node_id, run["start"])]
    first_lines = list(dict.fromkeys(t.split("\n")[0] for t in texts))
    waiting = [t for t in first_lines if re.search(r"\d+ s$", t)]
    report.check(len(first_lines) >= 3 and waiting and first_lines[-1].startswith("done"),
                 f"{label}: Poll #{node_id} sent changing status text", " | ".join(first_lines)[:300])


async def create_task_directly(http: aiohttp.ClientSession, fake_url: str, key: str) -> str:
    """A task made outside ComfyUI, for the collect-by-id template."""
    body = {"model_name": "kling-video-o1", "prompt": "a task created outside ComfyUI", "mode": "std",
            "aspect_ratio": "16:9", "duration": "5"}
    async with http.post(f"{fake_url}/kling/v1/videos/omni-video", json=body,
                         headers={"Authorization": f"Bearer {key}"}) as r:
        data = await r.json()
    task_id = (data.get("data") or {}).get("task_id") or data.get("task_id") or data.get("id")
    if not task_id:
        raise CheckFailed(f"the fake server made no task: {data}")
    return str(task_id)


async def run_templates(report: Report, comfy: Comfy, info: dict, base: Path, fake_url: str, key: str) -> None:
    templates = sorted((REPO / "example_workflows").glob("*.json"))
    report.check(len(templates) >= 2, "example_workflows has templates", f"{len(templates)} found")
    for path in templates:
        label = path.stem
        workflow = json.loads(path.read_text())
        external_task = None
        for node in workflow["nodes"]:
            poll_without_task = node["type"] == "CometOmniPoll" and not any(
                i.get("link") is not None for i in node.get("inputs", []) if i["name"] == "task")
            if poll_without_task:
                external_task = await create_task_directly(comfy.http, fake_url, key)
                node["widgets_values"][0] = external_task
        try:
            prompt = to_api_prompt(workflow, info)
        except (KeyError, ValueError) as exc:
            report.check(False, f"{label}: converts to API format", repr(exc))
            continue
        run = await comfy.run(prompt, workflow)
        report.check(run["outcome"] == "success", f"{label}: runs to success", outcome_text(run))
        if run["outcome"] != "success":
            continue
        for node_id in poll_nodes(prompt):
            check_poll_output(report, label, run, node_id, base, expect_task=external_task)
            check_status_texts(report, label, comfy, run, node_id)
        for node_id, node in prompt.items():
            if node["class_type"] == "SaveVideo":
                check_saved_video(report, label, run, node_id, base)


def check_saved_video(report: Report, label: str, run: dict, node_id: str, base: Path) -> None:
    """Core nodes downstream of Poll ran: SaveVideo wrote a playable file with sound."""
    out = run["history"].get("outputs", {}).get(node_id, {})
    entries = out.get("images") or []
    entry = entries[0] if entries else {}
    path = base / "output" / entry.get("subfolder", "") / entry.get("filename", "")
    info = video_info(path) if entry and path.is_file() else {"frames": 0, "fps": 0, "audio": False, "metadata": {}}
    report.check(info["frames"] > 0 and info["audio"],
                 f"{label}: CreateVideo → SaveVideo #{node_id} ran on Poll's frames and audio",
                 f"{entry.get('filename')}: {info['frames']} frames at {info['fps']:.1f} fps, "
                 f"audio={info['audio']}, metadata keys {sorted(info['metadata'])}")


async def check_linking_frames_later(report: Report, comfy: "Comfy", info: dict) -> None:
    """Unlinked frames are not decoded; linking them later re-runs Poll, from disk and unpaid."""
    workflow = json.loads((REPO / "example_workflows" / "kling_omni_text_to_video.json").read_text())
    prompt = to_api_prompt(workflow, info)
    poll_id = poll_nodes(prompt)[0]
    submit_id = next(n for n, node in prompt.items() if node["class_type"] == "CometOmniSubmit")
    prompt[submit_id]["inputs"]["seed"] = 4242  # an intent of its own
    first = await comfy.run(prompt)
    linked = json.loads(json.dumps(prompt))
    linked["9001"] = {"class_type": "PreviewImage", "inputs": {"images": [poll_id, 0]}}
    # Poll's VIDEO is ComfyUI's own type: the core Save Video node takes it as it is.
    linked["9002"] = {"class_type": "SaveVideo", "inputs": {"video": [poll_id, 2], "filename_prefix": "video/from_poll",
                                                            "format": "auto", "codec": "auto"}}
    second = await comfy.run(linked)
    cached = {str(n) for _, kind, data in comfy.events if kind == "execution_cached"
              and isinstance(data, dict) and data.get("prompt_id") == second.get("prompt_id")
              for n in data.get("nodes", [])}
    previews = second["history"].get("outputs", {}).get("9001", {}).get("images") or []
    texts = [text for _, text in comfy.texts(poll_id, second["start"])]
    saved = second["history"].get("outputs", {}).get("9002", {}).get("images") or []
    report.check(len(saved) == 1 and saved[0].get("filename", "").endswith(".mp4"),
                 "Poll's video output feeds the core Save Video node", json.dumps(saved)[:300])
    report.check(first["outcome"] == second["outcome"] == "success" and poll_id not in cached
                 and submit_id in cached and len(previews) > 1 and any("from disk" in t for t in texts),
                 "linking Poll's frames after a run re-runs Poll from disk (Submit cached, nothing paid)",
                 f"cached {sorted(cached)}, {len(previews)} frame previews, status {texts[-1:]}")


async def check_concurrent_polls(report: Report, comfy: Comfy, info: dict) -> None:
    """Two Submit → Poll chains in one prompt: the second Poll must start before the first ends."""
    workflow = json.loads((REPO / "example_workflows" / "kling_omni_text_to_video.json").read_text())
    one = to_api_prompt(workflow, info)
    prompt = {}
    for copy, words in ((0, "a red kite over the dunes"), (100, "a blue kite over the sea")):
        for nid, node in one.items():
            node = json.loads(json.dumps(node))
            for name, value in node["inputs"].items():
                if isinstance(value, list):
                    node["inputs"][name] = [str(int(value[0]) + copy), value[1]]
            if node["class_type"] == "CometOmniPrompt":
                node["inputs"]["prompt"] = words
            prompt[str(int(nid) + copy)] = node
    run = await comfy.run(prompt)
    if not report.check(run["outcome"] == "success", "two Polls in one prompt: runs to success",
                        outcome_text(run)):
        return
    spans = []
    for node_id in poll_nodes(prompt):
        times = comfy.texts(node_id, run["start"])
        done = [t for t, text in times if text.startswith("done")]
        spans.append((times[0][0] - run["start"], done[-1] - run["start"]) if times and done else None)
    overlap = None not in spans and spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]
    report.check(overlap, "two Polls in one prompt wait at the same time",
                 ", ".join(f"#{n} waited {s[0]:.1f}–{s[1]:.1f} s" if s else f"#{n} no status"
                           for n, s in zip(poll_nodes(prompt), spans)) + f"; prompt {run['seconds']:.1f} s")


# --- the key must leave no trace ---------------------------------------------------------

def media_metadata(path: Path) -> str:
    """Metadata text of PNG/MP4 files, in case it is stored compressed."""
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image
            with Image.open(path) as image:
                return json.dumps({k: str(v) for k, v in image.info.items()})
        if path.suffix.lower() in (".mp4", ".webm", ".mov"):
            import av
            with av.open(str(path)) as container:
                return json.dumps(dict(container.metadata))
    except Exception:
        pass
    return ""


def check_no_key(report: Report, label: str, key: str, base: Path, texts: dict, allowed: set) -> None:
    """The key is nowhere under `base` (except `allowed` files) nor in any of `texts`."""
    needles = [key.encode(), key[len("sk-"):].encode()]  # also without its prefix
    leaks, scanned, with_metadata = [], 0, 0
    for path in sorted(base.rglob("*")):
        if not path.is_file() or path in allowed or ".git" in path.parts:
            continue
        scanned += 1
        data = path.read_bytes()
        meta = media_metadata(path)
        with_metadata += bool(meta and meta != "{}")
        if any(n in data or n.decode() in meta for n in needles):
            leaks.append(str(path.relative_to(base)))
    for name, text in texts.items():
        if any(n.decode() in text for n in needles):
            leaks.append(name)
    report.check(not leaks, f"{label}: the key appears in no file, history or log",
                 f"found in {leaks}" if leaks else
                 f"{scanned} files scanned ({with_metadata} with media metadata) + {', '.join(texts)}")


def pack_key_file(base: Path) -> Path:
    """The stored key: in ComfyUI's system-user folder (0.3.76 and later), else the pack's data folder."""
    system = base / "user" / "__cometapi_omni" / "key"
    return system if system.exists() else base / "custom_nodes" / PACK_DIR_NAME / "data" / "key"


# --- the runs ----------------------------------------------------------------------------

async def env_key_run(args, report: Report, work: Path, fake_url: str, key: str) -> None:
    history = ""
    async with comfyui(args, work, "env_key", fake_url, key) as c:
        report.note(f"env-key run: ComfyUI at {c.url}, base directory {c.base}")
        comfy = Comfy(c.http, c.url)
        await comfy.connect()
        info = await comfy.get_json("/object_info")
        check_object_info(report, info)
        status, body = await comfy.text("GET", "/cometapi_omni/key")
        report.check(status == 200 and json.loads(body).get("source") == "env" and key not in body,
                     "env-key run: GET /cometapi_omni/key answers a masked status (source env)", body)
        await run_templates(report, comfy, info, c.base, fake_url, key)
        await check_concurrent_polls(report, comfy, info)
        await check_linking_frames_later(report, comfy, info)
        history = (await comfy.text("GET", "/history?max_items=1000"))[1]
        (work / "env_key.history.json").write_text(history)
        await comfy.close()
    log = c.proc.log()
    check_log(report, log, "env-key run")
    check_no_key(report, "env-key run", key, c.base, {"history": history, "ComfyUI log": log}, allowed=set())


async def stored_key_run(args, report: Report, work: Path, fake_url: str, key: str) -> None:
    history = ""
    async with comfyui(args, work, "stored_key", fake_url, None) as c:
        report.note(f"stored-key run: ComfyUI at {c.url}, no COMETAPI_KEY in its environment")
        comfy = Comfy(c.http, c.url)
        await comfy.connect()
        info = await comfy.get_json("/object_info")
        workflow = json.loads((REPO / "example_workflows" / "kling_omni_text_to_video.json").read_text())
        prompt = to_api_prompt(workflow, info)

        status, body = await comfy.text("GET", "/cometapi_omni/key")
        report.check(status == 200 and json.loads(body).get("set") is False,
                     "stored-key run: no key at first", body)
        run = await comfy.run(prompt, workflow)
        message = json.dumps(run["error"] or {})
        report.check(run["outcome"] == "error" and "COMETAPI_KEY" in message and "Settings" in message,
                     "stored-key run: without a key the prompt fails saying how to set one",
                     (run["error"] or {}).get("exception_message", run["outcome"])[:300])

        status, body = await comfy.text("POST", "/cometapi_omni/key", json={"key": key})
        answer = json.loads(body) if status == 200 else {}
        report.check(status == 200 and answer.get("source") == "store" and answer.get("ends_with") == key[-4:]
                     and key not in body, "stored-key run: POST /cometapi_omni/key stores it, answers masked",
                     body)
        status, body = await comfy.text("POST", "/cometapi_omni/key/test", json={})  # JSON: the routes require it
        report.check(status == 200 and json.loads(body).get("ok") is True and key not in body,
                     "stored-key run: POST /cometapi_omni/key/test accepts it", body)
        key_file = pack_key_file(c.base)
        mode = key_file.stat().st_mode & 0o777 if key_file.exists() else None
        report.check(key_file.exists() and key_file.read_text().strip() == key and mode == 0o600,
                     "stored-key run: key file is owner-only", f"{key_file} mode {oct(mode or 0)}")

        run = await comfy.run(prompt, workflow)
        report.check(run["outcome"] == "success", "stored-key run: text-to-video runs with the stored key",
                     outcome_text(run))
        if run["outcome"] == "success":
            for node_id in poll_nodes(prompt):
                check_poll_output(report, "stored-key run", run, node_id, c.base)
        history = (await comfy.text("GET", "/history?max_items=1000"))[1]
        await comfy.close()
    log = c.proc.log()
    check_log(report, log, "stored-key run", expected=("KeyMissing",))
    check_no_key(report, "stored-key run", key, c.base, {"history": history, "ComfyUI log": log},
                 allowed={pack_key_file(c.base)})


# --- the real frontend in headless Chromium (--browser) ----------------------------------

class Page:
    """One Chromium tab over the DevTools protocol: run JS, click, type, take screenshots."""

    def __init__(self, ws):
        self.ws, self.next_id, self.pending, self.errors = ws, 0, {}, []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.errors.append(f"{details.get('url', '')}: "
                                   f"{details.get('exception', {}).get('description', details.get('text'))}")

    async def send(self, method: str, **params):
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise CheckFailed(f"DevTools {method}: {answer['error']}")
        return answer["result"]

    async def js(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CheckFailed(f"page script failed: {details.get('exception', {}).get('description', details)}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float, what: str):
        deadline, error = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            try:
                value = await self.js(expression)
            except CheckFailed as exc:  # e.g. the app is not there yet
                value, error = None, str(exc)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise CheckFailed(f"the page did not show {what} within {timeout:.0f} s {error}")

    async def click(self, element_expression: str) -> bool:
        """A real mouse click in the middle of the element (False when there is none)."""
        point = await self.js(f"""(() => {{ const e = {element_expression}; if (!e) return null;
            e.scrollIntoView({{block: "nearest"}}); const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        if not point:
            return False
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=point[0], y=point[1], button="left", clickCount=1)
        return True

    async def holds(self, expression: str) -> bool:
        try:
            return bool(await self.js(f"!!({expression})"))
        except CheckFailed:
            return False

    async def click_until(self, element_expression: str, done_expression: str, timeout: float, what: str) -> None:
        """Click the element until `done` holds. A click while a dialog still opens (it scales in)
        or while its list still loads can land beside the element, or on one about to be replaced."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.holds(done_expression):
                return
            if await self.click(element_expression):
                retry = time.monotonic() + 2
                while time.monotonic() < min(retry, deadline):
                    if await self.holds(done_expression):
                        return
                    await asyncio.sleep(0.2)
            else:
                await asyncio.sleep(0.2)
        raise CheckFailed(f"clicking {what} did not work within {timeout:.0f} s")

    async def type_text(self, text: str) -> None:
        await self.send("Input.insertText", text=text)

    async def press(self, key: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code)

    async def shot(self, path: Path) -> None:
        import base64
        data = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


# Found the way a person finds them, by role and visible name: markup and class names differ
# between frontend versions (Settings' and Templates' side lists are PrimeVue listbox options
# in 1.27, plain role=button rows in 1.5x), and Nodes 2.0 draws nodes as DOM elements.
PAGE_HELPERS = r"""
window.__check = {
  shown(e) {  // laid out and not hidden (possibly scrolled away)
    if (!e || !e.isConnected) return false;
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none";
  },
  onScreen(e) {
    if (!__check.shown(e)) return false;
    const r = e.getBoundingClientRect();
    return r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
  },
  dialog() {  // the topmost open dialog
    const open = [...document.querySelectorAll("[role=dialog]")].filter(__check.shown);
    return open[open.length - 1] || null;
  },
  named(scope, name) {  // a clickable element whose accessible name is `name`
    const roles = "button, a, [role=button], [role=option], [role=tab], [role=menuitem], [role=treeitem], [role=link]";
    return [...(scope || document).querySelectorAll(roles)].find((e) => __check.shown(e)
      && ((e.getAttribute("aria-label") || "").trim() === name || e.textContent.trim() === name)) || null;
  },
  nodeElement(node) {  // the DOM element a node is drawn as in Nodes 2.0; null on the canvas renderer
    return node ? document.querySelector(`[data-node-id="${node.id}"]`) : null;
  },
};
"""


async def open_page(http: aiohttp.ClientSession, devtools: str, url: str) -> Page:
    async with http.put(f"{devtools}/json/new?about:blank") as r:
        target = await r.json()
    page = Page(await http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0))
    await page.send("Runtime.enable")
    await page.send("Page.enable")
    await page.send("Page.addScriptToEvaluateOnNewDocument", source=PAGE_HELPERS)
    await page.send("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
    origin = re.match(r"https?://[^/]+", url).group(0)
    await page.send("Browser.grantPermissions", origin=origin,
                    permissions=["clipboardReadWrite", "clipboardSanitizedWrite"])
    await page.send("Emulation.setFocusEmulationEnabled", enabled=True)  # the clipboard needs a focused page
    await page.send("Page.navigate", url=url)
    return page


async def start_chromium(args, http: aiohttp.ClientSession, work: Path) -> str:
    port = free_port()
    # No call home: without these, Chromium keeps trying Google's services (updates, sync, QUIC).
    argv = [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-default-browser-check", "--disable-extensions", f"--remote-debugging-port={port}",
            f"--user-data-dir={work / 'chromium-profile'}", "--window-size=1400,900", "about:blank"]
    chromium = Service("Chromium", argv, work / "chromium.log")
    devtools = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not chromium.alive():
            break
        try:
            async with http.get(devtools + "/json/version") as r:
                if r.status == 200:
                    return devtools
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise CheckFailed(f"Chromium did not start: {chromium.log()[-1500:]}")


APP = "window.comfyAPI.app.app"
SETTING = APP + ".extensionManager.setting"
NODES2 = "Comfy.VueNodes.Enabled"
KEY_INPUT = 'document.querySelector(\'input[aria-label="CometAPI key"]\')'
KEY_PANEL = KEY_INPUT + ".closest('div').parentElement"
POLL = APP + ".graph.nodes.find(n => n.type === 'CometOmniPoll')"
PROMPT = APP + ".graph.nodes.find(n => n.type === 'CometOmniPrompt')"
PROMPT_HELP = f"(({PROMPT}.widgets || []).find(w => w.name === 'cometapi_prompt_help') || {{}}).element"
PROMPT_TEXT = f"(({PROMPT}.widgets || []).find(w => w.name === 'prompt') || {{}}).value"
# The prompt's text box as it is on screen, in either renderer.
PROMPT_BOX = f"[...document.querySelectorAll('textarea')].find(t => __check.shown(t) && t.value === {PROMPT_TEXT})"
TEMPLATE_CARDS = ("[...(__check.dialog()?.querySelectorAll('[data-testid^=\"template-workflow-\"]') || [])]"
                  ".map(e => e.dataset.testid.replace('template-workflow-', ''))")
# How much taller than its lines one of the pack's text boxes is drawn (px): its padding, about
# 6; below 0 its text is cut; a box stretched over the node's free room has 50 and more.
BOX_SLACK = """((box) => { const lines = [...box.children].reduce((h, c) => h + c.getBoundingClientRect().height, 0);
    return Math.round(box.getBoundingClientRect().height - lines); })"""
BROWSER_TEMPLATE = "kling_omni_local_pipeline"
BAD_TOKEN = "<<<image_2>>>"  # the template wires one image


def command(name: str) -> str:
    return f"{APP}.extensionManager.command.execute('{name}'); 1"


async def close_dialogs(page: Page) -> None:
    """Close what a first start opens (1.5x shows the template browser to a new user)."""
    for _ in range(5):
        if not await page.holds("__check.dialog()"):
            return
        await page.press("Escape", 27)
        await asyncio.sleep(0.5)
    await page.wait_for("!__check.dialog()", 5, "the dialogs closed")


async def show_node(page: Page, node: str) -> None:
    """Scroll the canvas so the node sits near the top left, at 90 %, as a person would look at it."""
    await page.js(f"""(() => {{ const node = {node}, c = {APP}.canvas; c.ds.scale = 0.9;
        c.ds.offset = [-(node.pos[0] - 420), -(node.pos[1] - 120)]; c.setDirty(true, true); return 1; }})()""")
    await asyncio.sleep(1)  # Nodes 2.0 moves its DOM nodes on the next frames


async def set_nodes2(page: Page, wanted: str | None) -> bool:
    """Turn Nodes 2.0 on or off as asked (--nodes2); returns whether it is on."""
    if wanted is not None:
        state = await page.js(f"""(async () => {{ const s = {SETTING};
            if (s.get('{NODES2}') === undefined) return 'unknown';
            await s.set('{NODES2}', {'true' if wanted == 'on' else 'false'}); return s.get('{NODES2}'); }})()""")
        if state == "unknown":
            raise CheckFailed(f"--nodes2 {wanted}: this frontend has no {NODES2} setting")
    return bool(await page.js(f"{SETTING}.get('{NODES2}')"))


async def browser_settings_key(page: Page, report: Report, comfy: Comfy, key: str, shots: Path) -> None:
    """Settings › CometAPI: type the key, Save, Test key."""
    await close_dialogs(page)
    await page.js(command("Comfy.ShowSettingsDialog"))
    await page.click_until("__check.named(__check.dialog(), 'CometAPI')", f"__check.shown({KEY_INPUT})", 20,
                           "Settings › CometAPI")
    before = await page.wait_for(f"{KEY_INPUT} && !{KEY_PANEL}.innerText.startsWith('Checking') "
                                 f"&& {KEY_PANEL}.innerText", 15, "the CometAPI key panel")
    await page.shot(shots / "02_settings_no_key.png")
    report.check("No key set" in before, "browser: Settings › CometAPI says no key is set", before.split("\n")[0])
    await page.click(KEY_INPUT)
    await page.type_text(key)
    await page.click(f"__check.named({KEY_PANEL}, 'Save')")
    saved = await page.wait_for(f"{KEY_PANEL}.innerText.includes('{key[-4:]}') && {KEY_PANEL}.innerText",
                                15, "the saved key's masked status")
    input_value = await page.js(f"{KEY_INPUT}.value")
    status = json.loads((await comfy.text("GET", "/cometapi_omni/key"))[1])
    report.check(key not in saved and input_value == "" and status.get("source") == "store",
                 "browser: the key typed in Settings is stored on the server, shown masked",
                 f"{saved.splitlines()[0]} (input cleared: {input_value == ''}; server: {status})")
    await page.click(f"__check.named({KEY_PANEL}, 'Test key')")
    tested = await page.wait_for(f"(() => {{ const t = {KEY_PANEL}.innerText; "
                                 "return !t.includes('Testing') && /accepted|✓|✗|fail/i.test(t) && t; })()",
                                 20, "the key test's answer")
    await page.shot(shots / "03_settings_key_saved_and_tested.png")
    report.check("accepted" in tested and key not in tested, "browser: Test key reports success",
                 tested.splitlines()[-1])
    settings_text = (await comfy.text("GET", "/settings"))[1]
    report.check(key not in settings_text, "browser: the key is no ComfyUI setting (GET /settings)")
    await close_dialogs(page)


async def browser_open_template(page: Page, report: Report, nodes2: bool, shots: Path) -> None:
    """Browse Templates › cometapi-kling-omni › a template."""
    expected = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
    await page.js(command("Comfy.BrowseTemplates"))
    # Done when the list shows the pack's cards and only those (not the core's "All"/"Popular").
    await page.click_until(f"__check.named(__check.dialog(), '{PACK_DIR_NAME}')",
                           f"(() => {{ const c = {TEMPLATE_CARDS}; return c.length && "
                           f"c.every(n => {json.dumps(expected)}.includes(n)); }})()", 20,
                           "the pack in Browse Templates")
    cards = await page.js(TEMPLATE_CARDS)
    # The cards in view show the .jpg shipped beside each workflow (the others load when scrolled to).
    thumbs = """[...__check.dialog().querySelectorAll('[data-testid^="template-workflow-"]')].filter(__check.onScreen)
        .map(card => [...card.querySelectorAll('img')].some(i => i.complete && i.naturalWidth > 0))"""
    try:
        shown = await page.wait_for(f"(() => {{ const n = {thumbs}; return n.length && n.every(Boolean) && n; }})()",
                                    10, "the thumbnails of the cards in view")
    except CheckFailed:
        shown = await page.js(thumbs)
    await page.shot(shots / "04_browse_templates.png")
    report.check(shown and all(shown), "browser: the template cards in view show their thumbnails",
                 f"{sum(map(bool, shown or []))} of {len(shown or [])} cards in view")
    card = f"__check.dialog()?.querySelector('[data-testid=\"template-workflow-{BROWSER_TEMPLATE}\"]')"
    await page.click_until(card, f"!!{POLL} && !__check.dialog()", 20, f"the template card {BROWSER_TEMPLATE}")
    report.check(sorted(cards) == expected, "browser: Browse Templates lists the pack's templates and opens one",
                 f"{len(cards)} cards; opened {BROWSER_TEMPLATE}")
    await page.js(command("Comfy.Canvas.FitView"))
    await asyncio.sleep(1)
    await page.shot(shots / "05_template_loaded.png")
    drawn = await page.wait_for(f"""(() => {{ const nodes = {APP}.graph.nodes;
        const els = nodes.map(n => __check.nodeElement(n)).filter(Boolean).length;
        return {'els === nodes.length' if nodes2 else 'els === 0'} && `${{els}} of ${{nodes.length}} nodes are DOM elements`; }})()""",
                                10, "the nodes drawn by the renderer asked for")
    report.check(drawn, f"browser: Nodes 2.0 is {'on' if nodes2 else 'off'}: "
                        f"{'every node is a DOM element' if nodes2 else 'nodes are drawn on the canvas'}", drawn)


async def browser_prompt_help(page: Page, report: Report, shots: Path) -> None:
    """The Prompt node lists the tokens its refs provide, and flags one that points at nothing."""
    await show_node(page, PROMPT)
    helped = await page.wait_for(f"__check.onScreen({PROMPT_HELP}) && {PROMPT_HELP}.innerText", 10,
                                 "the help on the Prompt node")
    await page.shot(shots / "06_prompt_help.png")
    slack = await page.js(f"{BOX_SLACK}({PROMPT_HELP})")
    report.check("<<<image_1>>> = first_frame from" in helped and 0 <= slack <= 24,
                 "browser: the Prompt node shows which tokens its refs provide",
                 helped.replace("\n", " | ")[:300] + f" ({slack} px more than its text)")
    original = await page.js(PROMPT_TEXT)
    # Typed at the end of the prompt's text box, as a person would.
    await page.click_until(PROMPT_BOX, f"document.activeElement === ({PROMPT_BOX})", 10, "the prompt's text box")
    await page.js("(() => { const t = document.activeElement; t.setSelectionRange(t.value.length, t.value.length); return 1; })()")
    await page.type_text(" " + BAD_TOKEN)
    warned = await page.wait_for(f"{PROMPT_HELP}.innerText.includes('{BAD_TOKEN} points at nothing') "
                                 f"&& {PROMPT_HELP}.innerText", 10, f"the warning about {BAD_TOKEN}")
    await page.shot(shots / "07_prompt_token_warning.png")
    report.check(BAD_TOKEN in await page.js(PROMPT_TEXT),
                 "browser: a token that points at nothing, typed into the prompt, is flagged on the node",
                 [line for line in warned.splitlines() if BAD_TOKEN in line][0])
    await page.js("(() => { document.activeElement.select(); return 1; })()")
    await page.type_text(original)
    await page.wait_for(f"{PROMPT_TEXT} === {json.dumps(original)} && !{PROMPT_HELP}.innerText.includes('points at nothing')",
                        10, "the prompt back as it was, without the warning")
    await page.press("Escape", 27)


async def browser_run_poll(page: Page, report: Report, nodes2: bool, shots: Path) -> None:
    """Run, and watch the Poll node: status text while it waits, then the video and the task id."""
    await show_node(page, POLL)
    task_box = f"(({POLL}.widgets || []).find(w => w.name === 'cometapi_task_id') || {{}}).element"
    empty = await page.wait_for(f"__check.onScreen({task_box}) && [{task_box}.innerText, {BOX_SLACK}({task_box})]",
                                10, "the task id box on the Poll node")
    report.check(0 <= empty[1] <= 24, "browser: before a run the Poll node's task id box fits its one line",
                 f"{empty[0]!r}, {empty[1]} px more than its text")
    await page.click("__check.named(document, 'Run')")
    # The status text is ComfyUI's own progress-text widget: drawn on the canvas by the classic
    # renderer (so only its value can be read), a DOM element in Nodes 2.0 (so it must be on screen).
    texts, on_screen = [], set()
    shot_at = {"queued": "08_status_queued.png", "processing": "09_status_processing.png",
               "downloading": "10_status_downloading.png"}
    deadline = time.monotonic() + PROMPT_TIMEOUT
    while time.monotonic() < deadline:
        seen = await page.js(f"""(() => {{ const poll = {POLL};
            const w = (poll.widgets || []).find(w => w.name === '$$node-text-preview');
            if (!w) return null;
            const text = String(w.value), el = __check.nodeElement(poll);
            return {{text, shown: el ? el.innerText.includes(text.split('\\n')[0]) : null}}; }})()""")
        text = seen and seen["text"]
        if seen and seen["shown"]:
            on_screen.add(text.split("\n")[0])
        if text and (not texts or texts[-1] != text):
            texts.append(text)
            word = text.split(" ")[0].split("\n")[0]
            if word in shot_at:
                await page.shot(shots / shot_at.pop(word))
        if text and text.startswith("done"):
            break
        await asyncio.sleep(0.15)
    firsts = [t.split("\n")[0] for t in texts]
    # A line can change before Nodes 2.0 draws it (the first "checking" lasts a few ms): what
    # must reach the screen is the waiting and the end.
    shown = firsts if not nodes2 else [t for t in firsts if t in on_screen]
    report.check(len(shown) >= 3 and any(re.search(r"processing.* \d+ s$", t) for t in shown)
                 and firsts[-1].startswith("done") and firsts[-1] in shown,
                 "browser: the status text on the Poll node changes while it runs",
                 " | ".join(firsts)[:400] + (f"; {len(shown)} of {len(firsts)} seen in the node's DOM" if nodes2 else ""))
    preview = await page.wait_for(f"""(() => {{ const poll = {POLL};
        const v = [...document.querySelectorAll('video')].find(v => v.src.includes('subfolder=cometapi_omni'));
        if (!v || v.readyState < 2 || !v.videoWidth || !__check.onScreen(v)) return null;
        const r = v.getBoundingClientRect();
        const id = (poll.widgets.find(w => w.name === 'cometapi_task_id') || {{}}).element;
        return {{src: v.src, width: v.videoWidth, shown: [Math.round(r.width), Math.round(r.height)],
                 media: poll.previewMediaType ?? null, node: v.closest('[data-node-id]')?.dataset.nodeId ?? null,
                 poll: String(poll.id), idText: id && __check.onScreen(id) && id.innerText,
                 idHeight: id && Math.round(id.getBoundingClientRect().height), idSlack: id && {BOX_SLACK}(id)}}; }})()""",
                                  20, "the video preview on the Poll node")
    await asyncio.sleep(1)
    await page.shot(shots / "11_preview.png")
    # In Nodes 2.0 the video sits inside the Poll node's element; on the canvas it is an overlay
    # the node places by its previewMediaType.
    in_poll = preview["node"] == preview["poll"] if nodes2 else preview["media"] == "video" and preview["node"] is None
    report.check(in_poll and preview["shown"][0] > 50 and preview["shown"][1] > 50,
                 "browser: the Poll node shows the video preview",
                 f"{preview['src'].split('?')[1].split('&rand')[0]}, {preview['width']} px wide, "
                 f"drawn {preview['shown'][0]}x{preview['shown'][1]}"
                 + (f" in node #{preview['node']}" if preview["node"] else ""))
    task_id = texts[-1].split("task ")[-1] if texts else "?"
    report.check(preview["idText"] and task_id in preview["idText"] and preview["idHeight"] >= 15
                 and 0 <= preview["idSlack"] <= 24, "browser: the task id stays visible on the Poll node",
                 f"{preview['idText']!r}, {preview['idHeight']} px high, {preview['idSlack']} px more than its text")
    await page.click(f"__check.named({task_box}, 'Copy')")
    copied = await page.wait_for("navigator.clipboard.readText().catch(e => String(e))", 5, "the clipboard")
    report.check(copied == task_id, "browser: Copy on the Poll node puts the task id on the clipboard", repr(copied))


# --- costs and the Tasks sidebar in the browser (issue 9) ----------------------------------

SUBMIT = APP + ".graph.nodes.find(n => n.type === 'CometOmniSubmit')"
SUBMIT_PRICE = f"(({SUBMIT}.widgets || []).find(w => w.name === 'cometapi_submit_price') || {{}}).element"
POLL_STATUS = f"String((({POLL}.widgets || []).find(w => w.name === '$$node-text-preview') || {{}}).value || '')"
LIMIT_INPUT = 'document.querySelector(\'input[aria-label="Daily limit in USD"]\')'
LIMIT_PANEL = LIMIT_INPUT + "?.closest('label')?.parentElement"
STD_RATE_INPUT = 'document.querySelector(\'input[aria-label^="Rate for O1 std,"]\')'
RATES_PANEL = STD_RATE_INPUT + "?.parentElement?.parentElement"
TASKS_TAB = "__check.named(document, 'Kling Omni tasks')"
TASKS_LIST = "document.querySelector('ul[aria-label=\"Kling Omni tasks\"]')"
TASKS_PANEL = TASKS_LIST + "?.parentElement?.parentElement"
SPEND_GUARD_WORDS = "this would cross your daily limit"
COLLECT_ENV = "COMETAPI_OMNI_COLLECT_SECONDS"  # kling_omni.collector.INTERVAL_ENV


def task_row(task_id: str) -> str:
    return f"document.querySelector('li[data-task-id=\"{task_id}\"]')"


def set_widget(node: str, name: str, value) -> str:
    """Set a widget as its own control does (value, then its callback)."""
    return f"""(() => {{ const n = {node}, w = n.widgets.find(w => w.name === '{name}'); w.value = {json.dumps(value)};
        w.callback?.(w.value, {APP}.canvas, n); n.setDirtyCanvas?.(true, true); return 1; }})()"""


def usd(amount: float) -> str:
    """What the pack shows for an amount (kling_omni.pricing.money)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from kling_omni.pricing import money
    return money(amount)


async def settled_text(page: Page, expression: str, expected: str, timeout: float) -> str:
    """The element's text once it is `expected` (what it is at the end of `timeout` otherwise)."""
    return await settled_text_of(page, f"(() => {{ const e = {expression}; return e ? e.innerText : null; }})()",
                                 expected, timeout)


async def settled_text_of(page: Page, expression: str, expected: str, timeout: float) -> str:
    """The value of `expression` once it is `expected` (what it is at the end of `timeout` otherwise)."""
    deadline, text = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        text = await page.js(expression)
        if text == expected:
            break
        await asyncio.sleep(0.2)
    return text


async def type_into(page: Page, field: str, text: str) -> None:
    """Click a field, clear it, type, press Enter: as a person changes a number."""
    await page.click(field)
    await page.js(f"(() => {{ const e = {field}; e.focus(); e.value = ''; return 1; }})()")
    await page.type_text(text)
    await page.press("Enter", 13)


async def settings_json(comfy: Comfy) -> dict:
    return json.loads((await comfy.text("GET", "/cometapi_omni/settings"))[1])


async def browser_submit_price(page: Page, report: Report, shots: Path) -> None:
    """The Submit node shows what it bills and what the whole graph bills, live as widgets change."""
    await show_node(page, SUBMIT)
    template = "5 s · std ≈ $0.42\nWhole graph ≈ $0.42: 1 Submit, 1 task"  # the template: std, 5 s, 1 variation
    shown = await page.wait_for(f"__check.onScreen({SUBMIT_PRICE}) && {SUBMIT_PRICE}.innerText", 10,
                                "the price on the Submit node")
    shown = await settled_text(page, SUBMIT_PRICE, template, 5)
    await page.shot(shots / "06a_submit_price.png")
    report.check(shown == template, "browser: the Submit node shows what it bills and what the whole graph bills",
                 str(shown).replace("\n", " | "))
    await page.js(set_widget(SUBMIT, "variations", 4))
    await page.js(set_widget(PROMPT, "mode", "pro"))
    live = "4 × 5 s · pro ≈ $2.24\nWhole graph ≈ $2.24: 1 Submit, 4 tasks"
    shown = await settled_text(page, SUBMIT_PRICE, live, 10)
    await page.shot(shots / "06b_submit_price_live.png")
    report.check(shown == live, "browser: the price follows the widgets (variations 4, mode pro)",
                 str(shown).replace("\n", " | "))
    await page.js(f"(() => {{ {SUBMIT}.mode = 4; {APP}.canvas.setDirty(true, true); return 1; }})()")
    bypassed = "Bypassed: bills nothing (when on: 4 × 5 s · pro ≈ $2.24)\nWhole graph: no Submit will run."
    shown = await settled_text(page, SUBMIT_PRICE, bypassed, 10)
    report.check(shown == bypassed, "browser: a bypassed Submit counts for nothing in the whole graph",
                 str(shown).replace("\n", " | "))
    await page.js(f"(() => {{ {SUBMIT}.mode = 0; {APP}.canvas.setDirty(true, true); return 1; }})()")
    await page.js(set_widget(SUBMIT, "variations", 1))
    await page.js(set_widget(PROMPT, "mode", "std"))
    await settled_text(page, SUBMIT_PRICE, template, 10)


async def browser_spending_settings(page: Page, report: Report, comfy: Comfy, shots: Path) -> None:
    """Settings › CometAPI › Spending: today's spend, a refused value, a daily limit; a rate, live in
    the Submit's price, and back to the shipped table."""
    await close_dialogs(page)
    await page.js(command("Comfy.ShowSettingsDialog"))
    await page.click_until("__check.named(__check.dialog(), 'CometAPI')", f"__check.shown({LIMIT_INPUT})", 20,
                           "Settings › CometAPI")
    answer = await settings_json(comfy)
    spent = f"Spent today ≈ {usd(answer['today']['usd'])}"
    shown = await page.wait_for(f"{LIMIT_PANEL}?.innerText.includes('Spent today') && {LIMIT_PANEL}.innerText", 10,
                                "today's spend in Settings › CometAPI › Spending")
    heading = await page.js("[...__check.dialog().querySelectorAll('*')].some(e => !e.children.length "
                            "&& e.textContent.trim() === 'Spending' && __check.shown(e))")
    limit = answer["settings"]["daily_limit_usd"]  # a fresh install: the default daily limit
    report.check(heading and limit == answer["defaults"]["daily_limit_usd"] > 0
                 and f"{spent} · {usd(answer['today']['left_usd'])} left of {usd(limit)}" in shown,
                 "browser: Settings › CometAPI › Spending shows today's spend, as the journal counts it, and the "
                 "default daily limit", f"{shown.strip()!r} (server: {answer['today']}, limit {limit})")
    await type_into(page, LIMIT_INPUT, "-1")
    refused = await page.wait_for(f"{LIMIT_PANEL}.innerText.includes('Nothing was saved') && {LIMIT_PANEL}.innerText",
                                  10, "the server's answer to a negative limit")
    stored = (await settings_json(comfy))["settings"]["daily_limit_usd"]
    report.check("daily_limit_usd" in refused and stored == limit,
                 "browser: a limit the server refuses shows its reason next to the field, nothing saved",
                 refused.strip().splitlines()[-1])
    await type_into(page, LIMIT_INPUT, "0.5")
    saved = await page.wait_for(f"{LIMIT_PANEL}.innerText.includes('left of $0.50') && {LIMIT_PANEL}.innerText", 10,
                                "the saved daily limit")
    stored = (await settings_json(comfy))["settings"]["daily_limit_usd"]
    report.check(stored == 0.5, "browser: a daily limit typed in Settings › CometAPI › Spending is saved on the server",
                 f"{saved.strip()!r}; server: {stored}")
    await type_into(page, STD_RATE_INPUT, "0.1")
    repriced = await settled_text(page, SUBMIT_PRICE, "5 s · std ≈ $0.50\nWhole graph ≈ $0.50: 1 Submit, 1 task", 10)
    rates = (await settings_json(comfy))["settings"]["rates"]
    await page.shot(shots / "12_settings_spending.png")
    report.check(rates["std"] == 0.1 and str(repriced).startswith("5 s · std ≈ $0.50"),
                 "browser: a rate changed in Settings reprices the Submit at once",
                 f"std rate {rates['std']}; Submit: {str(repriced).splitlines()[0] if repriced else repriced}")
    await page.click(f"__check.named({RATES_PANEL}, 'Reset to the shipped rates')")
    back = await settled_text(page, SUBMIT_PRICE, "5 s · std ≈ $0.42\nWhole graph ≈ $0.42: 1 Submit, 1 task", 10)
    answer = await settings_json(comfy)
    source = await page.js(f"{RATES_PANEL}.innerText")
    report.check(answer["settings"]["rates"] == answer["defaults"]["rates"] and str(back).startswith("5 s · std ≈ $0.42")
                 and answer["rates_source"] in source,
                 "browser: Reset to the shipped rates restores them; the panel names their source",
                 f"Submit: {str(back).splitlines()[0] if back else back}")
    await close_dialogs(page)


async def browser_spend_guard(page: Page, report: Report, comfy: Comfy, fake, shots: Path) -> None:
    """A new generation that would cross the daily limit stops with the guard's words, before any request."""
    created = fake.created_count
    posts = sum(1 for r in fake.requests if r.method == "POST")
    await page.js(set_widget(SUBMIT, "seed", 1))  # a new generation: the one already made cost nothing again
    await page.click("__check.named(document, 'Run')")
    said = await page.wait_for(f"(() => {{ const t = document.body.innerText;"
                               f" return t.includes({json.dumps(SPEND_GUARD_WORDS)}) && t; }})()", 60,
                               "the spend guard's message")
    await asyncio.sleep(0.5)
    await page.shot(shots / "13_spend_guard.png")
    sentence = next((line for line in said.splitlines() if SPEND_GUARD_WORDS in line), "")
    report.check("Settings › CometAPI › Spending" in sentence and "$0.50" in sentence and "Nothing was sent" in sentence,
                 "browser: a run past the daily limit is stopped with a message saying where to change it",
                 sentence[:400])
    report.check(fake.created_count == created and sum(1 for r in fake.requests if r.method == "POST") == posts,
                 "browser: the stopped run sent no creation request",
                 f"{fake.created_count - created} tasks created, "
                 f"{sum(1 for r in fake.requests if r.method == 'POST') - posts} POSTs")
    await close_dialogs(page)
    await page.js(f"(() => {{ const t = {APP}.extensionManager.toast; (t.removeAll || t.dismissAll)?.call(t); return 1; }})()")


async def browser_cancel_poll(page: Page, report: Report, comfy: Comfy, fake, shots: Path) -> str:
    """A new task whose Poll is cancelled while it waits: the paid task is left for the collector."""
    await comfy.text("POST", "/cometapi_omni/settings", json={"daily_limit_usd": 0})  # the user lifts the limit
    fake.processing_seconds = 3600  # it runs until finish() below
    before = set(fake.tasks)
    await page.js(set_widget(SUBMIT, "seed", 2))
    await show_node(page, POLL)
    await page.click("__check.named(document, 'Run')")
    if not await asyncio.to_thread(fake.wait_until, lambda: len(fake.tasks) > len(before), 60):
        raise CheckFailed("the run made no task")
    task_id = (set(fake.tasks) - before).pop()
    await page.wait_for(f"{POLL_STATUS}.startsWith('processing')", 60, "the Poll waiting for the new task")
    await page.js(command("Comfy.Interrupt"))
    deadline, queue = time.monotonic() + 20, {}
    while time.monotonic() < deadline:
        queue = json.loads((await comfy.text("GET", "/queue"))[1])
        if not queue.get("queue_running"):
            break
        await asyncio.sleep(0.2)
    rows = json.loads((await comfy.text("GET", "/cometapi_omni/tasks?offset=0&limit=5"))[1])["tasks"]
    row = next((r for r in rows if r["task_id"] == task_id), {})
    await page.shot(shots / "14_poll_cancelled.png")
    report.check(not queue.get("queue_running") and row.get("state") in ("queued", "processing") and not row.get("on_disk"),
                 "browser: Cancel stops the Poll mid-wait; the task stays journalled, not collected",
                 f"task {task_id}: {row.get('state')}, on disk {row.get('on_disk')}; status {await page.js(POLL_STATUS)!r}")
    return task_id


async def browser_tasks_sidebar(page: Page, report: Report, comfy: Comfy, fake, base: Path, key: str,
                                task_id: str, nodes2: bool, shots: Path) -> None:
    """The Tasks sidebar: the cancelled task collected in the background, live; totals as the journal
    counts them; preview through /view; Add a Poll node; Copy."""
    await close_dialogs(page)
    await page.click_until(TASKS_TAB, f"__check.shown({TASKS_LIST})", 20, "the Kling Omni tasks sidebar button")
    row = task_row(task_id)
    waiting = await page.wait_for(f"{row}?.innerText", 15, "the cancelled task in the sidebar")
    report.check("5 s · std · ≈ $0.42" in waiting and re.search(r"\b(queued|processing)\b", waiting),
                 "browser: the sidebar lists the cancelled task, not finished yet, with what it bills",
                 waiting.replace("\n", " | ")[:300])
    listed = json.loads((await comfy.text("GET", "/cometapi_omni/tasks?offset=0&limit=50"))[1])["tasks"]
    served = next((r for r in listed if r["task_id"] == task_id), {})
    badge = await page.js(f"(() => {{ const b = {row}?.querySelector('[data-model]'); "
                          "return b && [b.textContent, b.getAttribute('aria-label'), __check.shown(b)]; })()")
    report.check(badge == ["O1", "Model: Kling O1 (kling-video-o1)", True]
                 and [served.get(k) for k in ("model", "model_tag", "sound", "shots", "auto_shots")]
                 == ["kling-video-o1", "O1", False, 0, False],
                 "browser: the sidebar row says which model made the task (the O1 template's: \"O1\")",
                 f"badge {badge}; row {[served.get(k) for k in ('model', 'model_tag', 'sound', 'shots', 'auto_shots')]}")
    # Clicked again if the row was redrawn under the pointer (a live event): collecting twice is harmless.
    await page.click_until(f"__check.named({row}, 'Collect now')", f"{row}?.innerText.includes('collector')", 20,
                           "Collect now")
    handed = await page.js(f"{row}.innerText")
    report.check("fetches it now" in handed, "browser: Collect now hands the task to the background collector",
                 [line for line in handed.splitlines() if "collector" in line][0])
    fake.finish(task_id)
    collected = await page.wait_for(f"""(() => {{ const r = {row}, i = r?.querySelector('img');
        return r && /\\bsaved\\b/.test(r.innerText) && i && i.complete && i.naturalWidth > 0 && r.innerText; }})()""",
                                    60, "the cancelled task saved, with its thumbnail")
    mp4 = base / "output" / "cometapi_omni" / f"kling_{task_id}.mp4"
    report.check(mp4.is_file() and video_info(mp4)["frames"] > 0,
                 "browser: the cancelled Poll's video is collected in the background and shows up live in the sidebar",
                 f"{mp4.relative_to(base)}; row: {collected.splitlines()[-4:]}")
    await page.click(f"{row}.querySelector('button[aria-label^=\"Preview\"]')")
    preview = await page.wait_for(f"""(() => {{ const v = {row}.querySelector('video');
        return v && v.readyState >= 2 && v.videoWidth > 0 && {{src: v.getAttribute('src'),
        open: {row}.querySelector('a')?.getAttribute('href')}}; }})()""", 15, "the preview in the sidebar")
    await asyncio.sleep(0.5)
    await page.shot(shots / "15_tasks_sidebar.png")
    view = f"/view?filename=kling_{task_id}.mp4&subfolder=cometapi_omni&type=output"
    report.check(preview["src"].endswith(view) and preview["open"].endswith(view),
                 "browser: the sidebar previews and opens the video through ComfyUI's /view", preview["open"])

    answer = json.loads((await comfy.text("GET", "/cometapi_omni/tasks?offset=0&limit=50"))[1])
    totals = answer["totals"]
    shown = await page.wait_for(f"{TASKS_PANEL}?.innerText", 5, "the sidebar's text")

    def line(period, t):
        seconds = ", ".join(f"{m} {s:g} s" for m, s in sorted(t["seconds"].items())) or "0 s"
        return f"{period}: {t['tasks']} task{'' if t['tasks'] == 1 else 's'} · {seconds} · ≈ {usd(t['usd'])}"

    expected = [line("Today", totals["today"]), line("Last 30 days", totals["last_30_days"])]
    ids = {r["task_id"] for r in answer["tasks"]}
    report.check(all(e in shown for e in expected) and totals["today"]["tasks"] == len(fake.tasks) == len(ids)
                 and ids == set(fake.tasks) and "No daily limit" in shown,
                 "browser: the sidebar's totals are the journal's and match the tasks created",
                 f"{' / '.join(expected)}; {len(fake.tasks)} created, {len(ids)} journalled")
    report.check("http" not in shown and key not in shown and key[-8:] not in shown,
                 "browser: the sidebar shows no URL and no key", f"{len(shown)} characters")

    polls = f"{APP}.graph.nodes.filter(n => n.type === 'CometOmniPoll')"
    count = await page.js(f"{polls}.length")
    await page.click(f"__check.named({row}, 'Add a Poll node')")
    added = await page.wait_for(f"""(() => {{ const p = {polls}.find(n => (n.widgets.find(w => w.name === 'task_id')
        || {{}}).value === '{task_id}'); if (!p) return null; const a = {APP}.canvas.visible_area, el = __check.nodeElement(p);
        return {{count: {polls}.length, inView: p.pos[0] >= a[0] && p.pos[1] >= a[1] && p.pos[0] < a[0] + a[2]
            && p.pos[1] < a[1] + a[3], shown: el ? [...el.querySelectorAll('input, textarea')].some(i => i.value === '{task_id}')
            : null}}; }})()""", 10, "the Poll node added from the sidebar")
    await page.shot(shots / "16_poll_added_from_sidebar.png")
    report.check(added["count"] == count + 1 and added["inView"] and (added["shown"] if nodes2 else True),
                 "browser: Add a Poll node puts a Poll with the task id in the middle of the view",
                 json.dumps(added))
    await page.js(f"(() => {{ const g = {APP}.graph; g.remove({polls}.pop()); return 1; }})()")
    await page.click(f"__check.named({row}, 'Copy id')")
    copied = await page.wait_for("navigator.clipboard.readText().catch(e => String(e))", 5, "the clipboard")
    report.check(copied == task_id, "browser: Copy id in the sidebar puts the task id on the clipboard", repr(copied))
    await page.click(TASKS_TAB)  # closed again


async def browser_remove_key(page: Page, report: Report, comfy: Comfy) -> None:
    """Settings › CometAPI › Remove saved key: the server forgets it."""
    await close_dialogs(page)
    await page.js(command("Comfy.ShowSettingsDialog"))
    await page.click_until("__check.named(__check.dialog(), 'CometAPI')", f"__check.shown({KEY_INPUT})", 20,
                           "Settings › CometAPI")
    await page.click_until(f"__check.named({KEY_PANEL}, 'Remove saved key')",
                           f"{KEY_PANEL}.innerText.includes('No key set')", 10, "Remove saved key")
    status = json.loads((await comfy.text("GET", "/cometapi_omni/key"))[1])
    report.check(not status.get("set") and not status.get("stored"),
                 "browser: Remove saved key in Settings removes it from the server", json.dumps(status))
    await close_dialogs(page)


async def browser_save(page: Page, report: Report, base: Path, key: str, name: str) -> None:
    """Save the workflow from the UI: the file has the graph and no trace of the key."""
    await page.js(command("Comfy.SaveWorkflow"))
    await page.wait_for("!!__check.dialog()?.querySelector('input')", 10, "the save prompt")
    await page.js("(() => { const i = __check.dialog().querySelector('input'); i.focus(); i.select(); return 1; })()")
    await page.type_text(name)
    await page.press("Enter", 13)
    saved_file = base / "user" / "default" / "workflows" / f"{name}.json"
    deadline, saved_text = time.monotonic() + 15, ""
    while time.monotonic() < deadline:
        # The server creates the file, then writes it: wait for a whole workflow.
        saved_text = saved_file.read_text() if saved_file.exists() else ""
        with contextlib.suppress(ValueError):
            if json.loads(saved_text).get("nodes"):
                break
        await asyncio.sleep(0.2)
    report.check("CometOmniPoll" in saved_text and key not in saved_text,
                 "browser: a workflow saved from the UI has no trace of the key",
                 f"{saved_file.relative_to(base)} ({len(saved_text)} bytes)")


async def browser_subgraph_price(page: Page, report: Report, shots: Path) -> None:
    """A Submit inside a subgraph counts in what Run bills: once the Prompt and Submit become a
    subgraph, the sidebar's 'This graph, if run' line drops it while the subgraph node is
    bypassed, and follows its variations once they are promoted to the subgraph node and set there;
    what Run would queue agrees each time."""
    await close_dialogs(page)
    if not await page.js(f"__check.shown({TASKS_LIST})"):
        await page.click_until(TASKS_TAB, f"__check.shown({TASKS_LIST})", 20, "the Kling Omni tasks sidebar button")
    line = (f"([...{TASKS_PANEL}.querySelectorAll('*')].find(e => !e.children.length "
            f"&& e.textContent.startsWith('This graph, if run')) || {{}}).textContent")
    made = await page.js(f"""(() => {{
        const graph = {APP}.graph;
        if (typeof graph.convertToSubgraph !== 'function') return 'no convertToSubgraph in this frontend';
        graph.convertToSubgraph(new Set([{PROMPT}, {SUBMIT}]));
        {APP}.canvas.setDirty(true, true);
        const inner = graph.nodes.filter(n => n.isSubgraphNode?.());
        return !graph.nodes.some(n => n.type === 'CometOmniSubmit') && inner.length === 1
          && inner[0].subgraph.nodes.some(n => n.type === 'CometOmniSubmit') ? 'ok' : 'not converted';
    }})()""")
    subgraph_node = f"{APP}.graph.nodes.find(n => n.isSubgraphNode?.())"
    inner_submit = f"{subgraph_node}.subgraph.nodes.find(n => n.type === 'CometOmniSubmit')"
    # The Submits Run would queue, as the frontend builds the prompt: their variations.
    queued_variations = (f"(async () => Object.values((await {APP}.graphToPrompt()).output)"
                         f".filter(n => n.class_type === 'CometOmniSubmit').map(n => n.inputs.variations))()")
    # Bypassed as a user does it (select, Ctrl+B's command): older frontends bypass the nodes
    # inside along with it, newer ones leave them out of the run (ComfyUI_frontend#8494).
    toggle_bypass = (f"(() => {{ {APP}.canvas.deselectAll?.(); {APP}.canvas.selectNode({subgraph_node}); "
                     f"{command('Comfy.Canvas.ToggleSelectedNodes.Bypass')}; }})()")
    await page.js(toggle_bypass)
    bypassed = await settled_text_of(page, line, "This graph, if run: no Submit will run.", 10)
    queued = await page.js(queued_variations)
    report.check(made == "ok" and bypassed == "This graph, if run: no Submit will run." and not queued,
                 "browser: a bypassed subgraph node bills none of the Submits inside it (Run would queue none)",
                 f"{made}; {bypassed!r}; Run would queue the Submit: {queued}")
    await page.js(toggle_bypass)
    if made == "ok":  # the Submit's variations promoted to the subgraph node, set there to 3
        made = await page.js(f"""(() => {{
            const node = {subgraph_node}, subgraph = node.subgraph, submit = {inner_submit};
            subgraph.addInput('variations', 'INT');
            const slots = subgraph.inputNode.slots;
            slots[slots.length - 1].connect(submit.inputs.find(i => i.name === 'variations'), submit);
            const w = (node.widgets || []).find(w => w.name === 'variations');
            if (!w) return 'no promoted variations widget';
            w.value = 3;
            w.callback?.(3);
            return 'ok';
        }})()""")
    expected = "This graph, if run ≈ $1.26: 1 Submit, 3 tasks"  # the template's 5 s · std, 3 times
    after = await settled_text_of(page, line, expected, 10)
    queued = await page.js(queued_variations)
    await page.shot(shots / "17_subgraph_price.png")
    report.check(made == "ok" and after == expected and queued == [3],
                 "browser: a Submit inside a subgraph counts in what Run bills (variations promoted to the "
                 "subgraph node and set there, live)", f"{made}; the sidebar: {after!r}; Run would queue variations {queued}")


# --- Kling 3.0 Omni in the browser: prices per model, the storyboard line, old workflows ----------

V3_SOUND_TEMPLATE = "kling_omni_v3_text_to_video_sound"
V3_STORYBOARD_TEMPLATE = "kling_omni_v3_storyboard"
OLD_WORKFLOW = REPO / "tests" / "workflows" / "saved_before_models_text_to_video.json"
V3_RATE_INPUT = 'document.querySelector(\'input[aria-label^="Rate for v3 pro, with sound,"]\')'
KEPT_ON_O1 = "Saved before the model choice: kept on kling-video-o1"


def widget_value(node: str, name: str) -> str:
    return f"(({node}.widgets || []).find(w => w.name === '{name}') || {{}}).value"


def template_nodes(name: str) -> tuple[dict, list[dict]]:
    """A template's Prompt node, and its shots in order (shot 1, the furthest upstream, first)."""
    workflow = json.loads((REPO / "example_workflows" / f"{name}.json").read_text(encoding="utf-8"))
    nodes = {n["id"]: n for n in workflow["nodes"]}
    origin = {link[0]: link[1] for link in workflow["links"]}  # link id -> the node it comes from
    prompt = next(n for n in workflow["nodes"] if n["type"] == "CometOmniPrompt")
    shots, node = [], prompt
    while True:
        link = next((i.get("link") for i in node.get("inputs", []) if i["name"] == "shots"), None)
        if link is None:
            break
        node = nodes[origin[link]]
        shots.insert(0, node)
    return prompt, shots


async def shown_rates(comfy: Comfy):
    """The rates the server prices with now (the user's, else the shipped table)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from kling_omni.pricing import Rates
    return Rates(**(await settings_json(comfy))["settings"]["rates"])


def priced(rates, mode: str, seconds: int, model: str, sound: bool = False, shots: int = 0) -> str:
    """What a Submit of one variation shows, and the whole graph with it alone, at `rates`
    (kling_omni.pricing: the table the frontend must agree with)."""
    from kling_omni.pricing import cost
    one = cost(mode, seconds, False, rates, model=model, sound=sound, shots=shots)
    return f"{one.text}\nWhole graph {one.usd}: 1 Submit, 1 task"


async def open_template(page: Page, name: str) -> None:
    """Browse Templates › cometapi-kling-omni › `name`, as a person opens it."""
    await close_dialogs(page)
    await page.js(command("Comfy.BrowseTemplates"))
    card = f"__check.dialog()?.querySelector('[data-testid=\"template-workflow-{name}\"]')"
    await page.click_until(f"__check.named(__check.dialog(), '{PACK_DIR_NAME}')", f"!!{card}", 20,
                           "the pack in Browse Templates")
    await page.click_until(card, f"!__check.dialog() && {APP}.graph.nodes.some(n => n.type === 'CometOmniSubmit') "
                           f"&& {APP}.graph.nodes.length === {len(json.loads((REPO / 'example_workflows' / f'{name}.json').read_text())['nodes'])}",
                           20, f"the template card {name}")
    await asyncio.sleep(1)


async def browser_v3_prices(page: Page, report: Report, comfy: Comfy, nodes2: bool, shots: Path) -> None:
    """The v3 sound template's price before Run, at the v3 rates with and without sound; the v3 rates
    in Settings (a group per model) reprice it; O1 with sound says what to fix instead of a price."""
    prompt, _ = template_nodes(V3_SOUND_TEMPLATE)
    text, mode, _, seconds, model, sound, _ = prompt["widgets_values"]
    await open_template(page, V3_SOUND_TEMPLATE)
    await show_node(page, SUBMIT)
    rates = await shown_rates(comfy)
    with_sound = priced(rates, mode, seconds, model, sound=True)
    shown = await settled_text(page, SUBMIT_PRICE, with_sound, 10)
    values = await page.js(f"[{widget_value(PROMPT, 'model')}, {widget_value(PROMPT, 'sound')}]")
    await page.shot(shots / "20_v3_sound_price.png")
    report.check(values == [model, True] and sound and shown == with_sound,
                 f"browser: {V3_SOUND_TEMPLATE}: the price before Run is the v3 rate with sound (Submit and whole graph)",
                 f"model {values[0]}, sound {values[1]}; shown {str(shown).replace(chr(10), ' | ')!r}")
    await page.js(set_widget(PROMPT, "sound", False))
    without = priced(rates, mode, seconds, model)
    shown = await settled_text(page, SUBMIT_PRICE, without, 10)
    report.check(shown == without, "browser: sound turned off, the price follows: the v3 rate without sound",
                 str(shown).replace("\n", " | "))
    await page.js(set_widget(PROMPT, "sound", True))
    await settled_text(page, SUBMIT_PRICE, with_sound, 10)

    # Settings › CometAPI › Spending › Rates: a group per model; a v3 rate reprices the v3 Submit.
    await page.js(command("Comfy.ShowSettingsDialog"))
    await page.click_until("__check.named(__check.dialog(), 'CometAPI')", f"__check.shown({V3_RATE_INPUT})", 20,
                           "Settings › CometAPI › Spending › Rates")
    headings = await page.js(f"[...{RATES_PANEL}.querySelectorAll('[role=heading]')].filter(__check.shown)"
                             ".map(h => h.textContent)")
    await type_into(page, V3_RATE_INPUT, "0.2")
    deadline = time.monotonic() + 10
    while (changed := await shown_rates(comfy)).v3_pro_with_sound != 0.2 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # saved when the server answers
    repriced = await settled_text(page, SUBMIT_PRICE, priced(changed, mode, seconds, model, sound=True), 10)
    await page.shot(shots / "21_v3_rates.png")
    report.check(headings[:2] == ["Kling O1 (kling-video-o1)", "Kling 3.0 Omni (kling-v3-omni)"]
                 and changed.v3_pro_with_sound == 0.2 and changed.pro == rates.pro
                 and repriced == priced(changed, mode, seconds, model, sound=True),
                 "browser: Settings › Spending › Rates shows a group per model; the v3 pro-with-sound rate reprices "
                 "the v3 Submit, and only it", f"groups {headings}; Submit: {str(repriced).splitlines()[0]}")
    await page.click(f"__check.named({RATES_PANEL}, 'Reset to the shipped rates')")
    back = await settled_text(page, SUBMIT_PRICE, with_sound, 10)
    answer = await settings_json(comfy)
    report.check(answer["settings"]["rates"] == answer["defaults"]["rates"] and back == with_sound,
                 "browser: Reset to the shipped rates resets the rates of every model",
                 f"{len(answer['settings']['rates'])} rates; Submit: {str(back).splitlines()[0]}")
    await close_dialogs(page)

    # O1 takes no sound: the Submit says what to fix instead of a price, the whole graph bills nothing.
    await page.js(set_widget(PROMPT, "duration", 10))  # a length O1 takes: sound is the one thing it refuses
    await page.js(set_widget(PROMPT, "model", "kling-video-o1"))
    refused = await page.wait_for(f"{SUBMIT_PRICE}.innerText.startsWith('Refused before sending') && "
                                  f"{SUBMIT_PRICE}.innerText", 10, "the refusal on the Submit")
    help_text = await page.js(f"{PROMPT_HELP}.innerText")
    report.check("kling-video-o1 makes no sound of its own: pick kling-v3-omni in model, or turn sound off" in refused
                 and "Whole graph: nothing will be sent" in refused and "makes no sound of its own" in help_text,
                 "browser: O1 with sound: the Submit and the Prompt say what to fix instead of a price",
                 refused.replace("\n", " | ")[:300])
    await page.js(set_widget(PROMPT, "model", model))
    await page.js(set_widget(PROMPT, "duration", seconds))
    await settled_text(page, SUBMIT_PRICE, with_sound, 10)


async def browser_v3_storyboard(page: Page, report: Report, comfy: Comfy, nodes2: bool, shots: Path) -> None:
    """The storyboard template: its price (its duration, in N shots), the Prompt's shots line, and a
    problem on both when a shot's duration is changed so the sum is off."""
    prompt, shot_nodes = template_nodes(V3_STORYBOARD_TEMPLATE)
    _, mode, _, seconds, model, sound, _ = prompt["widgets_values"]
    lengths = [n["widgets_values"][1] for n in shot_nodes]
    await open_template(page, V3_STORYBOARD_TEMPLATE)
    rates = await shown_rates(comfy)
    expected = priced(rates, mode, seconds, model, sound=sound, shots=len(shot_nodes))
    await show_node(page, SUBMIT)
    price = await settled_text(page, SUBMIT_PRICE, expected, 10)
    await show_node(page, PROMPT)
    line = f"{len(lengths)} shots: {' + '.join(map(str, lengths))} = {sum(lengths)} s of {seconds} s"
    helped = await settled_text_of(page, f"{PROMPT_HELP}?.innerText.split('\\n')[0]", line, 10)
    await page.shot(shots / "22_storyboard.png")
    report.check(price == expected and sum(lengths) == seconds,
                 f"browser: {V3_STORYBOARD_TEMPLATE}: the price before Run is its duration in {len(lengths)} shots at the "
                 "v3 rate (Submit and whole graph)", str(price).replace("\n", " | "))
    report.check(helped == line, "browser: the Prompt node shows its shots, their total against duration", repr(helped))

    second = shot_nodes[1]
    node = f"{APP}.graph.getNodeById({second['id']})"
    await page.js(set_widget(node, "duration", lengths[1] + 1))
    off = [*lengths[:1], lengths[1] + 1, *lengths[2:]]
    wrong = f"{len(off)} shots: {' + '.join(map(str, off))} = {sum(off)} s of {seconds} s"
    problem = f"The shots add up to {' + '.join(map(str, off))} = {sum(off)} s, but duration is {seconds} s"
    helped = await page.wait_for(f"(() => {{ const t = {PROMPT_HELP}?.innerText || ''; return t.startsWith({json.dumps(wrong)})"
                                 f" && t.includes({json.dumps(problem)}) && t; }})()", 10, "the shots' sum flagged")
    color = await page.js(f"getComputedStyle({PROMPT_HELP}.firstElementChild).color")
    refused = await settled_text_of(page, f"{SUBMIT_PRICE}?.innerText.startsWith('Refused before sending, bills nothing.')",
                                    True, 10)
    await page.shot(shots / "23_storyboard_sum_off.png")
    report.check(helped and refused is True and color != await page.js(f"getComputedStyle({PROMPT_HELP}).color"),
                 "browser: a shot's duration changed so the sum is off: the shots line turns red, says what to fix, "
                 "and the Submit bills nothing",
                 (" | ".join(l for l in helped.splitlines() if "shots" in l)[:300] if helped else "")
                 + f"; line colour {color}; Submit refused: {refused}")
    await page.js(set_widget(node, "duration", lengths[1]))
    back = await settled_text(page, SUBMIT_PRICE, expected, 10)
    report.check(back == expected, "browser: the shot's duration put back, the price is back",
                 str(back).replace("\n", " | "))


async def browser_old_workflow(page: Page, report: Report, comfy: Comfy, nodes2: bool, shots: Path) -> None:
    """A workflow saved by the version before Kling 3.0 (4 Prompt values) stays on kling-video-o1 at the O1
    price, in the root graph and inside a subgraph; a Prompt added fresh starts on kling-v3-omni."""
    old = OLD_WORKFLOW.read_text(encoding="utf-8")
    values = next(n for n in json.loads(old)["nodes"] if n["type"] == "CometOmniPrompt")["widgets_values"]
    open_file = ("(async (text, name) => {{ await {app}.handleFile(new File([text], name, {{type: 'application/json'}}));"
                 " return 1; }})").format(app=APP)
    await close_dialogs(page)
    await page.js(f"{open_file}({json.dumps(old)}, '{OLD_WORKFLOW.name}')")
    await page.wait_for(f"{APP}.graph.nodes.length === {len(json.loads(old)['nodes'])} && !!{PROMPT}", 15,
                        "the old workflow loaded")
    await show_node(page, SUBMIT)
    rates = await shown_rates(comfy)
    expected = priced(rates, values[1], values[3], "kling-video-o1")
    price = await settled_text(page, SUBMIT_PRICE, expected, 10)
    state = await page.js(f"""(async () => {{ const p = {PROMPT}, el = __check.nodeElement(p);
        const queued = Object.values((await {APP}.graphToPrompt()).output).find(n => n.class_type === 'CometOmniPrompt');
        const saved = {APP}.graph.serialize().nodes.find(n => n.type === 'CometOmniPrompt');
        return {{model: {widget_value('p', 'model')}, sound: {widget_value('p', 'sound')},
                 auto_shots: {widget_value('p', 'auto_shots')}, queued: [queued.inputs.model, queued.inputs.sound],
                 saved: saved.widgets_values, drawn: el ? el.innerText.includes('kling-video-o1') : null,
                 help: {PROMPT_HELP}?.innerText.split('\\n')[0],
                 modified: {APP}.extensionManager?.workflow?.activeWorkflow?.isModified ?? null}}; }})()""")
    await show_node(page, PROMPT)
    await page.shot(shots / "24_old_workflow.png")
    report.note(f"(the old workflow's tab counts as modified after loading: {state['modified']})")
    report.check(len(values) == 4 and state["model"] == "kling-video-o1" and state["sound"] is False
                 and state["auto_shots"] is False and state["queued"] == ["kling-video-o1", False]
                 and (state["drawn"] if nodes2 else True),
                 "browser: an old workflow (4 Prompt values) loads on kling-video-o1, no sound, no auto shots, and Run "
                 "would send that", json.dumps({k: state[k] for k in ("model", "sound", "auto_shots", "queued", "drawn")}))
    report.check(price == expected == "5 s · pro ≈ $0.56\nWhole graph ≈ $0.56: 1 Submit, 1 task"
                 and str(state["help"]).startswith(KEPT_ON_O1),
                 "browser: the old workflow shows the O1 price \"5 s · pro ≈ $0.56\", and its Prompt says why it is on O1",
                 f"{str(price).replace(chr(10), ' | ')!r}; {state['help']!r}")
    report.check(state["saved"][4:] == ["kling-video-o1", False, False],
                 "browser: saved again, the old workflow names kling-video-o1 (it stays O1 on any later load)",
                 json.dumps(state["saved"]))

    fresh = await page.js(f"""(() => {{ const n = LiteGraph.createNode('CometOmniPrompt'); {APP}.graph.add(n);
        const seen = [{widget_value('n', 'model')}, {widget_value('n', 'sound')}, {widget_value('n', 'auto_shots')}];
        {APP}.graph.remove(n); return seen; }})()""")
    report.check(fresh == ["kling-v3-omni", False, False], "browser: a Prompt node added fresh starts on kling-v3-omni",
                 json.dumps(fresh))
    # A node made from an old node's saved form as pasting and cloning make it (created, then configured).
    old_node = next(n for n in json.loads(old)["nodes"] if n["type"] == "CometOmniPrompt")
    pasted = await page.js(f"""(() => {{ const n = LiteGraph.createNode('CometOmniPrompt');
        n.configure({json.dumps({**old_node, "inputs": [], "outputs": []})}); {APP}.graph.add(n);
        const seen = [{widget_value('n', 'model')}, {widget_value('n', 'sound')}, {widget_value('n', 'auto_shots')}];
        {APP}.graph.remove(n); return seen; }})()""")
    report.check(pasted == ["kling-video-o1", False, False],
                 "browser: an old Prompt node pasted in (made from its saved form) stays on kling-video-o1",
                 json.dumps(pasted))

    # The same Prompt inside a subgraph, saved before models (as the previous version would have saved it).
    inner = await page.js(f"""(() => {{ const graph = {APP}.graph;
        if (typeof graph.convertToSubgraph !== 'function') return null;
        graph.convertToSubgraph(new Set([{PROMPT}, {SUBMIT}]));
        const data = graph.serialize();
        for (const sub of data.definitions?.subgraphs ?? []) for (const n of sub.nodes ?? []) {{
          if (n.type !== 'CometOmniPrompt') continue;
          n.widgets_values = n.widgets_values.slice(0, 4); delete n.widgets_values_named; }}
        return JSON.stringify(data); }})()""")
    if inner is None:
        report.check(False, "browser: an old Prompt inside a subgraph loads on kling-video-o1",
                     "this frontend has no convertToSubgraph")
        return
    await page.js(f"{open_file}({json.dumps(inner)}, 'saved_before_models_in_subgraph.json')")
    sub_prompt = (f"({APP}.graph.nodes.find(n => n.isSubgraphNode?.())?.subgraph.nodes"
                  ".find(n => n.type === 'CometOmniPrompt'))")
    state = await page.wait_for(f"""(async () => {{ const p = {sub_prompt}; if (!p) return null;
        const queued = Object.values((await {APP}.graphToPrompt()).output).find(n => n.class_type === 'CometOmniPrompt');
        return {{values: JSON.parse({json.dumps(inner)}).definitions.subgraphs[0].nodes
                   .find(n => n.type === 'CometOmniPrompt').widgets_values.length,
                 model: {widget_value('p', 'model')}, sound: {widget_value('p', 'sound')},
                 queued: queued && [queued.inputs.model, queued.inputs.sound]}}; }})()""", 15,
                                "the old subgraph workflow loaded")
    report.check(state["values"] == 4 and state["model"] == "kling-video-o1" and state["sound"] is False
                 and state["queued"] == ["kling-video-o1", False],
                 "browser: an old Prompt inside a subgraph loads on kling-video-o1 too (Run would send that)",
                 json.dumps(state))


def in_process_fake_server(key: str, processing_seconds: float):
    """The fake CometAPI on a thread of this process: the browser steps count what it was sent and
    end tasks when they want (FakeCometAPI.created_count, .requests, .finish)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from fake_cometapi.server import FakeCometAPI
    return FakeCometAPI(key, submitted_seconds=1, processing_seconds=processing_seconds, video_seconds=3,
                        video_fps=24, video_size=(640, 360)).start()


@contextlib.asynccontextmanager
async def comfyui_collecting_often(args, work: Path, name: str, fake_url: str):
    """`comfyui(...)` without a key, whose background collector looks every second (a cancelled
    Poll's task is collected while the browser watches)."""
    old = os.environ.get(COLLECT_ENV)
    os.environ[COLLECT_ENV] = "1"
    try:
        async with comfyui(args, work, name, fake_url, None) as c:
            yield c
    finally:
        if old is None:
            os.environ.pop(COLLECT_ENV, None)
        else:
            os.environ[COLLECT_ENV] = old


async def browser_run(args, report: Report, work: Path, key: str) -> None:
    """A new user in the real frontend: key from Settings, a template from Browse Templates,
    the Submit's price, the prompt's token help, Run, the Poll node's status, preview and task id;
    Settings › CometAPI › Spending, the spend guard, a cancelled Poll collected in the background,
    the Tasks sidebar; Save."""
    shots = work / "screenshots"
    shots.mkdir(exist_ok=True)
    # Its own fake server, in this process so the steps can see what it was sent and end tasks;
    # time to watch the status change; a fresh account, so a new task.
    fake = in_process_fake_server(key, processing_seconds=6)
    storage, history, page = "", "", None
    async with comfyui_collecting_often(args, work, "browser", fake.base_url) as c:
        comfy = Comfy(c.http, c.url)
        try:
            devtools = await start_chromium(args, c.http, work)
            page = await open_page(c.http, devtools, c.url + "/")
            await page.wait_for(f"!!({APP}?.graph && {APP}.extensionManager)", 90, "the ComfyUI app")
            names = await page.wait_for(f"""(() => {{ const n = {APP}.extensions.map(e => e.name)
                .filter(n => n.startsWith('CometAPI')); return n.length === 4 && n; }})()""", 30, "the pack's extensions")
            version = await page.js("window.__COMFYUI_FRONTEND_VERSION__ || '?'")
            nodes2 = await set_nodes2(page, args.nodes2)
            report.note(f"browser run: ComfyUI at {c.url}, no COMETAPI_KEY, Chromium {devtools}, "
                        f"frontend {version}, Nodes 2.0 {'on' if nodes2 else 'off'}")
            report.check(names, "browser: the frontend loaded the pack's extensions", ", ".join(names))
            await asyncio.sleep(2)  # first-run dialogs settle
            await page.shot(shots / "01_first_start.png")

            await browser_settings_key(page, report, comfy, key, shots)
            await browser_open_template(page, report, nodes2, shots)
            await browser_submit_price(page, report, shots)
            await browser_prompt_help(page, report, shots)
            await browser_run_poll(page, report, nodes2, shots)
            await browser_spending_settings(page, report, comfy, shots)
            await browser_spend_guard(page, report, comfy, fake, shots)
            task_id = await browser_cancel_poll(page, report, comfy, fake, shots)
            await browser_tasks_sidebar(page, report, comfy, fake, c.base, key, task_id, nodes2, shots)
            await browser_save(page, report, c.base, key, "my_kling_video")
            await browser_subgraph_price(page, report, shots)
            await browser_v3_prices(page, report, comfy, nodes2, shots)
            await browser_v3_storyboard(page, report, comfy, nodes2, shots)
            await browser_old_workflow(page, report, comfy, nodes2, shots)
            await browser_remove_key(page, report, comfy)

            storage = await page.js("JSON.stringify({local: {...localStorage}, session: {...sessionStorage}})")
            history = (await comfy.text("GET", "/history?max_items=100"))[1]
            ours = [e for e in page.errors if f"/extensions/{PACK_DIR_NAME}/" in e]
            report.check(not ours, "browser: no uncaught error from the pack's scripts", "; ".join(ours)[:800])
            if page.errors and not ours:
                report.note(f"(uncaught errors from the frontend itself: {'; '.join(page.errors)[:400]})")
            await page.close()
        except CheckFailed:
            if page is not None:
                await page.shot(shots / "99_failure.png")
            raise
        finally:
            for service in list(Service.running):
                if service.name == "Chromium":
                    service.stop()
            fake.stop()
    log = c.proc.log()
    check_log(report, log, "browser run", expected=("SpendLimitReached",))
    check_no_key(report, "browser run", key, c.base,
                 {"history": history, "ComfyUI log": log, "browser localStorage/sessionStorage": storage},
                 allowed={pack_key_file(c.base)})
    check_no_key(report, "browser run: Chromium profile", key, work / "chromium-profile", {}, allowed=set())


# --- faults (--faults): the promises against the web as it is -----------------------------
# One ComfyUI with a stored key, against a fake of its own that the check drives through the
# fake's remote control: file hosts that stream, break or cut; 201 creations; 429 code 1303;
# a journal deleted under ComfyUI; cross-site writes to the key. Each case is a new intent
# (its own prompt words), so "one task per intent" is counted on the fake.

FAKE_CLIP_FRAMES = 3 * 24  # start_fake_server's clip: --video-seconds 3 --fps 24
LAN_HOST = "192.168.1.20:8188"  # ComfyUI started with --listen on a LAN address, as a browser names it


class FakeControl:
    """The fake server's remote control (POST /_fake/control, GET /_fake/state)."""

    def __init__(self, http: aiohttp.ClientSession, url: str):
        self.http, self.url = http, url

    async def _post(self, body: dict) -> None:
        async with self.http.post(self.url + "/_fake/control", json=body) as r:
            if r.status != 200:
                raise CheckFailed(f"the fake server refused {body}: {await r.text()}")

    async def call(self, name: str, *args, **kwargs) -> None:
        await self._post({"call": name, "args": list(args), "kwargs": kwargs})

    async def set(self, **options) -> None:
        await self._post({"set": options})

    async def state(self) -> dict:
        async with self.http.get(self.url + "/_fake/state") as r:
            return await r.json()


def node_of(prompt: dict, class_type: str) -> str:
    return next(nid for nid, node in prompt.items() if node["class_type"] == class_type)


def intent_prompt(info: dict, words: str, submit_id: str | None = None) -> dict:
    """Text to video with these prompt words: one intent. `submit_id` renumbers Submit, which ComfyUI
    then has not cached (its cache key holds the node id): the same intent reaches the pack again."""
    workflow = json.loads((REPO / "example_workflows" / "kling_omni_text_to_video.json").read_text())
    prompt = to_api_prompt(workflow, info)
    prompt[node_of(prompt, "CometOmniPrompt")]["inputs"]["prompt"] = words
    if submit_id is not None:
        old = node_of(prompt, "CometOmniSubmit")
        prompt[submit_id] = prompt.pop(old)
        prompt[node_of(prompt, "CometOmniPoll")]["inputs"]["task"] = [submit_id, 0]
    return prompt


async def run_intent(comfy: Comfy, fake: FakeControl, base: Path, prompt: dict) -> types.SimpleNamespace:
    """Queue it; what the fake saw meanwhile, what the nodes said, and the MP4 Poll recorded."""
    before = await fake.state()
    run = await comfy.run(prompt)
    after = await fake.state()
    poll, submit = node_of(prompt, "CometOmniPoll"), node_of(prompt, "CometOmniSubmit")
    out = run["history"].get("outputs", {}).get(poll, {})
    entry = (out.get("images") or [{}])[0]
    path = base / "output" / entry["subfolder"] / entry["filename"] if entry else None
    return types.SimpleNamespace(
        run=run, task_id=(out.get("task_id") or [None])[0], path=path,
        frames=video_info(path)["frames"] if path and path.is_file() else 0,
        new_tasks=after["created"] - before["created"], made=[t["task_id"] for t in after["tasks"][before["created"]:]],
        creations=after["creation_requests"] - before["creation_requests"],
        refused=after["refused_creates"] - before["refused_creates"],
        files=after["file_requests"][len(before["file_requests"]):],
        poll_texts=[t.split("\ntask ")[0] for _, t in comfy.texts(poll, run["start"])],
        submit_texts=[t for _, t in comfy.texts(submit, run["start"])],
        error=(run["error"] or {}).get("exception_message", ""))


def check_whole(report: Report, label: str, r: types.SimpleNamespace, new_tasks: int = 1) -> bool:
    """It ran to success, the fake made `new_tasks` tasks, and every frame of the MP4 decodes."""
    return report.check(r.run["outcome"] == "success" and r.new_tasks == new_tasks and r.frames == FAKE_CLIP_FRAMES,
                        f"{label}: {new_tasks} task{'s' * (new_tasks != 1)} made, the whole video on disk",
                        f"{outcome_text(r.run)}; {r.new_tasks} new task(s), {r.creations} creation request(s); "
                        f"task {r.task_id}: {r.path.name if r.path else 'no file'} has {r.frames} of "
                        f"{FAKE_CLIP_FRAMES} frames; {len(r.files)} file request(s)")


async def raw_http(url: str, method: str, path: str, headers: dict, body: bytes = b"") -> tuple[int, str]:
    """One request exactly as written (aiohttp would set Host itself): what a page's fetch sends."""
    match = re.match(r"http://([^:/]+):(\d+)", url)
    reader, writer = await asyncio.open_connection(match.group(1), int(match.group(2)))
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"{method} {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                     .encode() + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


async def fault_cross_site(report: Report, comfy: Comfy, key_file: Path, attacker_key: str) -> None:
    """A page of another site writes to the pack's routes on a ComfyUI reached by a LAN address (or
    a rebound DNS name): refused, saying why, and the key file stays as it was. ComfyUI's own page
    on that LAN address still gets through."""
    before = key_file.read_bytes(), key_file.stat().st_mtime_ns
    settings = (await comfy.text("GET", "/cometapi_omni/settings"))[1]
    attack = {"Host": LAN_HOST, "Origin": "http://evil.example", "Content-Type": "text/plain"}
    body = json.dumps({"key": attacker_key}).encode()
    attempts = [("POST", "/cometapi_omni/key", attack, body, "http://evil.example"),
                ("POST", "/api/cometapi_omni/key", attack, body, "http://evil.example"),
                ("DELETE", "/cometapi_omni/key", attack, b"", "http://evil.example"),
                ("POST", "/cometapi_omni/settings", attack, b'{"background_collect": false}', "http://evil.example"),
                # DNS rebinding: the page's own name now points at ComfyUI, so Origin matches Host.
                ("POST", "/cometapi_omni/key", {**attack, "Host": "evil.example:8188",
                                                "Origin": "http://evil.example:8188"}, body, "DNS rebinding")]
    for method, path, headers, data, said in attempts:
        status, text = await raw_http(comfy.url, method, path, headers, data)
        try:
            message = json.loads(text).get("error", "")
        except ValueError:
            message = text
        report.check(status == 403 and said in message,
                     f"faults: a cross-site {method} {path} (Host {headers['Host']}, Origin {headers['Origin']}, "
                     f"text/plain) is refused, saying why", f"HTTP {status}: {message[:220]}")
    status = json.loads((await comfy.text("GET", "/cometapi_omni/key"))[1])
    report.check((key_file.read_bytes(), key_file.stat().st_mtime_ns) == before and status.get("source") == "store"
                 and (await comfy.text("GET", "/cometapi_omni/settings"))[1] == settings,
                 "faults: after the cross-site writes the key file and the settings are unchanged",
                 json.dumps(status))
    own = {"Host": LAN_HOST, "Origin": f"http://{LAN_HOST}", "Sec-Fetch-Site": "same-origin"}
    read = await raw_http(comfy.url, "GET", "/cometapi_omni/key", own)
    tested = await raw_http(comfy.url, "POST", "/cometapi_omni/key/test", {**own, "Content-Type": "application/json"},
                            b"{}")
    report.check(read[0] == 200 and tested[0] == 200 and json.loads(tested[1]).get("ok") is True,
                 f"faults: ComfyUI's own page on {LAN_HOST} still reads the key status and tests the key",
                 f"GET {read[0]}, POST key/test {tested[0]}: {tested[1][:200]}")


def lan_address() -> str | None:
    """One of this machine's non-loopback IPv4 addresses, as another machine on the LAN reaches it."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    addresses = [info[4][0] for info in infos if not info[4][0].startswith("127.")]
    if not addresses:
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet leaves: this only picks the outgoing interface
            addresses = [a for a in [probe.getsockname()[0]] if not a.startswith("127.")]
    return addresses[0] if addresses else None


async def ws_messages(ws, seconds: float) -> list:
    """Everything a socket receives for `seconds`: text as str, binary frames as bytes."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            break
        if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            got.append(msg.data)
        else:
            break
    return got


async def fault_foreign_pages(report: Report, c, fake: FakeControl, info: dict) -> None:
    """ComfyUI started with --listen 0.0.0.0 and reached at this machine's LAN address: a page of
    another site POSTs a paid workflow (16 variations) to /prompt as a simple cross-site request
    (text/plain, no preflight), and listens on /ws. The daily limit is off, so only the /prompt
    guard stands between that page and the money. ComfyUI's own page on the LAN address still runs
    a paid prompt."""
    lan = lan_address()
    if not report.check(lan is not None, "faults: this machine has a non-loopback address to reach ComfyUI by"):
        return
    host = f"{lan}:{c.port}"
    lan_url = f"http://{host}"
    log = c.proc.log()
    warned = re.search(r"CometAPI Omni: ComfyUI listens on (\S+) port \d+ \(--listen\), beyond this machine[^\n]*", log)
    report.check(warned and "0.0.0.0" in warned.group(1), "faults: --listen 0.0.0.0: the pack says at start-up what it "
                 "exposes", warned.group(0)[:400] if warned else "no such line in the ComfyUI log")
    status, text = await raw_http(c.url, "POST", "/cometapi_omni/settings",
                                  {"Host": f"127.0.0.1:{c.port}", "Content-Type": "application/json"},
                                  b'{"daily_limit_usd": 0}')
    report.note(f"daily limit turned off for this step (from this machine): HTTP {status}")
    evil = "http://evil.example"
    spy = await c.http.ws_connect(f"{lan_url}/ws", headers={"Origin": evil}, max_msg_size=0)
    words = "faults: a page of another site queues 16 paid variations"
    prompt = intent_prompt(info, words)
    submit = node_of(prompt, "CometOmniSubmit")
    prompt[submit]["inputs"]["variations"] = 16
    prompt[node_of(prompt, "CometOmniPrompt")]["inputs"]["duration"] = 10
    body = json.dumps({"prompt": prompt, "client_id": "evil"}).encode()
    before = await fake.state()
    attack = {"Host": host, "Origin": evil, "Content-Type": "text/plain;charset=UTF-8"}
    for path, headers, what in (("/prompt", {**attack, "Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
                                ("/prompt", attack, "Origin only (an older browser)"),
                                ("/api/prompt", {**attack, "Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site")):
        status, text = await raw_http(lan_url, "POST", path, headers, body)
        try:
            error = json.loads(text).get("error") or {}
        except ValueError:
            error = {"message": text}
        # Newer ComfyUI (0.33) refuses Sec-Fetch-Site: cross-site itself, with a bare 403, before the pack sees it.
        by = ("the pack" if error.get("type") == "cometapi_omni_cross_site"
              else "ComfyUI itself (a bare 403)" if status == 403 and not text.strip() else None)
        report.check(status == 403 and by is not None,
                     f"faults: a cross-site text/plain POST {path} of a paid workflow ({what}) is refused",
                     f"HTTP {status}, by {by}: {error.get('message', '')[:200]} {error.get('details', '')[:200]}")
    await asyncio.sleep(3)
    after = await fake.state()
    queue = await c.http.get(c.url + "/queue")
    pending = await queue.json()
    report.check(after["created"] == before["created"] and after["creation_requests"] == before["creation_requests"]
                 and not pending["queue_running"] and not pending["queue_pending"],
                 "faults: the refused cross-site prompts created no task and queued nothing",
                 f"{after['created'] - before['created']} new task(s), {after['creation_requests'] - before['creation_requests']} "
                 f"creation request(s); queue {len(pending['queue_running'])} running, {len(pending['queue_pending'])} pending")
    # ComfyUI's own page on the LAN address: same origin, JSON, its own websocket.
    page = Comfy(c.http, lan_url)
    await page.connect(headers={"Origin": lan_url})
    own_words = "faults: ComfyUI's own page on the LAN address queues a paid prompt"
    before = await fake.state()
    run = await page.run(intent_prompt(info, own_words),
                         headers={"Origin": lan_url, "Sec-Fetch-Site": "same-origin"})
    after = await fake.state()
    await page.close()
    report.check(run["outcome"] == "success" and after["created"] - before["created"] == 1,
                 "faults: a same-origin POST /prompt from ComfyUI's page on the LAN address still runs (1 task)",
                 f"{outcome_text(run)}; {after['created'] - before['created']} new task(s)")
    seen = await ws_messages(spy, 2.0)
    await spy.close()
    texts = [m for m in seen if isinstance(m, str)]
    events = [json.loads(t)["data"] for t in texts if json.loads(t).get("type") == "cometapi_omni.task"]
    leaked = [w for w in (words, own_words, "kling_", ".mp4", "succeeded", "processing") if any(w in t for t in texts)]
    binary = [m for m in seen if isinstance(m, bytes)]
    report.check(events and all(set(e) == {"task_id", "as_of"} for e in events) and not leaked and not binary,
                 "faults: a WebSocket from another site's page receives no prompt text, state or file name",
                 f"{len(texts)} text messages ({len(events)} task events, e.g. {events[-1:] or 'none'}), "
                 f"{len(binary)} binary frames; found: {leaked or 'nothing'}")


async def fault_chunked(report: Report, comfy: Comfy, fake: FakeControl, base: Path, info: dict) -> None:
    """A CDN that streams without a length (chunked, in pieces over a second or two), then one that
    also gzips it uninvited."""
    await fake.set(file_framing="chunked", file_trickle=[32 * 1024, 0.2])
    r = await run_intent(comfy, fake, base, intent_prompt(info, "faults: a chunked CDN, no Content-Length"))
    await fake.set(file_trickle=None)
    check_whole(report, "faults: chunked CDN", r)
    downloading = [t for t in r.poll_texts if t.startswith("downloading")]
    report.check(any(re.fullmatch(r"downloading \d+\.\d MB", t) for t in downloading)
                 and not any("%" in t for t in downloading),
                 "faults: chunked CDN: Poll shows the bytes received (no total to make a percentage of)",
                 " | ".join(dict.fromkeys(downloading)) or "no download text")
    await fake.set(file_encoding="gzip")
    r = await run_intent(comfy, fake, base, intent_prompt(info, "faults: a chunked CDN that gzips the MP4"))
    await fake.set(file_framing="length", file_encoding="")
    check_whole(report, "faults: chunked + gzip CDN", r)


async def fault_created_2xx(report: Report, comfy: Comfy, fake: FakeControl, base: Path, info: dict) -> None:
    """A creation answered 201 (or 202) is a task: queued again, no second task."""
    for status in (201, 202):
        await fake.set(create_status=status)
        words = f"faults: creation answered {status}"
        r = await run_intent(comfy, fake, base, intent_prompt(info, words))
        check_whole(report, f"faults: {status} creation", r)
        again = await run_intent(comfy, fake, base, intent_prompt(info, words, submit_id="503"))
        report.check(again.run["outcome"] == "success" and again.new_tasks == 0 and again.creations == 0
                     and again.task_id == r.task_id and any("from disk" in t for t in again.poll_texts),
                     f"faults: {status} creation: the same intent queued again gets its task, nothing sent",
                     f"task {again.task_id}, {again.creations} creation request(s); Poll: {again.poll_texts[-1:]}")
    await fake.set(create_status=200)


async def fault_broken_files(report: Report, comfy: Comfy, fake: FakeControl, base: Path, info: dict) -> None:
    """A 0-byte file, an HTML page served as the file, a body cut short without a length, each then a
    good file: kept aside, said on the node, fetched again."""
    for kind, words in (("empty", "empty (0 bytes)"), ("html", "web page"), ("cut", "cut short")):
        await fake.call("break_next_files", kind)
        r = await run_intent(comfy, fake, base, intent_prompt(info, f"faults: the file host serves {kind}, then good"))
        check_whole(report, f"faults: {kind} file, then a good one", r)
        said = [t for t in r.poll_texts if "broken video" in t]
        kept = sorted(p.name for p in r.path.parent.glob(f"kling_{r.task_id}.mp4.broken-*")) if r.path else []
        report.check(len(r.files) == 2 and said and words in said[0] and kept and kept[0] in said[0],
                     f"faults: {kind} file: Poll says what the host served and where it is kept",
                     f"{len(r.files)} file requests; {(said or ['nothing said'])[0][:300]}")
    # Broken every time: the run stops with a plain message; queued again later, the video comes.
    await fake.call("break_next_files", "html", 3)
    words = "faults: the file host serves HTML three times"
    r = await run_intent(comfy, fake, base, intent_prompt(info, words))
    report.check(r.run["outcome"] == "error" and len(r.made) == 1 and "broken 3 times" in r.error
                 and f"Task {r.made[0]} is finished and paid" in r.error,
                 "faults: a file host that serves HTML every time: the error says the video is paid and how to get it",
                 r.error[:500])
    again = await run_intent(comfy, fake, base, intent_prompt(info, words))
    check_whole(report, "faults: HTML three times, then queued again", again, new_tasks=0)


async def fault_busy_account(report: Report, comfy: Comfy, fake: FakeControl, base: Path, info: dict) -> None:
    """Two creations refused with 429 code 1303 (too many tasks in flight), then accepted."""
    await fake.set(retry_after=1)
    await fake.call("reject_next_create", 429, 1303)
    await fake.call("reject_next_create", 429, 1303)
    r = await run_intent(comfy, fake, base, intent_prompt(info, "faults: two 429 1303 answers before creation"))
    await fake.set(retry_after=None)
    check_whole(report, "faults: two 429 1303 answers", r)
    waiting = [t for t in r.submit_texts if t.startswith("waiting for a free slot")]
    report.check(r.refused == 2 and r.creations == 3 and waiting and "Kling 1303" in waiting[0],
                 "faults: two 429 1303 answers: Submit waits, saying why, then creates once",
                 f"{r.refused} refused, {r.creations} creation requests; Submit: {(waiting or ['nothing'])[0]}")


async def fault_journal_deleted(report: Report, comfy: Comfy, fake: FakeControl, base: Path, info: dict) -> None:
    """The journal deleted while ComfyUI runs (the README's way to forget intents): a new intent
    works, and an old one queued again is refused by Kling as a duplicate of its external id,
    so the pack collects the task it already has."""
    old_words = "faults: made before the journal was deleted"
    old = await run_intent(comfy, fake, base, intent_prompt(info, old_words))
    check_whole(report, "faults: journal: an intent before the deletion", old)
    journal = pack_key_file(base).parent / "journal.sqlite3"
    gone = sorted(p.name for p in journal.parent.glob(journal.name + "*"))
    for path in journal.parent.glob(journal.name + "*"):
        path.unlink()
    report.note(f"deleted {', '.join(gone)} while ComfyUI runs")
    new = await run_intent(comfy, fake, base, intent_prompt(info, "faults: a new intent after the journal was deleted"))
    check_whole(report, "faults: journal deleted: a new intent", new)
    report.check(journal.is_file(), "faults: journal deleted: it is made again", str(journal.relative_to(base)))
    again = await run_intent(comfy, fake, base, intent_prompt(info, old_words, submit_id="504"))
    check_whole(report, "faults: journal deleted: an old intent queued again", again, new_tasks=0)
    report.check(again.task_id == old.task_id and again.creations == 1,
                 "faults: journal deleted: the old intent gets its own task back (its external id is refused "
                 "as a duplicate, the pack looks it up)",
                 f"task {again.task_id} (first run: {old.task_id}); {again.creations} creation request refused; "
                 f"the video fetched again: {len(again.files)} file request(s)")


async def faults_run(args, report: Report, work: Path, key: str) -> None:
    """Each fault of issue 8's 'Done when' in a real ComfyUI, against a fake of its own."""
    _, fake_url = start_fake_server(work, key, name="fake_cometapi_faults")
    attacker_key = "sk-attacker" + secrets.token_hex(8)  # random: the pack's sources (copied too) never hold it
    history = ""
    async with comfyui(args, work, "faults", fake_url, None, listen="0.0.0.0") as c:
        report.note(f"faults run: ComfyUI --listen 0.0.0.0 at {c.url}, stored key, fake CometAPI at {fake_url}")
        comfy = Comfy(c.http, c.url)
        await comfy.connect()
        fake = FakeControl(c.http, fake_url)
        info = await comfy.get_json("/object_info")
        status, body = await comfy.text("POST", "/cometapi_omni/key", json={"key": key})
        if not report.check(status == 200, "faults: the key is stored from this machine", body):
            raise CheckFailed("the faults run needs a stored key")
        key_file = pack_key_file(c.base)
        key_before = key_file.read_bytes()

        await fault_chunked(report, comfy, fake, c.base, info)
        await fault_created_2xx(report, comfy, fake, c.base, info)
        await fault_broken_files(report, comfy, fake, c.base, info)
        await fault_busy_account(report, comfy, fake, c.base, info)
        await fault_journal_deleted(report, comfy, fake, c.base, info)
        await fault_cross_site(report, comfy, key_file, attacker_key)  # near last: if it fails, only it fails
        await fault_foreign_pages(report, c, fake, info)  # last: it turns the daily limit off

        state = await fake.state()
        intents = {t["prompt"] for t in state["tasks"]}
        report.check(state["created"] == len(intents) and state["created"] > 0,
                     "faults: one task per intent over the whole run",
                     f"{state['created']} tasks for {len(intents)} intents, {state['creation_requests']} creation "
                     f"requests ({state['refused_creates']} answered 429)")
        report.check(not any(f["authorization"] for f in state["file_requests"]),
                     "faults: no file request carried an Authorization header", f"{len(state['file_requests'])} file requests")
        report.check(key_file.read_bytes() == key_before, "faults: the key file is unchanged at the end")
        history = (await comfy.text("GET", "/history?max_items=1000"))[1]
        await comfy.close()
    log = c.proc.log()
    check_log(report, log, "faults run", expected=("DownloadError", "BrokenVideo"))  # the HTML-every-time case
    texts = {"history": history, "ComfyUI log": log, "fake server log": (work / "fake_cometapi_faults.log").read_text()}
    check_no_key(report, "faults run", key, c.base, texts, allowed={pack_key_file(c.base)})
    check_no_key(report, "faults run: the attacker's key", attacker_key, c.base, texts, allowed=set())


# --- batches (--batch): variations and prompt lists at the account's pace ----------------

BATCH_LIMIT = 3  # the fake account's tasks in flight
BATCH_TASK_SECONDS = 6  # each task: 1 s submitted + 5 s processing
BATCH_CLIP = (3, 24)  # seconds, fps of the result video: a whole MP4 has 72 frames


def start_batch_fake_server(work: Path, key: str) -> tuple[Service, str]:
    """A fake account of its own that allows BATCH_LIMIT tasks in flight and logs every creation."""
    return start_fake_server(work, key, processing_seconds=BATCH_TASK_SECONDS - 1, name="fake_cometapi_batch",
                             video_seconds=BATCH_CLIP[0],
                             extra=("--max-in-flight", str(BATCH_LIMIT), "--log-creations"))


def creations(fake: Service) -> tuple[list, int]:
    """(task ids the fake account created, creations it refused with 429) so far, from its log."""
    log = fake.log()
    return re.findall(r"creation answered 2\d\d: task (\S+)", log), len(re.findall(r"creation answered 429", log))


def batch_prompt(info: dict, name: str, variations: int | None = None) -> tuple[dict, dict]:
    """(API prompt, UI workflow) of a template; Poll's frames also feed ImageFromBatch → SaveImage,
    which runs once per variation (the first frame of each)."""
    workflow = json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
    prompt = to_api_prompt(workflow, info)
    submit_id = next(n for n, node in prompt.items() if node["class_type"] == "CometOmniSubmit")
    if variations is not None:
        prompt[submit_id]["inputs"]["variations"] = variations
    poll_id = poll_nodes(prompt)[0]
    prompt["9101"] = {"class_type": "ImageFromBatch", "inputs": {"image": [poll_id, 0], "batch_index": 0, "length": 1}}
    prompt["9102"] = {"class_type": "SaveImage", "inputs": {"images": ["9101", 0], "filename_prefix": f"batch/{name}"}}
    return prompt, workflow


def check_batch_outputs(report: Report, label: str, run: dict, prompt: dict, base: Path, expected: int) -> list:
    """Every variation's whole MP4 on disk, Poll's history entry for each, and a first frame saved by
    the core SaveImage for each. Returns the task ids."""
    poll_id = poll_nodes(prompt)[0]
    out = run["history"].get("outputs", {}).get(poll_id, {})
    task_ids, videos = out.get("task_id") or [], out.get("images") or []
    report.check(len(task_ids) == len(set(task_ids)) == len(videos) == expected,
                 f"{label}: Poll returned {expected} tasks, each with its video preview",
                 f"{len(task_ids)} task ids ({len(set(task_ids))} distinct), {len(videos)} previews")
    frames = [video_info(base / "output" / v.get("subfolder", "") / v.get("filename", ""))["frames"] for v in videos]
    whole = BATCH_CLIP[0] * BATCH_CLIP[1]
    report.check(len(frames) == expected and all(f == whole for f in frames),
                 f"{label}: {expected} whole videos in the output folder", f"frames per MP4 {frames} (whole: {whole})")
    saved = run["history"].get("outputs", {}).get("9102", {}).get("images") or []
    files = [base / "output" / s.get("subfolder", "") / s.get("filename", "") for s in saved]
    report.check(len(saved) == expected and all(f.is_file() and f.stat().st_size > 0 for f in files),
                 f"{label}: frames came back for each task (the core SaveImage ran once per variation)",
                 f"{len(saved)} images saved by SaveImage #9102")
    return task_ids


async def batch_run(args, report: Report, work: Path, key: str) -> None:
    """8 variations against an account that allows 3 tasks at once, then re-queued, then 10; the
    prompt-list template. Times are compared with one chain measured in the same run."""
    fake, fake_url = start_batch_fake_server(work, key)
    history = ""
    async with comfyui(args, work, "batch", fake_url, key) as c:
        report.note(f"batch run: ComfyUI at {c.url}, fake account at {fake_url} allowing {BATCH_LIMIT} tasks in "
                    f"flight, each task {BATCH_TASK_SECONDS} s")
        comfy = Comfy(c.http, c.url)
        await comfy.connect()
        info = await comfy.get_json("/object_info")
        report.check("CometOmniPromptList" in info and info["CometOmniPromptList"]["output_is_list"] == [True],
                     "batch: /object_info has CometOmniPromptList, whose output is a list",
                     json.dumps(info.get("CometOmniPromptList", {}).get("output_is_list")))

        one, _ = batch_prompt(info, "kling_omni_text_to_video")
        for node in one.values():  # the variations template's request: a seed of its own, or it would be reused
            if node["class_type"] == "CometOmniSubmit":
                node["inputs"]["seed"] = 1000
        one_run = await comfy.run(one)
        report.check(one_run["outcome"] == "success", "batch: one chain (the yardstick) runs", outcome_text(one_run))
        chain = one_run["seconds"]

        prompt, workflow = batch_prompt(info, "kling_omni_variations", variations=8)
        made_before, refused_before = creations(fake)
        run = await comfy.run(prompt, workflow, timeout=PROMPT_TIMEOUT + 8 * BATCH_TASK_SECONDS)
        made, refused = creations(fake)
        new = made[len(made_before):]
        failed = [d for _, kind, d in comfy.events if kind == "execution_error"
                  and isinstance(d, dict) and d.get("prompt_id") == run.get("prompt_id")]
        report.check(run["outcome"] == "success" and not failed, "batch: 8 variations run with no failed node",
                     outcome_text(run))
        report.check(len(new) == 8, "batch: 8 variations create 8 tasks, no more",
                     f"{len(new)} created, {refused - refused_before} creations answered 429 (nothing made)")
        if run["outcome"] == "success":
            ids = check_batch_outputs(report, "batch", run, prompt, c.base, 8)
            report.check(sorted(ids) == sorted(new), "batch: Poll's tasks are the ones the account created",
                         f"{len(set(ids) & set(new))} of 8 match")
        rounds = -(-8 // BATCH_LIMIT)
        submit_id = next(n for n, node in prompt.items() if node["class_type"] == "CometOmniSubmit")
        waits = [t for _, t in comfy.texts(submit_id, run["start"]) if t.startswith("waiting for a free slot")]
        report.check(any(f"({BATCH_LIMIT} running" in t for t in waits),
                     "batch: Submit said it was waiting for a free slot", (waits or ["(no such status)"])[0][:200])
        report.check((rounds - 1) * BATCH_TASK_SECONDS <= run["seconds"] <= rounds * chain * 1.5,
                     f"batch: 8 variations at {BATCH_LIMIT} at once take about ceil(8/{BATCH_LIMIT}) = {rounds} task "
                     f"durations", f"{run['seconds']:.1f} s; one chain {chain:.1f} s in this run "
                     f"({run['seconds'] / chain:.2f}x; allowed {(rounds - 1) * BATCH_TASK_SECONDS} s to "
                     f"{rounds * chain * 1.5:.1f} s)")

        again = await comfy.run(prompt, workflow)
        report.check(again["outcome"] == "success" and creations(fake) == (made, refused),
                     "batch: re-queueing the run sends nothing", f"{outcome_text(again)}; "
                     f"{len(creations(fake)[0]) - len(made)} creations")

        ten, _ = batch_prompt(info, "kling_omni_variations", variations=10)
        more = await comfy.run(ten, workflow, timeout=PROMPT_TIMEOUT + 4 * BATCH_TASK_SECONDS)
        made_ten = creations(fake)[0][len(made):]
        report.check(more["outcome"] == "success" and len(made_ten) == 2,
                     "batch: raising variations to 10 creates exactly 2 more tasks",
                     f"{outcome_text(more)}; {len(made_ten)} created")
        if more["outcome"] == "success":
            check_batch_outputs(report, "batch, 10 variations", more, ten, c.base, 10)

        listed, listed_workflow = batch_prompt(info, "kling_omni_prompt_list")
        lines = next(n for n in listed.values() if n["class_type"] == "CometOmniPromptList")["inputs"]["prompts"]
        before = len(creations(fake)[0])
        run_list = await comfy.run(listed, listed_workflow, timeout=PROMPT_TIMEOUT + 3 * BATCH_TASK_SECONDS)
        report.check(run_list["outcome"] == "success", "batch: the prompt-list template runs", outcome_text(run_list))
        if run_list["outcome"] == "success":
            count = len(lines.splitlines())
            report.check(len(creations(fake)[0]) - before == count,
                         f"batch: the prompt list creates one task per line ({count})",
                         f"{len(creations(fake)[0]) - before} created")
            check_batch_outputs(report, "batch, prompt list", run_list, listed, c.base, count)
        history = (await comfy.text("GET", "/history?max_items=1000"))[1]
        await comfy.close()
    log = c.proc.log()
    check_log(report, log, "batch run")
    check_no_key(report, "batch run", key, c.base, {"history": history, "ComfyUI log": log}, allowed=set())


async def main_async(args) -> int:
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="comfyui-check-"))
    print(f"work directory: {work}", flush=True)
    key = "sk-check" + secrets.token_hex(16)
    try:
        fake, fake_url = start_fake_server(work, key)
        report.note(f"fake CometAPI at {fake_url}")
        if not (args.browser_only or args.faults_only or args.batch_only):
            await env_key_run(args, report, work, fake_url, key)
            await stored_key_run(args, report, work, fake_url, key)
        if args.browser or args.browser_only:
            await browser_run(args, report, work, key)
        if args.faults or args.faults_only:
            await faults_run(args, report, work, key)
        if args.batch or args.batch_only:
            await batch_run(args, report, work, key)
    except CheckFailed as exc:
        report.check(False, "the check could go on", str(exc))
    finally:
        Service.stop_all()
    code = report.summary()
    if args.keep or args.browser or args.browser_only:
        shots = work / "screenshots"
        print(f"kept: {work}" + (f" (screenshots in {shots})" if shots.exists() else ""))
    else:
        shutil.rmtree(work, ignore_errors=True)
    return code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", required=True, type=Path, help="the ComfyUI folder (main.py)")
    parser.add_argument("--python", required=True, help="the Python of ComfyUI's environment")
    parser.add_argument("--browser", action="store_true",
                        help="also drive the real frontend in headless Chromium (keeps the work directory)")
    parser.add_argument("--browser-only", action="store_true", help="only the browser part")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--front-end-root", type=Path,
                        help="serve this frontend (a comfyui_frontend_package/static folder) instead of the bundled one")
    parser.add_argument("--nodes2", choices=("on", "off"),
                        help="browser part: turn Nodes 2.0 (Comfy.VueNodes.Enabled) on or off first "
                             "(default: leave the frontend's own default)")
    parser.add_argument("--faults", action="store_true",
                        help="also run issue 8's faults (file hosts, 2xx and 429 creations, a deleted journal, "
                             "cross-site key writes) and issue 16's foreign pages (a cross-site paid /prompt, a "
                             "foreign /ws) in a ComfyUI of their own, started with --listen 0.0.0.0")
    parser.add_argument("--faults-only", action="store_true", help="only the faults part")
    parser.add_argument("--batch", action="store_true",
                        help="also run the batch checks: 8 and 10 variations and a prompt list against an account "
                             "that allows 3 tasks at once")
    parser.add_argument("--batch-only", action="store_true", help="only the batch checks")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, outputs)")
    args = parser.parse_args(argv)
    if not (args.comfyui / "main.py").is_file():
        parser.error(f"{args.comfyui} has no main.py")
    if args.front_end_root and not (args.front_end_root / "index.html").is_file():
        parser.error(f"{args.front_end_root} has no index.html (expected .../comfyui_frontend_package/static)")
    try:
        return asyncio.run(main_async(args))
    finally:
        Service.stop_all()


if __name__ == "__main__":
    sys.exit(main())
