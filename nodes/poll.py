"""CometOmniPoll: wait for a task, keep its MP4, and bring frames, audio and video back."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

import torch

from ..kling_omni.collect import collect_video
from ..kling_omni.errors import DecodeCancelled, DownloadCancelled, InputError, WaitCancelled, WaitStopped
from ..kling_omni.task import OmniTask, check_task_id
from ..kling_omni.turns import Turns
from ..kling_omni.video import SILENT_SAMPLE_RATE, FrameSelection, decode_video
from . import bridge
from .runtime import CATEGORY, journal, make_client, poll_interval

log = logging.getLogger("cometapi_omni")
NODE = "CometOmniPoll"
FRAMES, AUDIO = 0, 1  # output indexes
# Polls mapped over N variations wait and download together but decode in turns, as many at once as
# there are cores. Measured on 2 cores (bench/batch.py --decode-turns): 4 or 8 clips, small or 1080p,
# took 0.64-0.88x the time two at a time than one at a time in three cases of four (1.12x in the
# fourth), and peak memory was the same, 1.02x the output tensors.
DECODES = Turns(os.cpu_count() or 1)


def linked_outputs(prompt: dict | None, node_id) -> set | None:
    """Indexes of this node's outputs that some node consumes; None when unknown."""
    if not prompt or node_id is None:
        return None
    linked = set()
    for node in prompt.values():
        for value in (node.get("inputs") or {}).values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == str(node_id):
                linked.add(int(value[1]))
    return linked


class Status:
    """Status text on the node and ComfyUI's progress bar, at most a few times a second."""

    def __init__(self, node_id, task_id: str):
        self.node_id = node_id
        self.task_id = task_id
        self.bar = None
        self._last = 0.0

    def say(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= 0.25:
            self._last = now
            bridge.progress_text(self.node_id, f"{text}\ntask {self.task_id}")

    def waiting(self, state, elapsed: float) -> None:
        extra = f" {state.progress:.0f}%" if state.progress is not None else ""
        word = state.status if state.known else state.raw_status  # a word the pack does not know, as is
        self.say(f"{word}{extra} · {elapsed:.0f} s")

    def _progress(self, verb: str, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = bridge.progress_bar(self.node_id, total)
        if self.bar is not None:
            self.bar.update(done, total)
        self.say(f"{verb} {100 * done / total:.0f}%")

    def downloading(self, done: int, total: int | None) -> None:
        if total:
            self._progress("downloading", done, total)
        else:  # streamed without a length: bytes so far, and no bar that would pretend to know
            self.say(f"downloading {done / 1e6:.1f} MB")

    def decoding(self, done: int, total: int) -> None:
        self._progress("decoding", done, max(total, 1))


class CometOmniPoll:
    DESCRIPTION = ("Waits for a task (from Submit, or any task id of your account), saves the MP4 in "
                   "ComfyUI's output folder and returns its frames, audio and video. Cancel stops the wait, "
                   "not the task: collect it later by id. Outputs nobody uses are not decoded. "
                   "A 15 s 1080p clip is 360 frames, 8.96 GB as float32: max_side, every_nth and "
                   "max_frames make it smaller before it is decoded.")
    CATEGORY = CATEGORY
    OUTPUT_NODE = True  # it keeps the paid video on disk, so it always runs
    RETURN_TYPES = ("IMAGE", "AUDIO", "VIDEO", "FLOAT", "STRING", "STRING")
    RETURN_NAMES = ("frames", "audio", "video", "fps", "task_id", "video_url")
    OUTPUT_TOOLTIPS = ("The decoded frames (after start_seconds, every_nth, max_frames and max_side).",
                       "The clip's sound (silence when it has none), cut like the frames.",
                       "The saved MP4, for Save Video or Get Video Components.",
                       "Frames per second of the frames output (divided by every_nth).",
                       "The task's id: paste it into task_id to collect the video again.",
                       "The video's URL at Kling (it expires; the saved MP4 stays).")
    FUNCTION = "poll"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {},
            "optional": {
                "task": ("OMNI_TASK", {"tooltip": "From CometOmniSubmit."}),
                "task_id": ("STRING", {"default": "", "tooltip": "Or collect any existing task by its id."}),
                "timeout_minutes": ("INT", {"default": 30, "min": 1, "max": 24 * 60,
                                            "tooltip": "Stop waiting (and downloading) after this long; the task "
                                                       "keeps running and can be collected later by id."}),
                "max_frames": ("INT", {"default": 0, "min": 0, "max": 100000,
                                       "tooltip": "0 = all frames. Otherwise decoding stops after this "
                                                  "many. A 1080p frame is 24.9 MB as float32: 48 frames "
                                                  "are 1.19 GB, a whole 15 s clip (360) 8.96 GB."}),
                "every_nth": ("INT", {"default": 1, "min": 1, "max": 1000,
                                      "tooltip": "Keep one frame in N; fps is divided accordingly. 2 "
                                                 "halves the memory: a 15 s 1080p clip is 4.48 GB "
                                                 "instead of 8.96 GB."}),
                "start_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 3600.0, "step": 0.01,
                                            "tooltip": "Skip the start of the clip (audio is cut to match)."}),
                "max_side": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                                     "tooltip": "0 = original size. Otherwise frames are resized while "
                                                "decoding so the longer side is at most this. 960 turns "
                                                "1920x1080 into 960x540, a quarter of the memory: a 15 s "
                                                "clip is 2.24 GB instead of 8.96 GB."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"},
        }

    @classmethod
    def IS_CHANGED(cls, unique_id=None, prompt=None, **_):
        # Linking the frames or audio output later must re-run this node (it skipped them);
        # IS_CHANGED gets no PROMPT, so the bridge reads the running one.
        linked = linked_outputs(prompt or bridge.running_prompt(), unique_id)
        return "all" if linked is None else ",".join(str(i) for i in sorted(linked))

    async def poll(self, task=None, task_id="", timeout_minutes=30, max_frames=0, every_nth=1,
                   start_seconds=0.0, max_side=0, unique_id=None, prompt=None):
        tid = task.task_id if isinstance(task, OmniTask) else str(task_id or "").strip()
        if not tid:
            raise InputError(NODE, "task / task_id", "nothing",
                             "connect the task output of a CometOmniSubmit node, or type an existing task id")
        check_task_id(tid, NODE, "task" if isinstance(task, OmniTask) else "task_id")
        selection = FrameSelection(max_frames=max_frames, every_nth=every_nth,
                                   start_seconds=start_seconds, max_side=max_side)
        selection.validate()
        linked = linked_outputs(prompt, unique_id)
        status = Status(unique_id, tid)
        status.say("checking", force=True)
        try:
            collected = await collect_video(
                tid, journal(), make_client, bridge.output_dir(), timeout=timeout_minutes * 60.0,
                interval=poll_interval(), on_update=status.waiting, on_download=status.downloading,
                should_stop=bridge.interrupted, on_notice=lambda text: status.say(text, force=True))
            decoded = await _decode_in_turn(collected.path, selection, status,
                                            want_frames=linked is None or FRAMES in linked,
                                            want_audio=linked is None or AUDIO in linked)
        except WaitStopped as exc:
            status.say(str(exc), force=True)
            log.warning("%s", exc)
            if isinstance(exc, WaitCancelled):
                raise bridge.interrupt_error(exc) from exc
            raise
        except (DownloadCancelled, DecodeCancelled) as exc:
            # Cancel after the task finished: the video is paid for and not lost.
            message = f"{exc} Task {tid} is finished and paid: queue again, or put {tid} in a Poll task_id, to get it."
            status.say(message, force=True)
            log.warning("%s", message)
            raise bridge.interrupt_error(type(exc)(message)) from exc
        status.say("done" + (" (from disk, nothing paid or downloaded)" if collected.from_disk else ""), force=True)
        frames = decoded.frames if decoded.frames is not None else torch.zeros((1, 1, 1, 3))
        audio = decoded.audio if decoded.audio is not None else {"waveform": torch.zeros((1, 1, 1)),
                                                                 "sample_rate": SILENT_SAMPLE_RATE}
        ui = {"images": [{"filename": collected.path.name, "subfolder": bridge.SUBFOLDER, "type": "output"}],
              "animated": [True], "task_id": [tid]}
        result = (frames, audio, bridge.video_output(collected.path), float(decoded.fps), tid, collected.video_url)
        return {"ui": ui, "result": result}


async def _decode_in_turn(path, selection: FrameSelection, status: Status, *, want_frames: bool, want_audio: bool):
    """decode_video once a decoding turn is free (Cancel ends the wait for one)."""
    if not await DECODES.take(should_stop=bridge.interrupted,
                              on_wait=lambda: status.say(f"downloaded · waiting for its turn to decode "
                                                         f"({DECODES.size} at once)", force=True)):
        raise DecodeCancelled("Decoding stopped: cancelled before it started.")

    # Whoever claims the turn hands it back: the thread once it runs, or this coroutine if it is
    # cancelled before the thread ever started (the job then never runs, and must not hold a turn).
    claimed = threading.Lock()

    def decode():
        if not claimed.acquire(blocking=False):
            return None  # the caller is gone and gave the turn back
        try:
            return decode_video(path, selection, want_frames=want_frames, want_audio=want_audio,
                                on_progress=status.decoding, should_stop=bridge.interrupted)
        finally:
            DECODES.give()  # from the thread: a decode left running after its caller is gone still holds its turn

    try:
        return await asyncio.to_thread(decode)
    finally:
        if claimed.acquire(blocking=False):
            DECODES.give()
