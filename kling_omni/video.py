"""Decode the downloaded MP4 into ComfyUI IMAGE frames and AUDIO, cheaply.

A 10 s 1080p clip is 240 frames, about 6 GB as float32. The usual way (decode each frame
to its own float tensor, then `torch.stack`) holds that twice. Here:

- frames go straight into ONE preallocated float32 tensor [N, H, W, 3]; each frame is
  converted from uint8 RGB with one multiply into its slot, and at most a few uint8 frames
  wait in between, so the peak is the result plus a few frames;
- the frame selection (start, every n-th / target fps, max frames, max side) is applied
  while decoding: skipped frames are never converted to RGB, resizing happens in swscale
  on the way to RGB, and decoding stops as soon as the last wanted frame is out;
- one cached swscale context (PyAV's `frame.to_ndarray()` builds a new one per frame,
  which costs 10x the conversion itself) and FFmpeg's frame-threaded H.264 decoding;
- decoding and filling the output run side by side: the calling thread decodes while a
  second thread converts finished frames into the tensor (and takes the page faults of
  its fresh memory), through a queue of a few frames;
- outputs nobody wants cost nothing: `want_frames=False` never decodes a video packet,
  `want_audio=False` never decodes an audio packet.

Audio rule: the waveform starts at the time of the first returned frame (`start_seconds`
rounded up to the next frame) and lasts `len(frames) / fps` seconds at the returned fps,
i.e. exactly as long as the frames play, so CreateVideo(frames, audio, fps) stays in
sync. Where the track is shorter it is padded with silence; a clip without audio gets a
silent track of that length (48 kHz stereo, the video-standard rate). With
want_frames=False the number of frames is taken from the container's frame count.
"""

from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from .errors import DecodeCancelled, DecodeError, InputError

NODE = "CometOmniPoll"
SILENT_SAMPLE_RATE = 48000
SILENT_CHANNELS = 2
# Downscaling filter: an area average is alias-free when shrinking and ~3x cheaper in
# swscale than Lanczos/bicubic at 1080p (which would dominate a selective decode).
RESIZE_FILTER = "AREA"
AUDIO_PREROLL_SECONDS = 0.2
_INV255 = np.float32(1.0 / 255.0)  # 255 * this rounds to exactly 1.0 in float32
# Frames decoded but not yet converted: enough to ride out the jitter between the two
# threads, few enough to cost nothing next to the output (a 1080p RGB frame is 6 MB).
PIPELINE_FRAMES = 4

Progress = Callable[[int, int], None]
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class FrameSelection:
    """Which frames to return. The defaults return every frame at full size.

    max_frames: 0 = all, else stop after this many returned frames.
    every_nth: keep frame 0, n, 2n, ... (counted from the first returned frame).
    start_seconds: skip frames before this time (the first kept frame is the first at or after it).
    max_side: 0 = original size, else shrink (keeping aspect) so the longer side is at most this.
    target_fps: 0 = off, else keep frames so that they play at this rate (never above the source).
    every_nth and target_fps are two ways to say the same thing: set one, not both.
    """

    max_frames: int = 0
    every_nth: int = 1
    start_seconds: float = 0.0
    max_side: int = 0
    target_fps: float = 0.0

    def validate(self) -> "FrameSelection":
        def bad(name, problem):
            raise InputError(NODE, name, getattr(self, name), problem)

        for name in ("max_frames", "every_nth", "max_side"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                bad(name, "must be a whole number")
        for name in ("start_seconds", "target_fps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                bad(name, "must be a finite number")
        if self.max_frames < 0:
            bad("max_frames", "must be 0 (all frames) or more")
        if self.every_nth < 1:
            bad("every_nth", "must be 1 (every frame) or more")
        if self.start_seconds < 0:
            bad("start_seconds", "must be 0 or more")
        if self.max_side < 0 or 0 < self.max_side < 16:
            bad("max_side", "must be 0 (original size) or at least 16 pixels")
        if self.target_fps < 0:
            bad("target_fps", "must be 0 (off) or more")
        if self.every_nth > 1 and self.target_fps > 0:
            bad("target_fps", f"cannot be combined with every_nth={self.every_nth}; set one of them")
        return self

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after max_side, aspect kept; never enlarged."""
        longest = max(width, height)
        if not self.max_side or longest <= self.max_side:
            return width, height
        scale = self.max_side / longest
        return max(1, round(width * scale)), max(1, round(height * scale))

    def first_index(self, fps: float) -> int:
        # The tolerance keeps a start given on a frame boundary (e.g. 0.5 s at 24 fps) on that frame.
        return max(0, math.ceil(self.start_seconds * fps - 1e-3))

    def output_fps(self, fps: float) -> float:
        if self.target_fps and self.target_fps < fps:
            return float(self.target_fps)
        return fps / self.every_nth

    def keeps(self, offset: int, fps: float) -> bool:
        """Is the frame `offset` frames after the first returned one kept?"""
        if self.target_fps and self.target_fps < fps:
            # Keep a frame whenever the output clock ticks: floor(offset * target / fps) advances.
            ratio = self.target_fps / fps
            return offset == 0 or math.floor(offset * ratio + 1e-9) != math.floor((offset - 1) * ratio + 1e-9)
        return offset % self.every_nth == 0

    def count(self, frame_count: int, fps: float) -> int:
        """How many frames this selection returns from a stream of `frame_count` frames."""
        remaining = frame_count - self.first_index(fps)
        if remaining <= 0:
            return 0
        if self.target_fps and self.target_fps < fps:
            n = math.floor((remaining - 1) * self.target_fps / fps + 1e-9) + 1
        else:
            n = (remaining + self.every_nth - 1) // self.every_nth
        return min(n, self.max_frames) if self.max_frames else n


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    has_audio: bool
    audio_sample_rate: int = 0
    audio_channels: int = 0


@dataclass(frozen=True)
class DecodedVideo:
    frames: torch.Tensor | None  # [N, H, W, 3] float32 in 0..1, or None when not wanted
    audio: dict | None  # {"waveform": [1, C, T] float32, "sample_rate": int}, or None when not wanted
    fps: float  # the rate the returned frames play at (after every_nth / target_fps)
    info: VideoInfo  # the source file


def probe(path) -> VideoInfo:
    """Read the streams' metadata without decoding anything."""
    with _open(path) as container:
        return _info(container, path)


def decode_video(path, selection: FrameSelection = FrameSelection(), *, want_frames: bool = True,
                 want_audio: bool = True, on_progress: Progress | None = None,
                 should_stop: StopCheck | None = None) -> DecodedVideo:
    """Decode frames and/or audio of the video at `path` as ComfyUI IMAGE / AUDIO values.

    on_progress(done, total) is called per returned frame; should_stop() is polled per
    decoded frame and raises DecodeCancelled when it returns True. Both are called from
    the calling thread.
    """
    selection.validate()
    with _open(path) as container:
        info = _info(container, path)
        if info.frame_count and selection.first_index(info.fps) >= info.frame_count:
            raise InputError(NODE, "start_seconds", selection.start_seconds,
                             f"is past the end of the {info.duration:.2f} s video; the video itself is "
                             "kept, lower start_seconds and queue again", before_sending=False)
        video_start = _video_start_seconds(container)
        frames = None
        n_out = selection.count(info.frame_count, info.fps)
        if want_frames:
            frames = _decode_frames(container, path, info, selection, video_start, on_progress, should_stop)
            n_out = frames.shape[0]
    fps_out = selection.output_fps(info.fps)
    audio = None
    if want_audio:
        t0 = selection.first_index(info.fps) / info.fps
        seconds = n_out / fps_out if fps_out else 0.0
        audio = _decode_audio(path, info, video_start + t0, seconds, should_stop)
    return DecodedVideo(frames=frames, audio=audio, fps=fps_out, info=info)


# --- frames ------------------------------------------------------------------------------

class _FrameSink:
    """Writes uint8 RGB frames as float 0..1 into one preallocated tensor.

    The capacity comes from the container's frame count. If the file holds more frames
    than it declared, the extra ones go to overflow tensors joined at the end (the only
    case that costs a copy); if it holds fewer, a view of the filled part is returned:
    the untouched tail was never written, so it never became resident memory.
    `put` runs on the converter's thread; `result` after it has finished.
    """

    def __init__(self, capacity: int, height: int, width: int):
        self.shape = (height, width, 3)
        self.capacity = max(capacity, 0)
        # Plain pages, faulted in by the converting thread as it fills them. Measured and
        # left out: madvise(MADV_HUGEPAGE), 4-5x slower on the CI VM (its balloon returns
        # free 2 MB blocks to the host, so each huge page comes back cold), and prefaulting
        # ahead in another thread (MADV_POPULATE_WRITE), no gain: the cores are busy anyway.
        self.out = torch.empty((self.capacity, *self.shape), dtype=torch.float32)
        self._slots = self.out.numpy()  # same memory
        self.overflow: list[torch.Tensor] = []
        self.count = 0

    def put(self, rgb: np.ndarray) -> None:
        if self.count < self.capacity:
            slot = self._slots[self.count]
        else:
            extra = torch.empty(self.shape, dtype=torch.float32)
            self.overflow.append(extra)
            slot = extra.numpy()
        # One pass, no float temporary: uint8 in, float32 written straight into the slot.
        # NumPy rather than torch: torch's OpenMP workers spin between calls and steal the
        # cores FFmpeg's decoding threads need (measured: more CPU, slower wall time).
        np.multiply(rgb, _INV255, out=slot)
        self.count += 1

    def result(self) -> torch.Tensor:
        if self.overflow:
            return torch.cat([self.out, torch.stack(self.overflow)])
        return self.out[: self.count] if self.count < self.capacity else self.out


class _Converter:
    """Fills the sink on its own thread while the calling thread decodes the next frames.

    Decoding is the codec's work; filling the fresh output is memory bandwidth and page
    faults. Side by side the job takes about as long as the slower of the two, not their
    sum: FFmpeg releases the GIL while decoding and scaling, NumPy while converting. At
    most PIPELINE_FRAMES frames wait in between. A failure on this thread is raised in the
    calling one, and the thread never outlives the `with` block.
    """

    def __init__(self, sink: _FrameSink):
        self._sink = sink
        self._queue: queue.Queue = queue.Queue(PIPELINE_FRAMES)
        self._error: BaseException | None = None
        self._discard = False
        self._thread = threading.Thread(target=self._run, name="CometOmni frame converter", daemon=True)

    def __enter__(self) -> "_Converter":
        self._thread.start()
        return self

    def put(self, rgb: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(rgb)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # cancelled or failed: the frames still queued are not wanted
            self._discard = True
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
        self._queue.put(None)  # never blocks for long: the thread keeps taking frames until this
        self._thread.join()
        # Let go of the error: it holds this thread's frame, and so the sink and its 6 GB tensor,
        # in a cycle that only the garbage collector would break.
        error, self._error = self._error, None
        try:
            if exc_type is None and error is not None:
                raise error
        finally:
            del error

    def _run(self) -> None:
        while (rgb := self._queue.get()) is not None:
            if self._error is None and not self._discard:
                try:
                    self._sink.put(rgb)
                except BaseException as exc:  # raised again in the calling thread
                    self._error = exc


def _decode_frames(container, path, info: VideoInfo, selection: FrameSelection, video_start: float,
                   on_progress: Progress | None, should_stop: StopCheck | None) -> torch.Tensor:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads: x264 output has one slice per frame
    fps = info.fps
    first = selection.first_index(fps)
    expected = selection.count(info.frame_count, fps)
    width, height = selection.output_size(info.width, info.height)
    sink = _FrameSink(expected, height, width)
    limit = selection.max_frames or None
    interpolation = RESIZE_FILTER if (width, height) != (info.width, info.height) else None
    reformatter = VideoReformatter()  # keeps one swscale context for the whole clip
    time_base = stream.time_base
    start_pts = stream.start_time or 0
    if first > 0:
        _seek(container, stream, video_start + first / fps)

    index = -1
    queued = 0
    try:
        with _Converter(sink) as converter:
            for frame in container.decode(stream):
                if should_stop is not None and should_stop():
                    raise DecodeCancelled("Decoding stopped: cancelled.")
                if frame.pts is not None and time_base is not None:
                    index = round(float((frame.pts - start_pts) * time_base) * fps)
                else:
                    index += 1
                if index < first or not selection.keeps(index - first, fps):
                    continue  # decoded (unavoidable) but never converted
                converter.put(reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                                   interpolation=interpolation).to_ndarray())
                queued += 1
                if on_progress is not None:
                    on_progress(queued, max(expected, queued))
                if limit is not None and queued >= limit:
                    break
    except av.FFmpegError as exc:
        raise DecodeError(f"Could not decode the video frames of {Path(path).name}: {exc}") from exc
    return sink.result()


# --- audio -------------------------------------------------------------------------------

def _decode_audio(path, info: VideoInfo, t0: float, seconds: float,
                  should_stop: StopCheck | None) -> dict:
    """The audio from container time t0 for `seconds`, as ComfyUI AUDIO (silence where missing)."""
    if not info.has_audio:
        total = max(0, round(seconds * SILENT_SAMPLE_RATE))
        return {"waveform": torch.zeros((1, SILENT_CHANNELS, total), dtype=torch.float32),
                "sample_rate": SILENT_SAMPLE_RATE}
    rate, channels = info.audio_sample_rate, info.audio_channels
    total = max(0, round(seconds * rate))
    wave = np.zeros((channels, total), dtype=np.float32)
    with _open(path) as container:
        stream = container.streams.audio[0]
        if t0 > 0:
            # Pre-roll: the first audio frame decoded after a seek lacks its predecessor's
            # overlap (AAC is MDCT-based) and comes out wrong; start early, drop what is before t0.
            _seek(container, stream, max(0.0, t0 - AUDIO_PREROLL_SECONDS))
        # Same rate and layout: the resampler only converts to float planar, so it adds no delay.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        position = None  # sample index in `wave` where the next decoded sample goes
        try:
            for frame in container.decode(stream):
                if should_stop is not None and should_stop():
                    raise DecodeCancelled("Decoding stopped: cancelled.")
                if position is None:
                    start = frame.time if frame.time is not None else t0
                    position = round((start - t0) * rate)
                for out in resampler.resample(frame):
                    samples = out.to_ndarray()
                    position = _place(wave, samples, position)
                if position >= total:
                    break
        except av.FFmpegError as exc:
            raise DecodeError(f"Could not decode the audio of {Path(path).name}: {exc}") from exc
    return {"waveform": torch.from_numpy(wave).unsqueeze(0), "sample_rate": rate}


def _place(wave: np.ndarray, samples: np.ndarray, position: int) -> int:
    """Copy the part of `samples` (starting at `position`) that falls inside `wave`."""
    n = samples.shape[1]
    lo, hi = max(position, 0), min(position + n, wave.shape[1])
    if hi > lo:
        wave[:, lo:hi] = samples[: wave.shape[0], lo - position: hi - position]
    return position + n


# --- container helpers ---------------------------------------------------------------------

def _open(path):
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise DecodeError(f"Could not open {Path(path).name} as a video: {exc}") from exc


def _info(container, path) -> VideoInfo:
    if not container.streams.video:
        raise DecodeError(f"{Path(path).name} has no video stream.")
    video = container.streams.video[0]
    rate = video.average_rate or video.guessed_rate or video.base_rate
    if not rate:
        raise DecodeError(f"{Path(path).name} does not say its frame rate.")
    fps = float(rate)
    if video.duration is not None and video.time_base is not None:
        duration = float(video.duration * video.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    frame_count = video.frames or round(duration * fps)
    if not duration:
        duration = frame_count / fps
    audio = container.streams.audio[0] if container.streams.audio else None
    return VideoInfo(
        width=video.codec_context.width, height=video.codec_context.height, fps=fps,
        frame_count=int(frame_count), duration=duration, has_audio=audio is not None,
        audio_sample_rate=int(audio.rate) if audio is not None else 0,
        audio_channels=int(audio.channels) if audio is not None else 0,
    )


def _video_start_seconds(container) -> float:
    video = container.streams.video[0]
    if video.start_time is None or video.time_base is None:
        return 0.0
    return float(video.start_time * video.time_base)


def _seek(container, stream, seconds: float) -> None:
    """Seek to the keyframe at or before `seconds` (container time); frames before it are skipped by the caller."""
    target = int(math.floor(seconds / stream.time_base)) if stream.time_base else 0
    container.seek(max(target, 0), stream=stream, backward=True, any_frame=False)
