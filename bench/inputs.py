"""The benchmark's inputs, generated with PyAV / numpy into bench/.work/ (kept between runs).

The clips are meant to cost what a Kling clip costs to decode: 1920x1080 at 24 fps, 10 s (the
usual length) and 15 s (Kling 3.0 Omni's longest), H.264 high profile with B-frames (x264
"veryfast", CRF 20, ~11 Mbit/s), moving gradients and shapes under fine grain, plus a stereo
48 kHz AAC track. Frame i is the same picture in both, so a second of either costs about the same.
The images are photo-like (smooth gradients, soft shapes, sensor-like noise) so JPEG and PNG
sizes mean something.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WORK = Path(__file__).resolve().parent / ".work"
CLIP_LENGTHS = (10, 15)  # seconds
CLIP_FPS, CLIP_W, CLIP_H = 24, 1920, 1080
AUDIO_RATE = 48000
IMAGE_SIZES = [(1024, 1024), (2048, 2048), (4000, 3000)]


def clip_path(seconds: int = CLIP_LENGTHS[0]) -> Path:
    path = WORK / f"clip_{CLIP_W}x{CLIP_H}_{CLIP_FPS}fps_{seconds}s.mp4"
    if not path.exists():
        _write_clip(path, seconds)
    return path


def image_path(width: int, height: int) -> Path:
    path = WORK / f"image_{width}x{height}.npy"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        np.save(path, photo_like(width, height, seed=width * 7 + height))
    return path


def photo_like(width: int, height: int, seed: int = 0, t: float = 0.0) -> np.ndarray:
    """A uint8 HxWx3 picture: gradients, a few soft discs, and grain."""
    rng = np.random.default_rng(seed)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    img = np.empty((height, width, 3), dtype=np.float32)
    img[..., 0] = 0.55 + 0.35 * np.sin(3.0 * xs + 2.0 * ys + t)
    img[..., 1] = 0.45 + 0.30 * np.cos(2.0 * xs - 3.0 * ys + 0.7 * t)
    img[..., 2] = 0.50 + 0.25 * np.sin(5.0 * ys + 1.3 * t) * np.cos(xs)
    for k in range(6):
        cx = (0.15 + 0.7 * ((k * 0.37 + 0.11 * t) % 1.0)) * width
        cy = (0.2 + 0.6 * ((k * 0.61 + 0.07 * t) % 1.0)) * height
        r = (0.06 + 0.03 * k) * min(width, height)
        d2 = ((xs * (width - 1) - cx) ** 2 + (ys * (height - 1) - cy) ** 2) / (r * r)
        mask = np.clip(1.5 - d2, 0.0, 1.0)[..., None]
        colour = np.array([(k * 0.29) % 1.0, (k * 0.53) % 1.0, (k * 0.71) % 1.0], dtype=np.float32)
        img = img * (1.0 - mask) + colour * mask
    img += rng.normal(0.0, 0.035, size=img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _write_clip(path: Path, seconds: int) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    n_frames = seconds * CLIP_FPS
    # Grain is the costly part to generate: reuse a few noise fields, shifted per frame.
    rng = np.random.default_rng(1)
    grain = rng.normal(0.0, 3.0, size=(4, CLIP_H, CLIP_W, 1)).astype(np.float32)
    base = photo_like(CLIP_W // 4, CLIP_H // 4, seed=3).astype(np.float32)
    with av.open(str(tmp), mode="w") as container:
        video = container.add_stream("libx264", rate=CLIP_FPS)
        video.width, video.height, video.pix_fmt = CLIP_W, CLIP_H, "yuv420p"
        video.options = {"crf": "20", "preset": "veryfast"}
        audio = container.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "stereo"
        for i in range(n_frames):
            t = i / CLIP_FPS
            small = np.roll(base, (int(40 * np.sin(t)), i * 3), axis=(0, 1))
            frame = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
            frame += grain[i % 4]
            frame[:, :, 0] += 30.0 * np.sin(t * 2.0)
            rgb = np.clip(frame, 0, 255).astype(np.uint8)
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, CLIP_FPS)
            for packet in video.encode(vf):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        total = seconds * AUDIO_RATE
        tt = np.arange(total) / AUDIO_RATE
        wave = (0.3 * np.sin(2 * np.pi * 330 * tt) * (0.5 + 0.5 * np.sin(tt))).astype(np.float32)
        for start in range(0, total, 1024):
            part = np.ascontiguousarray(np.stack([wave[start:start + 1024]] * 2))
            af = av.AudioFrame.from_ndarray(part, format="fltp", layout="stereo")
            af.sample_rate, af.pts, af.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
            for packet in audio.encode(af):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    tmp.replace(path)
