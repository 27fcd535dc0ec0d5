"""`make demo`: the whole chain of nodes in plain Python, exactly as ComfyUI would run them.

Prompt (Kling 3.0 Omni, with native sound) + a reference image → Submit → Poll, against the
bundled fake CometAPI server, or against the real CometAPI when COMETAPI_KEY is set (that costs
a 5 s std generation with sound, ≈ $0.56 at the shipped rates).
Writes the MP4 and a contact sheet of frames to demo_output/.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.load_pack import load_pack  # noqa: E402

OUT = ROOT / "demo_output"


def reference_image(size: int = 640) -> torch.Tensor:
    """A small picture made here (no file needed): a red paper boat on blue water."""
    img = Image.new("RGB", (size, size), (40, 90, 160))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, int(size * 0.6), size, size], fill=(20, 50, 110))
    draw.polygon([(size * 0.25, size * 0.6), (size * 0.75, size * 0.6), (size * 0.62, size * 0.72),
                  (size * 0.38, size * 0.72)], fill=(200, 40, 40))
    draw.polygon([(size * 0.5, size * 0.3), (size * 0.5, size * 0.6), (size * 0.66, size * 0.6)], fill=(240, 240, 240))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]  # IMAGE [1,H,W,3]


def contact_sheet(frames: torch.Tensor, path: Path, columns: int = 4, count: int = 12) -> Path:
    picks = np.linspace(0, frames.shape[0] - 1, num=min(count, frames.shape[0])).round().astype(int)
    thumbs = [Image.fromarray((frames[i].numpy() * 255).astype(np.uint8)) for i in picks]
    w, h = thumbs[0].size
    scale = 320 / w
    tw, th = int(w * scale), int(h * scale)
    rows = (len(thumbs) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tw, rows * th), (0, 0, 0))
    for n, thumb in enumerate(thumbs):
        sheet.paste(thumb.resize((tw, th), Image.LANCZOS), ((n % columns) * tw, (n // columns) * th))
    sheet.save(path)
    return path


async def run_chain(nodes) -> dict:
    (refs,) = await nodes["CometOmniImageRef"]().add(image=reference_image(), role="reference", unique_id="2")
    (request,) = await nodes["CometOmniPrompt"]().build(
        prompt="@image1 drifts down a rain-soaked street at dusk, reflections shimmering",
        mode="std", aspect_ratio="16:9", duration=5, refs=refs, model="kling-v3-omni", sound=True)
    print(f"request: {request.summary()}")
    submitted = await nodes["CometOmniSubmit"]().submit(request=request, seed=1, unique_id="4")
    (task,) = submitted["result"][0]
    print(f"task:    {task.task_id}")
    polled = await nodes["CometOmniPoll"]().poll(task=task, unique_id="5")
    frames, audio, video, fps, task_id, url = polled["result"]
    return {"frames": frames, "audio": audio, "video": video, "fps": fps, "task_id": task_id, "url": url}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    real = bool(os.environ.get("COMETAPI_KEY"))
    server = None
    if real:
        print("COMETAPI_KEY is set: this demo runs against the real CometAPI and pays for one 5 s std Kling 3.0 "
              "video with sound (≈ $0.56 at the shipped rates).")
        os.environ.setdefault("COMETAPI_OMNI_HOME", str(OUT / "home-real"))
    else:
        from fake_cometapi.server import FakeCometAPI
        # The 5 s clip the request asks for, at a small size.
        server = FakeCometAPI(processing_seconds=2.0, video_seconds=5.0, video_fps=24, video_size=(640, 360)).start()
        os.environ.update(COMETAPI_KEY=server.key, COMETAPI_BASE_URL=server.base_url,
                          COMETAPI_OMNI_HOME=str(OUT / "home-fake"), COMETAPI_OMNI_POLL_SECONDS="0.5")
        print(f"fake CometAPI on {server.base_url} (set COMETAPI_KEY to use the real one)")
    os.environ["COMETAPI_OMNI_OUTPUT"] = str(OUT)
    pack = load_pack()
    try:
        started = time.monotonic()
        result = asyncio.run(run_chain(pack.NODE_CLASS_MAPPINGS))
        elapsed = time.monotonic() - started
    finally:
        if server is not None:
            server.stop()
    if server is not None:
        sent = len(server.requests) + len(server.file_requests)
        print(f"fake server: {server.created_count} task(s) created, {sent} request(s) received"
              + (" (served from the journal and disk)" if sent == 0 else ""))
    frames, audio = result["frames"], result["audio"]
    sheet = contact_sheet(frames, OUT / f"contact_sheet_{result['task_id']}.png")
    print(f"video:   {result['video'].get_stream_source()}")
    print(f"frames:  {tuple(frames.shape)} float32 at {result['fps']:.2f} fps")
    print(f"audio:   {tuple(audio['waveform'].shape)} at {audio['sample_rate']} Hz")
    print(f"sheet:   {sheet}")
    print(f"done in {elapsed:.1f} s. Run it again: the same request and seed are served from disk, unpaid.")
    print(f"Everything is in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
