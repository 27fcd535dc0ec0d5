"""Real MP4 clips made with PyAV at run time, with content a test can check.

Frame i carries its index in binary as 10 black/white blocks across the top quarter of
the picture (most significant bit on the left; 1024 frames, 42 s at 24 fps, before the
count wraps), big enough to survive H.264 and scaling down to 160 px wide. The bottom
quarter carries the frame's shot number (1-based) the same way in 3 wider blocks; a clip
of one shot shows shot 1 in every frame. The rest of the frame is a colour gradient so
scaling and colour conversion have work to do. The audio track is a 440 Hz sine whose
amplitude ramps linearly from 0 at t=0 to 0.8 at the end, so the loudness of any window
tells where in the clip it came from.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

INDEX_BITS = 10
SHOT_BITS = 3  # Kling makes at most 6 shots
AUDIO_PEAK = 0.8
TONE_HZ = 440.0


def frame_pixels(index: int, width: int, height: int, shot: int = 1) -> np.ndarray:
    """The exact RGB picture (uint8, HxWx3) encoded as frame `index` of shot `shot`."""
    img = _gradient(width, height).copy()
    img[..., 2] = ((index * 7) % 256)
    band = _band(height)
    _draw_bits(img[:band], index, INDEX_BITS)
    _draw_bits(img[height - band:], shot, SHOT_BITS)
    return img


def read_index(frame: np.ndarray) -> int:
    """Recover the frame index from a decoded frame (HxWx3, uint8 or float 0..1), at any size."""
    arr = _as_255(frame)
    band = _band(arr.shape[0])
    return _read_bits(arr[:band], INDEX_BITS)


def read_shot(frame: np.ndarray) -> int:
    """Recover the shot number (1-based) from a decoded frame, like read_index."""
    arr = _as_255(frame)
    band = _band(arr.shape[0])
    return _read_bits(arr[arr.shape[0] - band:], SHOT_BITS)


def shot_starts(n_frames: int, shots) -> list[int]:
    """The first frame of each shot when `n_frames` frames are shared among shots lasting
    `shots` (seconds, or any unit: only the proportions count); [0] for a clip of one shot."""
    shots = [float(s) for s in shots] or [1.0]
    total = sum(shots)
    starts, elapsed = [], 0.0
    for length in shots:
        starts.append(int(round(n_frames * elapsed / total)))
        elapsed += length
    return starts


def _band(height: int) -> int:
    return max(height // 4, 2)


def _columns(width: int, bits: int) -> list[tuple[int, int]]:
    """The x range of each block: the same partition for drawing and reading, at any width."""
    return [(int(bit * width / bits), int((bit + 1) * width / bits)) for bit in range(bits)]


def _draw_bits(band: np.ndarray, value: int, bits: int) -> None:
    for bit, (x0, x1) in enumerate(_columns(band.shape[1], bits)):
        band[:, x0:x1] = 255 if (value >> (bits - 1 - bit)) & 1 else 0


def _read_bits(band: np.ndarray, bits: int) -> int:
    # The middle half of each block, away from the edges H.264 and scaling blur.
    height = band.shape[0]
    rows = band[height // 4: max(3 * height // 4, height // 4 + 1)]
    value = 0
    for x0, x1 in _columns(band.shape[1], bits):
        quarter = (x1 - x0) / 4
        level = rows[:, int(x0 + quarter): max(int(x1 - quarter), int(x0 + quarter) + 1)].mean()
        value = (value << 1) | (1 if level > 127 else 0)
    return value


def _as_255(frame: np.ndarray) -> np.ndarray:
    arr = np.asarray(frame, dtype=np.float32)
    return arr * 255.0 if arr.max() <= 1.0 + 1e-6 else arr


@functools.lru_cache(maxsize=4)
def _gradient(width: int, height: int) -> np.ndarray:
    """Red across, green down: computed once per size (a 1080p clip has hundreds of frames)."""
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[..., 0] = xs.astype(np.uint8)
    img[..., 1] = ys.astype(np.uint8)
    img.flags.writeable = False  # callers copy it
    return img


def audio_amplitude_at(t: float, seconds: float) -> float:
    """The envelope of the test tone at time t."""
    return AUDIO_PEAK * min(max(t / seconds, 0.0), 1.0)


def make_mp4(path, seconds: float = 2.0, fps: int = 24, width: int = 320, height: int = 240,
             audio: bool = True, sample_rate: int = 44100, channels: int = 2,
             crf: int = 23, preset: str = "ultrafast", shots=()) -> Path:
    """Write an H.264 (+ AAC) MP4 and return its path.

    `shots`: the lengths of the clip's shots, in order (see shot_starts); empty: one shot."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_frames = int(round(seconds * fps))
    starts = shot_starts(n_frames, shots)
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream("libx264", rate=fps)
        vstream.width = width
        vstream.height = height
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"crf": str(crf), "preset": preset}
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "stereo" if channels == 2 else "mono"
        for i in range(n_frames):
            shot = sum(1 for start in starts if start <= i)
            frame = av.VideoFrame.from_ndarray(frame_pixels(i, width, height, shot), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            _write_tone(container, astream, seconds, sample_rate, channels)
    return path


def _write_tone(container, astream, seconds: float, sample_rate: int, channels: int) -> None:
    total = int(round(seconds * sample_rate))
    t = np.arange(total, dtype=np.float64) / sample_rate
    wave = (np.sin(2 * np.pi * TONE_HZ * t) * AUDIO_PEAK * (t / seconds)).astype(np.float32)
    chunk = 1024  # AAC frame size
    pts = 0
    for start in range(0, total, chunk):
        part = wave[start:start + chunk]
        planar = np.ascontiguousarray(np.repeat(part[None, :], channels, axis=0))
        frame = av.AudioFrame.from_ndarray(planar, format="fltp",
                                           layout="stereo" if channels == 2 else "mono")
        frame.sample_rate = sample_rate
        frame.pts = pts
        frame.time_base = Fraction(1, sample_rate)
        pts += part.shape[0]
        for packet in astream.encode(frame):
            container.mux(packet)
    for packet in astream.encode():
        container.mux(packet)
