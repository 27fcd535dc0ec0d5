"""Real MP4 clips made with PyAV at run time, with content a test can check.

Frame i carries its index in binary as 8 black/white blocks across the top quarter of
the picture (most significant bit on the left), big enough to survive H.264. The rest
of the frame is a colour gradient so scaling and colour conversion have work to do.
The audio track is a 440 Hz sine whose amplitude ramps linearly from 0 at t=0 to 0.8
at the end, so the loudness of any window tells where in the clip it came from.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

INDEX_BITS = 8
AUDIO_PEAK = 0.8
TONE_HZ = 440.0


def frame_pixels(index: int, width: int, height: int) -> np.ndarray:
    """The exact RGB picture (uint8, HxWx3) encoded as frame `index`."""
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = xs.astype(np.uint8)
    img[..., 1] = ys.astype(np.uint8)
    img[..., 2] = ((index * 7) % 256)
    band = max(height // 4, 2)
    block = width // INDEX_BITS
    for bit in range(INDEX_BITS):
        on = (index >> (INDEX_BITS - 1 - bit)) & 1
        img[:band, bit * block:(bit + 1) * block] = 255 if on else 0
    return img


def read_index(frame: np.ndarray) -> int:
    """Recover the frame index from a decoded frame (HxWx3, uint8 or float 0..1), at any size."""
    arr = np.asarray(frame, dtype=np.float32)
    if arr.max() <= 1.0 + 1e-6:
        arr = arr * 255.0
    height, width = arr.shape[:2]
    band = max(height // 4, 2)
    block = width / INDEX_BITS
    value = 0
    for bit in range(INDEX_BITS):
        x0 = int(bit * block + block * 0.25)
        x1 = max(int(bit * block + block * 0.75), x0 + 1)
        level = arr[band // 4: max(3 * band // 4, band // 4 + 1), x0:x1].mean()
        value = (value << 1) | (1 if level > 127 else 0)
    return value


def audio_amplitude_at(t: float, seconds: float) -> float:
    """The envelope of the test tone at time t."""
    return AUDIO_PEAK * min(max(t / seconds, 0.0), 1.0)


def make_mp4(path, seconds: float = 2.0, fps: int = 24, width: int = 320, height: int = 240,
             audio: bool = True, sample_rate: int = 44100, channels: int = 2,
             crf: int = 23, preset: str = "ultrafast") -> Path:
    """Write an H.264 (+ AAC) MP4 and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_frames = int(round(seconds * fps))
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
            frame = av.VideoFrame.from_ndarray(frame_pixels(i, width, height), format="rgb24")
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
