"""A fake CometAPI Kling Omni Video endpoint, written from the contract alone.

It shares no code with `kling_omni` on purpose: a bug in the client's reading of the
contract must not be mirrored here. Two loopback HTTP servers run in background threads:

- the API (`base_url`): POST /kling/v1/videos/omni-video and GET .../{task_id}, with
  Bearer auth, the contract's validation rules, a task state machine and three
  switchable response shapes (A Kling-native, B CometAPI wrapper, C double nesting);
- the "CDN" (`files_base_url`, another port, like Kling's video host): serves the result
  MP4s, honours Range requests, and records every request's headers so a test can
  prove the API key never reached it. It can also behave like real CDNs and proxies
  (see "how the file host answers" in __init__): chunked streaming without a length, a
  gzip Content-Encoding the client did not ask for, another 2xx status, a trickle.

Models, on the same route with the same shapes: `kling-video-o1` (also when a body names no
model) with the O1 rules of contract §4, refusing every v3-only field; and `kling-v3-omni`
with the rules of §12.1 (duration 3..15 in every mode, `sound`, `multi_shot` with
`shot_type` and `multi_prompt` shots; no shots with an end frame or a base edit). The
`refuse_v3` option makes the route refuse v3 as one that lacks it would, in Kling's words
("kling") or a gateway's ("gateway"), creating nothing.

Result videos (media.py: each frame shows its index and its shot number): by default one
fixed clip (`video_seconds`, `video_fps`, `video_size`, `video_audio`) for every task; with
`follow_request` the clip is what the task asked for (length, 24 fps, 720p/1080p in its
aspect ratio, audio only with sound on or a kept original sound; see `result_clip`). A task
with `sound: "on"` always gets an AAC track. `clip_writer` replaces the test pattern: a function
(request, clip, path) that writes a task's MP4 of that clip itself, once per task (e.g. a title
card per shot for the README's pictures, scripts/make_readme_pictures.py).

Time: a task's state follows from its age on the server's clock (`time.monotonic()`
plus an offset that `advance()` moves), so tests never need to sleep; `finish()` ends
a task at once. Fault injection methods at the bottom of the class.

Account behaviours the real service has (constructor options): creation answered with
another 2xx (`create_status`, e.g. 201 or 202); a limit on the account's tasks in flight
(`max_in_flight`: a creation beyond it answers HTTP 429 with Kling code 1303 and makes
nothing; a slot frees when a task ends, on the server clock); an optional `Retry-After`
on every 429 the API answers (`retry_after`, seconds); any status word, terminal or not,
through `set_status()`.

Remote control, for a fake running in its own process (`python -m fake_cometapi`, e.g. behind
a real ComfyUI): on the API port, `POST /_fake/control` with JSON `{"call": NAME, "args": [...],
"kwargs": {...}}` calls one of the fault-injection methods in `_ApiHandler.CONTROL_CALLS`, and
`{"set": {NAME: VALUE, ...}}` sets options of `_ApiHandler.CONTROL_OPTIONS`; nothing else is
reachable. `GET /_fake/state` answers what a check counts: the tasks made, the creation
requests and the 429s among them, status queries, and each file request (its task, Range
header, whether it carried an Authorization header). Neither is recorded as an API request.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import gzip
import io
import itertools
import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional

API_PATH = "/kling/v1/videos/omni-video"
O1_MODEL = "kling-video-o1"  # the default when a body names no model
V3_MODEL = "kling-v3-omni"
MODELS = {O1_MODEL, V3_MODEL}
MODES = {"std", "pro"}
ASPECT_RATIOS = {"16:9", "9:16", "1:1"}
IMAGE_TYPES = {"first_frame", "end_frame"}
REFER_TYPES = {"feature", "base"}
YES_NO = {"yes", "no"}
SOUNDS = {"on", "off"}
SHOT_TYPES = {"customize", "intelligence"}
V3_ONLY_FIELDS = ("sound", "multi_shot", "shot_type", "multi_prompt", "voice_list")  # O1 refuses each
MAX_SHOTS = 6
MAX_SHOT_PROMPT = 512
MAX_DURATION = {O1_MODEL: 10, V3_MODEL: 15}
DEFAULT_DURATION = 5
REFUSE_V3_STYLES = ("kling", "gateway")  # see FakeCometAPI.refuse_v3
RESULT_FPS = 24  # Kling renders at 24 fps
RESOLUTIONS = {"pro": 1080, "std": 720}  # the short side of the result
MAX_PROMPT = 2500
MAX_IMAGE_BYTES = 10 * 1024 * 1024
VARIANTS = ("A", "B", "C")
FIRST_TASK_ID = 878106484537192522  # Kling ids are numeric-looking strings

# --- the MP4s the "CDN" serves: one file per settings, shared by every server in the process

@dataclass(frozen=True)
class Clip:
    """What a result MP4 is made of; equal clips share one file."""

    seconds: float
    fps: int
    width: int
    height: int
    audio: bool  # an AAC track with media.py's test tone
    shots: tuple = ()  # the shots' lengths in seconds, in order; () for one shot

    @property
    def duration(self) -> float:
        """The real length: a whole number of frames."""
        return round(self.seconds * self.fps) / self.fps


_media_lock = threading.Lock()
_media_cache: dict[Clip, Path] = {}
_clip_locks: dict[Clip, threading.Lock] = {}  # one per clip: a long 1080p clip holds up no other
_media_dir: Optional[Path] = None


def _clip_path(clip: Clip) -> Path:
    global _media_dir
    with _media_lock:
        if _media_dir is None:
            _media_dir = Path(tempfile.mkdtemp(prefix="fake_cometapi_media_"))
            atexit.register(shutil.rmtree, _media_dir, True)
        lock = _clip_locks.setdefault(clip, threading.Lock())
    with lock:
        if clip in _media_cache:
            return _media_cache[clip]
        from .media import make_mp4  # PyAV is only needed once a video is served

        shots = "_shots" + "-".join("%g" % s for s in clip.shots) if clip.shots else ""
        path = _media_dir / ("clip_%g_%d_%dx%d_%s%s.mp4" % (clip.seconds, clip.fps, clip.width, clip.height,
                                                            "a" if clip.audio else "n", shots))
        make_mp4(path, seconds=clip.seconds, fps=clip.fps, width=clip.width, height=clip.height, audio=clip.audio,
                 shots=clip.shots)
        _media_cache[clip] = path
        return path


# --- records -------------------------------------------------------------------------------

@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict
    body: Any = None  # parsed JSON, or None
    raw: bytes = b""

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class FakeTask:
    task_id: str
    request: dict
    account: str  # the key that created it
    created_mono: float  # server clock
    created_ms: int  # wall clock, as Kling reports it
    submitted_seconds: float
    processing_seconds: float
    will_fail: str = ""  # failure message when the task is doomed (moderation)
    forced: Optional[str] = None  # "succeed" / "failed" set by finish(), or any word set by set_status()
    forced_msg: str = ""
    forced_ended: bool = True  # set_status(terminal=False): the word does not end the task
    forced_video: bool = False  # set_status(video=True): the answer lists the video under that word
    forced_at_ms: Optional[int] = None
    token: str = ""  # current file token; rotated when URLs expire
    video_id: str = field(default_factory=lambda: uuid.uuid4().hex)


# --- the server ------------------------------------------------------------------------------

class FakeCometAPI:
    """Start with `with FakeCometAPI() as server:` or `server.start()` / `server.stop()`."""

    def __init__(self, key: str = "test-key-123", *, no_quota_key: str = "no-quota-key",
                 variant: str = "A", create_shape: str = "kling",
                 submitted_seconds: float = 0.0, processing_seconds: float = 0.0,
                 moderation_marker: str = "[moderation]",
                 moderation_message: str = "Failure to pass the risk control system",
                 strict_durations: bool = True, refuse_v3: str = "",
                 check_image_pixels: bool = True,
                 video_seconds: float = 1.0, video_fps: int = 12, video_size: tuple = (160, 120),
                 video_audio: bool = True, follow_request: bool = False,
                 clip_writer: Optional[Callable[[dict, Clip, Path], None]] = None, query_by_external_id: bool = True,
                 drops_external_id: bool = False,
                 create_status: int = 200, max_in_flight: Optional[int] = None, retry_after: Optional[float] = None,
                 host: str = "127.0.0.1", port: int = 0, files_port: int = 0):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")
        self.key = key
        self.no_quota_key = no_quota_key
        self.variant = variant
        # "kling": data.task_id (§4.4); "task_id": top-level task_id; "id": top-level id (§4.4 INFER)
        self.create_shape = create_shape
        self.submitted_seconds = submitted_seconds
        self.processing_seconds = processing_seconds
        self.moderation_marker = moderation_marker
        self.moderation_message = moderation_message
        self.strict_durations = strict_durations
        self.refuse_v3 = refuse_v3
        self.check_image_pixels = check_image_pixels
        # the result clip: fixed by these settings, or (follow_request) by the task's request
        self.video_seconds = video_seconds
        self.video_fps = video_fps
        self.video_size = tuple(video_size)
        self.video_audio = video_audio
        self.follow_request = follow_request
        self.clip_writer = clip_writer  # (request, clip, path): writes a task's MP4 instead of media.make_mp4
        self._written: dict[str, Path] = {}  # task id -> the MP4 clip_writer wrote
        self._writing: dict[str, threading.Lock] = {}
        self._written_dir: Optional[Path] = None
        self.query_by_external_id = query_by_external_id
        self.drops_external_id = drops_external_id
        # account behaviours of the API (see the module docstring)
        self.create_status = create_status  # HTTP status of a successful creation (200, 201, 202)
        self.max_in_flight = max_in_flight  # tasks in flight per key; None = no limit
        self.retry_after = retry_after  # seconds sent as Retry-After on every 429; None = no header
        self.refused_creates: list[float] = []  # time.monotonic() of each creation answered 429
        self._host = host
        self._ports = (port, files_port)

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # notified on every request and change
        self._release = threading.Event()  # ends injected delays early (stop / release_delays)
        self._requests: list[Recorded] = []
        self._file_requests: list[Recorded] = []
        self._tasks: dict[str, FakeTask] = {}
        self._external_ids: dict[tuple, str] = {}  # (account, external_task_id) -> task_id
        self._tokens: dict[str, tuple] = {}  # token -> (task_id, expired)
        self._ids = itertools.count(FIRST_TASK_ID)
        self._clock_offset = 0.0

        # fault injection state
        self._create_faults: list[tuple] = []  # ("after", status) / ("before", status, code)
        self._status_faults: list[int] = []
        self._cuts: list[float] = []  # fractions of the body to send before closing
        self.succeed_without_video = False  # succeed with an empty videos list (a broken answer)
        self.files_forbidden = False  # every file request answers 403, fresh URLs too
        self.file_stall = 0.0  # seconds a file answer stalls halfway (a slow CDN)
        self.create_delay = 0.0  # seconds the creation answer waits (the task exists already)
        self.status_delay = 0.0  # seconds each status answer waits

        # how the file host answers (all real CDN / proxy behaviours, see _FileHandler)
        self.file_framing = "length"  # "chunked": HTTP/1.1 Transfer-Encoding chunked, no Content-Length
        self.file_encoding = ""  # "gzip": Content-Encoding gzip although the client asked for identity
        self.file_status = 200  # status of a whole-file answer, e.g. 203 from a transforming proxy
        self.file_trickle: Optional[tuple] = None  # (bytes, seconds): that many bytes every that many seconds
        self.result_url = ""  # template for result URLs, "{token}" filled in; "" = this file host
        self._broken: list[str] = []  # kinds of broken body for the next file requests

        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> "FakeCometAPI":
        if self._servers:
            return self
        self._release.clear()
        for handler, port in ((_ApiHandler, self._ports[0]), (_FileHandler, self._ports[1])):
            httpd = _QuietServer((self._host, port), handler)
            httpd.daemon_threads = True
            httpd.fake = self
            thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                      name=f"fake-cometapi-{handler.__name__}", daemon=True)
            thread.start()
            self._servers.append(httpd)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._release.set()
        for httpd in self._servers:
            httpd.shutdown()
            httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> "FakeCometAPI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return "http://%s:%d" % self._servers[0].server_address[:2]

    @property
    def files_base_url(self) -> str:
        return "http://%s:%d" % self._servers[1].server_address[:2]

    # --- the models this route serves --------------------------------------------------------

    @property
    def refuse_v3(self) -> str:
        """How the route refuses kling-v3-omni, as one that does not serve it would; "" serves it.

        - "kling": HTTP 400, Kling body code 1201, "model_name kling-v3-omni is not supported";
        - "gateway": HTTP 503, CometAPI error envelope with code "model_not_found", "No available
          channel for model kling-v3-omni ..." (a new-api lineage gateway without a channel for it).

        Either way nothing is relayed: no task is made and nothing is billed.
        """
        return self._refuse_v3

    @refuse_v3.setter
    def refuse_v3(self, style: Optional[str]) -> None:
        style = style or ""
        if style and style not in REFUSE_V3_STYLES:
            raise ValueError(f"refuse_v3 must be one of {REFUSE_V3_STYLES} or empty, got {style!r}")
        self._refuse_v3 = style

    # --- introspection ---------------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """Every API request received, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def file_requests(self) -> list[Recorded]:
        """Every request the file server received (a copy)."""
        with self._lock:
            return list(self._file_requests)

    @property
    def tasks(self) -> dict[str, FakeTask]:
        with self._lock:
            return dict(self._tasks)

    @property
    def created_count(self) -> int:
        with self._lock:
            return len(self._tasks)

    def clear_records(self) -> None:
        """Forget the request logs (tasks stay): lets a test count only its own requests."""
        with self._lock:
            self._requests.clear()
            self._file_requests.clear()

    def queries_of(self, task_id: str) -> int:
        """How many status queries reached the server for this task."""
        path = f"{API_PATH}/{task_id}"
        with self._lock:
            return sum(1 for r in self._requests if r.method == "GET" and r.path == path)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until predicate() holds (re-checked on every request and change); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
            return True

    # --- the clock and the state machine ---------------------------------------------------

    def now(self) -> float:
        with self._lock:
            return time.monotonic() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the server clock forward: tasks age without anyone sleeping."""
        with self._changed:
            self._clock_offset += seconds
            self._changed.notify_all()

    def finish(self, task_id: str, *, failed: bool = False, message: str = "") -> None:
        """End a task now, as succeed (default) or failed with `message`."""
        with self._changed:
            task = self._tasks[task_id]
            task.forced = "failed" if failed else "succeed"
            task.forced_msg = message or (self.moderation_message if failed else "")
            task.forced_ended, task.forced_video = True, False
            task.forced_at_ms = _now_ms()
            self._changed.notify_all()

    def set_status(self, task_id: str, word: str, *, terminal: bool = False, message: str = "",
                   video: bool = False) -> None:
        """Make a task report `word` as its status from now on, in every response variant.

        `terminal`: the task has ended (it frees its slot; the wrapper of variants B/C sets
        finish_time and progress 100%; Kling's own shape, variant A, has no such marker).
        `video`: the answer lists the result video under that word (and the file is served).
        """
        with self._changed:
            task = self._tasks[task_id]
            task.forced, task.forced_msg = word, message
            task.forced_ended, task.forced_video = terminal, video
            task.forced_at_ms = _now_ms()
            self._changed.notify_all()

    def status_of(self, task_id: str) -> str:
        """The Kling status word of a task right now."""
        with self._lock:
            return self._state(self._tasks[task_id])[0]

    def _state(self, task: FakeTask) -> tuple[str, str, float]:
        """(kling status, status message, progress 0..1)."""
        if task.forced:
            return task.forced, task.forced_msg, 1.0 if task.forced_ended else 0.5
        age = self.now() - task.created_mono
        if age < task.submitted_seconds:
            return "submitted", "", 0.0
        run = age - task.submitted_seconds
        if run < task.processing_seconds:
            return "processing", "", min(run / task.processing_seconds, 0.99)
        if task.will_fail:
            return "failed", task.will_fail, 1.0
        return "succeed", "", 1.0

    def _ended(self, task: FakeTask) -> bool:
        """The task no longer holds a slot of its account (Kling: from submitted until it ends)."""
        status = self._state(task)[0]
        return status in ("succeed", "failed") or bool(task.forced and task.forced_ended)

    def _has_video(self, task: FakeTask) -> bool:
        return self._state(task)[0] == "succeed" or bool(task.forced and task.forced_video)

    def _in_flight(self, account: str) -> int:
        return sum(1 for task in self._tasks.values() if task.account == account and not self._ended(task))

    # --- fault injection -------------------------------------------------------------------

    def fail_next_create_after_commit(self, status: int = 500) -> None:
        """The next creation makes its task, then answers `status` (a lost success)."""
        with self._lock:
            self._create_faults.append(("after", status, 5000 if status == 500 else 5002))

    def reject_next_create(self, status: int = 429, code: int = 1303) -> None:
        """The next creation is refused before any task is made (default: 1303 concurrency).

        Call it several times to refuse several creations in a row."""
        with self._lock:
            self._create_faults.append(("before", status, code))

    def status_storm(self, statuses) -> None:
        """The next len(statuses) status queries answer these HTTP statuses (429 → 1303, 5xx → 500x)."""
        with self._lock:
            self._status_faults.extend(int(s) for s in statuses)

    def cut_next_downloads(self, count: int = 1, fraction: float = 0.5) -> None:
        """The next `count` file responses announce the full length, send `fraction` of it, then hang up."""
        with self._lock:
            self._cuts.extend([fraction] * count)

    def break_next_files(self, kind: str, count: int = 1) -> None:
        """The next `count` file requests get a broken body, as hosts serve them:

        - "empty": HTTP 200, Content-Length 0 (a placeholder object, a power cut at the origin);
        - "html": HTTP 200 with an HTML error page (a gateway that hides its errors);
        - "cut": HTTP 200 without Content-Length, half the file, then a clean close: the client
          cannot tell from the transfer that anything is missing.
        """
        if kind not in ("empty", "html", "cut"):
            raise ValueError("kind must be empty, html or cut")
        with self._lock:
            self._broken.extend([kind] * count)

    def next_task_ids(self, *task_ids: str) -> None:
        """The next created tasks get these ids, in order: a server whose ids a client must not
        put into a URL or a file name unchecked ("../x", "a/b", 300 characters...)."""
        with self._lock:
            self._ids = itertools.chain(task_ids, self._ids)

    def expire_urls(self) -> None:
        """Every result URL handed out so far now answers 403; the next query of a task gives a new one."""
        with self._changed:
            for token, (task_id, _) in list(self._tokens.items()):
                self._tokens[token] = (task_id, True)
            for task in self._tasks.values():
                task.token = self._mint_token(task.task_id)
            self._changed.notify_all()

    def release_delays(self) -> None:
        """End every injected delay now (create_delay / status_delay / file_stall / file_trickle)
        and for the future."""
        self._release.set()

    # --- request handling (called from handler threads) --------------------------------------

    def _record(self, rec: Recorded, files: bool = False) -> None:
        with self._changed:
            (self._file_requests if files else self._requests).append(rec)
            self._changed.notify_all()

    def _auth(self, rec: Recorded) -> Optional[tuple[int, dict]]:
        header = rec.header("Authorization") or ""
        match = re.fullmatch(r"(?i)bearer\s+(\S+)\s*", header)
        token = match.group(1) if match else ""
        if token and token == self.no_quota_key:
            return 403, _comet_error("user quota is not enough", "insufficient_user_quota")
        if not token or token != self.key:
            return 401, _comet_error("invalid token", "", kind="comet_api_error")
        return None

    def _create(self, rec: Recorded) -> tuple:
        """(HTTP status, JSON body[, extra headers]) of a creation request."""
        body = rec.body
        if not isinstance(body, dict):
            return 400, _kling_error(1200, "request body must be a JSON object")
        refused = self._refuse_model(body)
        if refused:
            return refused
        problem = self._validate(body)
        if problem:
            return 400, _kling_error(1201, problem)
        with self._changed:
            account = self.key
            fault = self._create_faults.pop(0) if self._create_faults else None
            if fault and fault[0] == "before":
                return self._refuse(fault[1], fault[2])
            if self.max_in_flight is not None and self._in_flight(account) >= self.max_in_flight:
                return self._refuse(429, 1303)  # Kling: a task holds a slot until it ends
            external = body.get("external_task_id")
            if self.drops_external_id:  # a gateway that never passes it on: no echo, no uniqueness
                body = {k: v for k, v in body.items() if k != "external_task_id"}
                external = None
            if external is not None:
                if (account, external) in self._external_ids:
                    return 400, _kling_error(1201, f"external_task_id {external} already exists")
            task_id = str(next(self._ids))
            prompt = body.get("prompt", "")
            doomed = self.moderation_message if self.moderation_marker and self.moderation_marker in prompt else ""
            task = FakeTask(task_id=task_id, request=body, account=account, created_mono=self.now(),
                            created_ms=_now_ms(), submitted_seconds=self.submitted_seconds,
                            processing_seconds=self.processing_seconds, will_fail=doomed)
            task.token = self._mint_token(task_id)
            self._tasks[task_id] = task
            if external is not None:
                self._external_ids[(account, external)] = task_id
            self._changed.notify_all()
        if self.create_delay:
            self._release.wait(self.create_delay)
        if fault and fault[0] == "after":
            return fault[1], _kling_error(fault[2], _KLING_MESSAGES.get(fault[2], "server error"))
        data = {"task_id": task_id, "task_info": _task_info(task), "task_status": "submitted",
                "created_at": task.created_ms, "updated_at": task.created_ms}
        if self.create_shape == "task_id":
            return self.create_status, {"code": 0, "message": "", "task_id": task_id}
        if self.create_shape == "id":
            return self.create_status, {"id": task_id, "object": "video", "status": "queued",
                                        "created_at": task.created_ms // 1000}
        return self.create_status, {"code": 0, "message": "SUCCEED", "request_id": _request_id(), "data": data}

    def _refuse_model(self, body: dict) -> Optional[tuple]:
        """The answer of a route that does not serve the body's model (see refuse_v3), else None."""
        if not self.refuse_v3 or body.get("model_name") != V3_MODEL:
            return None
        if self.refuse_v3 == "gateway":  # the gateway finds no channel for the model and relays nothing
            return 503, _comet_error(f"No available channel for model {V3_MODEL} under group default",
                                     "model_not_found")
        return 400, _kling_error(1201, f"model_name {V3_MODEL} is not supported")

    def _refuse(self, status: int, code: int) -> tuple:
        """A creation refused before anything was made (called with the lock held)."""
        if status == 429:
            self.refused_creates.append(time.monotonic())
            self._changed.notify_all()
        return status, _kling_error(code, _KLING_MESSAGES.get(code, "rejected")), self._retry_after(status)

    def _retry_after(self, status: int) -> dict:
        return {"Retry-After": "%g" % self.retry_after} if status == 429 and self.retry_after is not None else {}

    def _query(self, task_id: str) -> tuple:
        """(HTTP status, JSON body[, extra headers]) of a status query."""
        with self._lock:
            if self._status_faults:
                status = self._status_faults.pop(0)
                code = 1303 if status == 429 else {500: 5000, 503: 5001, 504: 5002}.get(status, 5000)
                return status, _kling_error(code, _KLING_MESSAGES.get(code, "server error")), self._retry_after(status)
            task = self._tasks.get(task_id)
            if task is None and self.query_by_external_id:
                # Kling answers a query by the caller's external_task_id too (contract §5; K1).
                task = self._tasks.get(self._external_ids.get((self.key, task_id), ""))
            if task is None:
                return 404, _kling_error(1203, f"task {task_id} does not exist")
            kling = self._kling_task(task)
            progress = self._state(task)[2]
            ended = self._ended(task)
            variant = self.variant
        if self.status_delay:
            self._release.wait(self.status_delay)
        envelope = {"code": 0, "message": "success", "request_id": _request_id(), "data": kling}
        if variant == "A":
            return 200, envelope
        status = kling["task_status"]
        wrapper = {
            "task_id": task_id, "notify_hook": "", "action": "OMNI_VIDEO",
            "status": {"submitted": "SUBMITTED", "processing": "IN_PROGRESS",
                       "succeed": "SUCCESS", "failed": "FAILURE"}.get(status, status.upper()),
            "fail_reason": kling["task_status_msg"] if ended and status != "succeed" else "",
            "submit_time": kling["created_at"] // 1000,
            "start_time": kling["created_at"] // 1000 if status != "submitted" else 0,
            "finish_time": kling["updated_at"] // 1000 if ended else 0,
            "progress": "%d%%" % round(progress * 100),
            "data": kling if variant == "B" else envelope,
        }
        return 200, {"code": "success", "message": "", "data": wrapper}

    def _kling_task(self, task: FakeTask) -> dict:
        status, message, _ = self._state(task)
        if task.forced_at_ms:
            updated = task.forced_at_ms
        else:
            updated = task.created_ms + int(1000 * max(0.0, self.now() - task.created_mono))
        out = {"task_id": task.task_id, "task_status": status, "task_status_msg": message,
               "task_info": _task_info(task), "task_result": {},
               "created_at": task.created_ms, "updated_at": updated}
        if self._has_video(task):
            url = (self.result_url or self.files_base_url + "/videos/{token}.mp4").format(token=task.token)
            seconds = self.result_clip(task).duration
            video = {"id": task.video_id, "url": url, "duration": str(round(seconds, 3))}
            watermark = task.request.get("watermark_info") or {}
            if isinstance(watermark, dict) and watermark.get("enabled"):
                video["watermark_url"] = url + "?watermark=1"
            out["task_result"] = {"videos": [] if self.succeed_without_video else [video]}
            out["final_unit_deduction"] = "%g" % round(_units_per_second(task.request) * seconds, 3)
            out["watermark_info"] = {"enabled": bool(isinstance(watermark, dict) and watermark.get("enabled"))}
        return out

    def _mint_token(self, task_id: str) -> str:
        token = uuid.uuid4().hex
        self._tokens[token] = (task_id, False)
        return token

    def _file(self, token: str) -> tuple[str, Optional[Path], float, str]:
        """("ok", path, cut, broken) / ("expired", None, 0, "") / ("missing", None, 0, "").

        cut: the fraction to send before hanging up (0 = all); broken: a break_next_files kind or "".
        """
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None:
                return "missing", None, 0.0, ""
            task_id, expired = entry
            if expired or self.files_forbidden:
                return "expired", None, 0.0, ""
            if not self._has_video(self._tasks[task_id]):
                return "missing", None, 0.0, ""
            broken = self._broken.pop(0) if self._broken else ""
            cut = self._cuts.pop(0) if self._cuts and not broken else 0.0
            clip = self.result_clip(self._tasks[task_id])
        if self.clip_writer is not None:
            return "ok", self._written_clip(task_id, clip), cut, broken
        return "ok", _clip_path(clip), cut, broken

    def _written_clip(self, task_id: str, clip: Clip) -> Path:
        """The MP4 `clip_writer` wrote of this task's clip: written on the first request for it."""
        with self._lock:
            request = json.loads(json.dumps(self._tasks[task_id].request))  # a copy the writer may keep
            lock = self._writing.setdefault(task_id, threading.Lock())
            if self._written_dir is None:
                self._written_dir = Path(tempfile.mkdtemp(prefix="fake_cometapi_written_"))
                atexit.register(shutil.rmtree, self._written_dir, True)
        with lock:  # one task's clip at a time; other tasks and every other request go on
            if task_id not in self._written:
                path = self._written_dir / f"kling_{task_id}.mp4"
                self.clip_writer(request, clip, path)
                self._written[task_id] = path
            return self._written[task_id]

    def result_clip(self, task: FakeTask) -> Clip:
        """The result video of a task: the fixed video_* clip, or (follow_request) the one its request asks for.

        Following the request: the requested duration (default 5 s; a multi-shot task's shots add up to it)
        at 24 fps, 1080p for pro and 720p for std in the requested aspect ratio (16:9 when none is sent,
        e.g. for a first frame), with audio when sound is on or the input video's sound is kept. A base
        edit keeps the fixed length and size: its length follows an input video the fake never sees.
        Either way a task with sound on gets its audio track, and a customized multi-shot task shows
        its shot numbers in the frames (in the proportions of its shots when the clip is fixed).
        """
        request = task.request
        videos = request.get("video_list") or []
        sound = request.get("sound") == "on"
        kept_sound = any(video.get("keep_original_sound") == "yes" for video in videos)
        base_edit = any(video.get("refer_type", "base") == "base" for video in videos)
        shots = ()
        if _multi_shot(request) == "customize":  # with "intelligence" Kling cuts where it likes: one shot here
            shots = tuple(int(shot["duration"]) for shot in request["multi_prompt"])
        if not self.follow_request:
            width, height = self.video_size
            return Clip(float(self.video_seconds), int(self.video_fps), int(width), int(height),
                        self.video_audio or sound, shots)
        if base_edit:
            width, height = self.video_size
            return Clip(float(self.video_seconds), int(self.video_fps), int(width), int(height), kept_sound)
        seconds = _whole_seconds(request.get("duration", DEFAULT_DURATION), ints=True)
        short = RESOLUTIONS[request.get("mode", "pro")]
        long = short * 16 // 9
        width, height = {"16:9": (long, short), "9:16": (short, long), "1:1": (short, short)}[
            request.get("aspect_ratio", "16:9")]
        return Clip(float(seconds), RESULT_FPS, width, height, sound or kept_sound, shots)

    # --- validation: contract §4.1, §4.2, §15 -------------------------------------------------

    def _validate(self, body: dict) -> str:
        model = body.get("model_name", O1_MODEL)
        if not _one_of(model, MODELS):
            return f"model_name {model!r} is not supported; use {O1_MODEL} or {V3_MODEL}"
        v3 = model == V3_MODEL
        if not v3:
            for name in V3_ONLY_FIELDS:
                if name in body:
                    return f"{name} is not supported by {model} (got {body[name]!r}); only {V3_MODEL} takes it"
        problem = self._check_v3_fields(body) if v3 else ""
        if problem:
            return problem
        shots = _multi_shot(body)
        prompt = body.get("prompt")
        if shots == "customize":  # the shots carry the prompts: the task's own is ignored
            if prompt is not None and not isinstance(prompt, str):
                return f"prompt must be a string, got {prompt!r}"
        elif not isinstance(prompt, str) or not prompt:
            return "prompt is required"
        if prompt and len(prompt) > MAX_PROMPT:
            return f"prompt must be at most {MAX_PROMPT} characters, got {len(prompt)}"
        mode = body.get("mode", "pro")
        if not _one_of(mode, MODES):
            return f"mode must be one of std, pro; got {mode!r}"
        aspect = body.get("aspect_ratio")
        if aspect is not None and not _one_of(aspect, ASPECT_RATIOS):
            return f"aspect_ratio must be one of 16:9, 9:16, 1:1; got {aspect!r}"

        images = body.get("image_list") or []
        elements = body.get("element_list") or []
        videos = body.get("video_list") or []
        for name, value in (("image_list", images), ("element_list", elements), ("video_list", videos)):
            if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
                return f"{name} must be an array of objects"
        if len(videos) > 1:
            return f"video_list supports at most 1 video, got {len(videos)}"
        limit = 4 if videos else 7
        if len(images) + len(elements) > limit:
            return (f"image_list plus element_list must hold at most {limit} items"
                    f"{' when video_list is used' if videos else ''}, got {len(images) + len(elements)}")
        types = []
        for i, image in enumerate(images, 1):
            problem = self._check_image(image, i)
            if problem:
                return problem
            types.append(image.get("type"))
        if types.count("first_frame") > 1 or types.count("end_frame") > 1:
            return "image_list may hold at most one first_frame and one end_frame"
        if "end_frame" in types and "first_frame" not in types:
            return "end_frame requires a first_frame"
        if "end_frame" in types and len(images) > 2:
            return "end_frame is not supported when image_list holds more than 2 images"
        for element in elements:
            eid = element.get("element_id")
            if isinstance(eid, bool) or not isinstance(eid, int) or eid <= 0:
                return f"element_id must be a positive integer, got {eid!r}"
        base_edit = False
        for video in videos:
            url = video.get("video_url")
            if not isinstance(url, str) or not re.match(r"https?://", url):
                return "video_url must be an http(s) URL"
            refer = video.get("refer_type", "base")
            if not _one_of(refer, REFER_TYPES):
                return f"refer_type must be feature or base, got {refer!r}"
            keep = video.get("keep_original_sound", "no")
            if not _one_of(keep, YES_NO):
                return f"keep_original_sound must be yes or no, got {keep!r}"
            base_edit = refer == "base"
        if base_edit and ("first_frame" in types or "end_frame" in types):
            return "first_frame/end_frame cannot be combined with a base video edit"

        external = body.get("external_task_id")
        if external is not None and (not isinstance(external, str) or not external):
            return "external_task_id must be a non-empty string"
        callback = body.get("callback_url")
        if callback is not None and not isinstance(callback, str):
            return "callback_url must be a string"

        if "duration" in body and not base_edit:  # a base edit's length follows its input video
            raw = body["duration"]
            seconds = _whole_seconds(raw, ints=True)
            if seconds is None:
                return f"duration must be a whole number of seconds as a string, got {raw!r}"
            if not 3 <= seconds <= MAX_DURATION[model]:
                return f"duration must be between 3 and {MAX_DURATION[model]} for {model}, got {raw!r}"
            text_only = not images and not elements and not videos
            first_only = types == ["first_frame"] and not elements and not videos
            if not v3 and self.strict_durations and (text_only or first_only) and seconds not in (5, 10):
                scenario = "text-to-video" if text_only else "first-frame video"
                return f"duration must be 5 or 10 for {scenario}, got {raw!r}"

        # kling-v3-omni rules that join several fields (§12.1; ComfyUI's stricter ones for shots)
        if videos and body.get("sound", "off") != "off":
            return f"sound must be off when video_list is used, got {body['sound']!r}"
        if shots and "end_frame" in types:
            return "multi_shot cannot be combined with an end_frame"
        if shots and base_edit:
            return "multi_shot cannot be combined with a base video edit (its length follows the input video)"
        if shots == "customize":
            lengths = [int(shot["duration"]) for shot in body["multi_prompt"]]
            total = _whole_seconds(body.get("duration", DEFAULT_DURATION), ints=True)
            if sum(lengths) != total:
                return (f"the multi_prompt durations must add up to the duration {total}, "
                        f"got {'+'.join(map(str, lengths))} = {sum(lengths)}")
        return ""

    def _check_v3_fields(self, body: dict) -> str:
        """The shape of each field only kling-v3-omni takes (§12.1); rules across fields come later."""
        sound = body.get("sound", "off")
        if not _one_of(sound, SOUNDS):
            return f"sound must be on or off, got {sound!r}"
        multi_shot = body.get("multi_shot", False)
        if not isinstance(multi_shot, bool):
            return f"multi_shot must be a boolean, got {multi_shot!r}"
        if not multi_shot:
            return ""  # shot_type and multi_prompt are ignored without multi_shot (§12.1)
        shot_type = body.get("shot_type")
        if not _one_of(shot_type, SHOT_TYPES):
            return f"shot_type must be customize or intelligence when multi_shot is true, got {shot_type!r}"
        if shot_type != "customize":
            return ""  # intelligence: Kling cuts the prompt into shots itself
        shots = body.get("multi_prompt")
        if not isinstance(shots, list) or not 1 <= len(shots) <= MAX_SHOTS:
            got = f"{len(shots)} shots" if isinstance(shots, list) else repr(shots)
            return f"multi_prompt must be an array of 1 to {MAX_SHOTS} shots for shot_type customize, got {got}"
        for number, shot in enumerate(shots, 1):
            if not isinstance(shot, dict):
                return f"multi_prompt shot {number} must be an object, got {shot!r}"
            index = shot.get("index")
            if isinstance(index, bool) or index != number:
                return f"multi_prompt shot {number}: index must be {number} (1-based, in order), got {index!r}"
            text = shot.get("prompt")
            if not isinstance(text, str) or not 1 <= len(text) <= MAX_SHOT_PROMPT:
                got = f"{len(text)} characters" if isinstance(text, str) else repr(text)
                return f"multi_prompt shot {number}: prompt must be 1 to {MAX_SHOT_PROMPT} characters, got {got}"
            seconds = _whole_seconds(shot.get("duration"), ints=False)
            if seconds is None or seconds < 1:
                return (f"multi_prompt shot {number}: duration must be a whole number of seconds of at least 1 "
                        f"as a string, got {shot.get('duration')!r}")
        return ""

    def _check_image(self, image: dict, index: int) -> str:
        url = image.get("image_url")
        if not isinstance(url, str) or not url:
            return f"image_list[{index}].image_url must be a non-empty string"
        kind = image.get("type")
        if kind is not None and kind not in IMAGE_TYPES:
            return f"image_list[{index}].type must be first_frame or end_frame, got {kind!r}"
        if re.match(r"https?://", url):
            return ""
        if url.startswith("data:"):
            return f"image_list[{index}].image_url must be raw Base64 without a data: prefix"
        try:
            data = base64.b64decode(url, validate=True)
        except (binascii.Error, ValueError):
            return f"image_list[{index}].image_url is neither a URL nor valid Base64"
        if len(data) > MAX_IMAGE_BYTES:
            return f"image_list[{index}] is {len(data)} bytes; the limit is 10 MB"
        if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
            return f"image_list[{index}] must be a JPG or PNG image"
        if self.check_image_pixels:
            from PIL import Image

            try:
                with Image.open(io.BytesIO(data)) as img:
                    width, height = img.size
            except Exception:
                return f"image_list[{index}] could not be decoded as an image"
            if width < 300 or height < 300:
                return f"image_list[{index}] is {width}x{height}; width and height must be at least 300 px"
            if not (1 / 2.5 <= width / height <= 2.5):
                return f"image_list[{index}] aspect ratio {width}:{height} is outside 1:2.5..2.5:1"
        return ""


# --- bodies --------------------------------------------------------------------------------

_KLING_MESSAGES = {
    1303: "parallel task over resource pack limit",
    1302: "request rate too fast",
    5000: "server internal error",
    5001: "service temporarily unavailable",
    5002: "server internal timeout",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _request_id() -> str:
    return str(uuid.uuid4())


def _kling_error(code: int, message: str) -> dict:
    return {"code": code, "message": message, "request_id": _request_id()}


def _comet_error(message: str, code: str, kind: str = "comet_api_error") -> dict:
    return {"error": {"message": f"{message} (request id: {_request_id()})", "type": kind,
                      "param": "", "code": code}}


def _units_per_second(request: dict) -> float:
    """What Kling bills per generated second, in units of $0.14 (§9, §12.2)."""
    pro = request.get("mode", "pro") == "pro"
    if request.get("model_name") != V3_MODEL:
        return 0.8 if pro else 0.6  # O1 as the fake has always billed it (its video-input rate is not modelled)
    if request.get("sound") == "on":
        return 1.0 if pro else 0.8
    if request.get("video_list"):
        return 1.2 if pro else 0.9
    return 0.8 if pro else 0.6


def _task_info(task: FakeTask) -> dict:
    external = task.request.get("external_task_id")
    return {"external_task_id": external} if external is not None else {}


def _one_of(value, allowed) -> bool:
    """value is one of the allowed words (a list or an object in its place is not, and no crash)."""
    return isinstance(value, str) and value in allowed


def _whole_seconds(raw, *, ints: bool) -> Optional[int]:
    """A duration given as a string of ASCII digits (or, with ints, a JSON integer); None otherwise."""
    if ints and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"[0-9]+", raw):
        return int(raw)
    return None


def _multi_shot(body: dict) -> str:
    """The shot type of a valid multi-shot request ("customize" / "intelligence"); "" for one shot."""
    return body.get("shot_type", "") if body.get("multi_shot") is True else ""


# --- HTTP handlers ---------------------------------------------------------------------------

class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client gave up (timeout test) or hung up: expected, not worth a traceback
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeCometAPI/1.0"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    @property
    def fake(self) -> FakeCometAPI:
        return self.server.fake

    def _recorded(self) -> Recorded:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        return Recorded(self.command, self.path, dict(self.headers.items()), body, raw)

    def _send_json(self, status: int, body: dict, headers: Optional[dict] = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_html(self, status: int, text: str, location: str = "") -> None:
        data = f"<html><head><title>{status}</title></head><body><h1>{text}</h1></body></html>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)


class _ApiHandler(_Handler):
    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        rec = self._recorded()
        path = rec.path.split("?", 1)[0]
        if path.startswith("/_fake/"):  # the remote control: not the API, not recorded
            self._send_json(*self._control(rec.method, path, rec.body))
            return
        self.fake._record(rec)
        if path.startswith("/moved/"):  # a wrong base URL that redirects, as CometAPI's web host does
            self._send_html(301, "Moved Permanently", location=path[len("/moved"):])
            return
        is_create = rec.method == "POST" and path == API_PATH
        is_query = rec.method == "GET" and path.startswith(API_PATH + "/") and path.count("/") == 5
        if not (is_create or is_query):
            self._send_html(404, "Not Found")  # wrong path or base: HTML, not JSON
            return
        refused = self.fake._auth(rec)
        if refused:
            self._send_json(*refused)
            return
        if is_create:
            self._send_json(*self.fake._create(rec))
        else:
            self._send_json(*self.fake._query(path.rsplit("/", 1)[1]))

    # --- remote control (see the module docstring) -------------------------------------------

    CONTROL_CALLS = {"fail_next_create_after_commit", "reject_next_create", "status_storm", "cut_next_downloads",
                     "break_next_files", "next_task_ids", "expire_urls", "release_delays", "finish",
                     "set_status", "advance", "clear_records"}
    CONTROL_OPTIONS = {"create_status", "max_in_flight", "retry_after", "create_shape", "variant",
                       "submitted_seconds", "processing_seconds", "query_by_external_id", "drops_external_id",
                       "succeed_without_video", "files_forbidden", "file_stall", "create_delay", "status_delay",
                       "file_framing", "file_encoding", "file_status", "file_trickle", "result_url",
                       "refuse_v3", "follow_request"}

    def _control(self, method: str, path: str, body) -> tuple:
        fake = self.fake
        if method == "GET" and path == "/_fake/state":
            with fake._lock:
                tasks = [{"task_id": t.task_id, "status": fake._state(t)[0], "prompt": t.request.get("prompt", ""),
                          "external_task_id": t.request.get("external_task_id"),
                          "model_name": t.request.get("model_name", O1_MODEL)} for t in fake._tasks.values()]
                files = [{"task_id": fake._tokens.get(r.path.split("/")[-1].split(".")[0], ("",))[0],
                          "range": r.header("Range"), "authorization": r.header("Authorization") is not None}
                         for r in fake._file_requests]
                return 200, {"tasks": tasks, "created": len(tasks), "refused_creates": len(fake.refused_creates),
                             "creation_requests": sum(1 for r in fake._requests
                                                      if r.method == "POST" and r.path == API_PATH),
                             "status_queries": sum(1 for r in fake._requests
                                                   if r.method == "GET" and r.path.startswith(API_PATH + "/")),
                             "file_requests": files}
        if method != "POST" or path != "/_fake/control" or not isinstance(body, dict):
            return 404, {"error": "GET /_fake/state, or POST /_fake/control with a JSON object"}
        try:
            if "set" in body:
                unknown = set(body["set"]) - self.CONTROL_OPTIONS
                if unknown:
                    return 400, {"error": f"not a settable option: {sorted(unknown)}"}
                with fake._changed:
                    for name, value in body["set"].items():
                        setattr(fake, name, tuple(value) if isinstance(value, list) else value)
                    fake._changed.notify_all()
            else:
                name = body.get("call")
                if name not in self.CONTROL_CALLS:
                    return 400, {"error": f"not a callable fault: {name!r}"}
                getattr(fake, name)(*body.get("args", []), **body.get("kwargs", {}))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            return 400, {"error": f"{type(exc).__name__}: {exc}"}
        return 200, {"ok": True}


class _FileHandler(_Handler):
    """The result-file host. By default a well-behaved CDN: HTTP/1.0, Content-Length, Range.

    The FakeCometAPI attributes file_framing / file_encoding / file_status / file_trickle and
    the queues of cut_next_downloads / break_next_files make it answer like other hosts.
    """

    def do_GET(self) -> None:
        rec = self._recorded()
        self.fake._record(rec, files=True)
        match = re.fullmatch(r"/videos/([0-9a-f]+)\.mp4", rec.path.split("?", 1)[0])
        verdict, path, cut, broken = self.fake._file(match.group(1)) if match else ("missing", None, 0.0, "")
        if verdict == "expired":
            body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
            self.send_response(403)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if verdict != "ok":
            self._send_html(404, "Not Found")
            return
        data = path.read_bytes()
        if broken:
            self._send_broken(broken, data)
            return
        fake = self.fake
        size = len(data)
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", (rec.header("Range") or "").strip())
        if ranged and not fake.file_encoding:  # like most CDNs, a compressed answer is always whole
            start = int(ranged.group(1))
            end = int(ranged.group(2)) if ranged.group(2) else size - 1
            if start >= size or end < start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            end = min(end, size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            part = data[start:end + 1]
        else:
            self._start(fake.file_status)
            part = data
        if fake.file_encoding == "gzip":
            part = gzip.compress(part, compresslevel=1)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        if fake.file_framing != "chunked":
            self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if cut:
            # announce everything, deliver a part, hang up: a connection broken mid-download
            self._write(part[: int(len(part) * cut)])
            self.wfile.flush()
            self.close_connection = True
            return
        if fake.file_stall:
            self._write(part[: len(part) // 2])
            self.wfile.flush()
            fake._release.wait(fake.file_stall)
            part = part[len(part) // 2:]
        if fake.file_trickle:
            step, every = fake.file_trickle
            while part and not fake._release.is_set():  # released (or stopped): the rest at once
                self._write(part[:step])
                self.wfile.flush()
                part = part[step:]
                fake._release.wait(every)
        self._write(part)
        self._end()

    def _start(self, status: int) -> None:
        if self.fake.file_framing == "chunked":
            self.protocol_version = "HTTP/1.1"  # chunked framing exists only in HTTP/1.1
            self.send_response(status)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
        else:
            self.send_response(status)

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self.protocol_version == "HTTP/1.1":
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.wfile.write(data)

    def _end(self) -> None:
        if self.protocol_version == "HTTP/1.1":
            self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _send_broken(self, kind: str, data: bytes) -> None:
        """A 200 whose body is not the video; see FakeCometAPI.break_next_files."""
        if kind == "html":
            self._send_html(200, "502 Bad Gateway: the origin did not answer")
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        if kind == "empty":
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.end_headers()  # "cut": no length, so the end of the body is the end of the connection
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
