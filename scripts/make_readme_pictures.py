"""Make the README's two pictures from the real UI: a ComfyUI of its own with this checkout's pack,
the bundled fake CometAPI, and the frontend in headless Chromium, driven by the end-to-end
check's own modules (scripts/comfy_e2e).

    .venv/bin/python scripts/make_readme_pictures.py --comfyui /path/to/ComfyUI \
        --python /path/to/ComfyUI/venv/bin/python \
        --front-end-root /path/fe/comfyui_frontend_package/static

- docs/images/readme-graph.png: the template "Kling 3.0 text to video with sound" opened from
  Browse Templates and run (the Run button): Prompt, Submit with its price lines, Poll with the
  task id and the video's preview, cropped to those three nodes;
- docs/images/readme-strip.png: three frames of the video the template "Kling 3.0 storyboard in
  three shots" saved, one from the middle of each shot.

No money and no network: the fake CometAPI answers on loopback. Its result videos follow the
request (length, 1080p for pro, 24 fps, sound) and, for this run, are drawn here: a title card
per shot with the shot's prompt and a timeline of the shots (`stand_in_clip`), where a real run
gets Kling's video. The pictures say so.

The pictures were made with ComfyUI 0.3.64 and frontend 1.58.1 (`pip install --no-deps --target
/path/fe comfyui-frontend-package==1.58.1`), Nodes 2.0 off, at 1600x900. Off is the frontend's
default (Comfy.VueNodes.Enabled is an experimental setting, false unless turned on), so the
pictures show the nodes as most users see them. Other frontends work (--nodes2 on, or the bundled
one without --front-end-root); the pictures change with them. Both files are palette PNGs of a few
tens of KB.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import tempfile
import textwrap
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout, so `scripts` is a package

import av  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from scripts.comfy_e2e.browser import (APP, SETTING, close_dialogs, open_page, set_nodes2,  # noqa: E402
                                       start_chromium)
from scripts.comfy_e2e.pack import PACK_DIR_NAME, V3_SOUND_TEMPLATE, V3_STORYBOARD_TEMPLATE  # noqa: E402
from scripts.comfy_e2e.pack_ui import POLL, POLL_STATUS, open_template  # noqa: E402
from scripts.comfy_e2e.processes import Service, comfyui, in_process_fake_server  # noqa: E402
from scripts.comfy_e2e.report import CheckFailed  # noqa: E402

OUT = ROOT / "docs" / "images"
GRAPH_PICTURE = "readme-graph.png"
STRIP_PICTURE = "readme-strip.png"
VIEWPORT = (1600, 900)
FRONTEND = "1.58.1"  # the frontend the README's pictures are made with
MARGIN = 16  # px of canvas around the nodes in the graph picture
RUN_TIMEOUT = 120.0
STRIP_FRAME = (480, 270)  # each frame of the strip

# --- the stand-in clip the fake serves for this run ------------------------------------------

SHOT_COLOURS = [(28, 74, 96), (104, 64, 24), (58, 40, 104), (26, 90, 60), (110, 36, 60), (70, 70, 70)]
WHITE, MUTED, DIM = (246, 246, 250), (200, 205, 220), (150, 156, 175)


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's own font: the same picture on any machine


def shots_of(request: dict) -> list[tuple[str, int]]:
    """(prompt, seconds) of each shot the request asks for; one shot without a storyboard."""
    if request.get("multi_prompt"):
        return [(s["prompt"], int(s["duration"])) for s in request["multi_prompt"]]
    return [(request.get("prompt", ""), int(request.get("duration", 5)))]


def card(request: dict, shot: int, size: tuple[int, int]) -> Image.Image:
    """The still part of a shot's title card: its number, length and prompt, what was asked for."""
    width, height = size
    unit = height / 1080
    shots = shots_of(request)
    prompt, seconds = shots[shot]
    top, bottom = np.array(SHOT_COLOURS[shot % len(SHOT_COLOURS)]), np.array((12, 12, 18))
    rows = np.linspace(0, 1, height)[:, None, None]
    image = Image.fromarray((top * (1 - rows) + bottom * rows).astype(np.uint8).repeat(width, axis=1))
    draw = ImageDraw.Draw(image)
    x = int(120 * unit)
    heading = f"Shot {shot + 1} of {len(shots)} · {seconds} s" if len(shots) > 1 else f"{seconds} s"
    draw.text((x, int(100 * unit)), heading, font=font(int(84 * unit)), fill=WHITE)
    facts = [request.get("model_name", "kling-video-o1"), request.get("mode", "pro"),
             request.get("aspect_ratio", "16:9"), f"{width}x{height}"]
    if request.get("sound") == "on":
        facts.append("sound on")
    draw.text((x, int(215 * unit)), " · ".join(facts), font=font(int(46 * unit)), fill=MUTED)
    y = int(350 * unit)
    for line in textwrap.wrap(prompt, 40)[:5]:
        draw.text((x, y), line, font=font(int(74 * unit)), fill=WHITE)
        y += int(96 * unit)
    note = "Stand-in frame from the test server: a real run shows Kling's video here"
    draw.text((x, height - int(110 * unit)), note, font=font(int(40 * unit)), fill=DIM)
    return image


def timeline(image: Image.Image, request: dict, t: float, total: float) -> None:
    """The shots as segments of a bar in proportion to their lengths, and where t is."""
    width, height = image.size
    unit = height / 1080
    draw = ImageDraw.Draw(image)
    x0, x1, y0, y1 = int(120 * unit), width - int(120 * unit), height - int(190 * unit), height - int(166 * unit)
    start = 0.0
    shots = shots_of(request)
    length = sum(s for _, s in shots)
    for index, (_, seconds) in enumerate(shots):
        a = x0 + (x1 - x0) * start / length
        b = x0 + (x1 - x0) * (start + seconds) / length
        colour = tuple(min(255, int(c * 2.2)) for c in SHOT_COLOURS[index % len(SHOT_COLOURS)])
        draw.rectangle([a + 2, y0, b - 2, y1], fill=colour)
        start += seconds
    head = x0 + (x1 - x0) * min(t / total, 1)
    draw.rectangle([head - 3 * unit, y0 - 10 * unit, head + 3 * unit, y1 + 10 * unit], fill=WHITE)
    stamp = f"{int(t // 60)}:{t % 60:04.1f} / {int(total // 60)}:{total % 60:02.0f}"
    draw.text((x1, y0 - int(16 * unit)), stamp, font=font(int(40 * unit)), fill=MUTED, anchor="rb")


def stand_in_clip(request: dict, clip, path: Path) -> None:
    """The fake's clip_writer: an H.264 MP4 of `clip` (length, fps, size the request asks for; an AAC
    track when it asks for sound) whose frames are title cards, one per shot, with a timeline."""
    shots = shots_of(request)
    frames = int(round(clip.seconds * clip.fps))
    lengths = [s for _, s in shots]
    starts = [sum(lengths[:i]) / sum(lengths) * clip.seconds for i in range(len(lengths))]
    cards = [card(request, i, (clip.width, clip.height)) for i in range(len(shots))]
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=clip.fps)
        video.width, video.height, video.pix_fmt = clip.width, clip.height, "yuv420p"
        video.options = {"crf": "23", "preset": "ultrafast"}
        audio = container.add_stream("aac", rate=44100) if clip.audio else None
        if audio is not None:
            audio.layout = "stereo"
        for i in range(frames):
            t = i / clip.fps
            shot = max(k for k, start in enumerate(starts) if start <= t + 1e-9)
            image = cards[shot].copy()
            timeline(image, request, t, clip.seconds)
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, clip.fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:  # a soft chord, so "with sound" is heard as sound
            rate, samples = 44100, int(round(clip.seconds * 44100))
            t = np.arange(samples) / rate
            wave = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * 0.08
            wave *= np.minimum(1, np.minimum(t / 0.5, (clip.seconds - t) / 0.5))
            pcm = np.stack([wave, wave]).astype(np.float32)
            for begin in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, begin:begin + 1024]), format="fltp",
                                                   layout="stereo")
                chunk.sample_rate, chunk.pts = rate, begin
                for packet in audio.encode(chunk):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)


# --- the page -------------------------------------------------------------------------------

PACK_NODES = f"{APP}.graph.nodes.filter(n => n.type.startsWith('CometOmni'))"


async def frame_pack_nodes(page) -> list[float]:
    """Scroll and zoom the canvas so the pack's nodes sit in the middle of it, at 100 % when they
    fit; returns their box on the page (x, y, width, height in CSS px) with a margin, badges
    included. The canvas renderer draws a node at its pos and size; Nodes 2.0 draws each as a DOM
    element of its own size, measured once it has moved."""
    box = f"""(() => {{ const c = {APP}.canvas, el = c.canvas.getBoundingClientRect(), s = c.ds.scale;
        const title = LiteGraph.NODE_TITLE_HEIGHT, badge = 26;
        const rects = {PACK_NODES}.map(n => {{ const e = __check.nodeElement(n);
            if (e) {{ const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }}
            const x = el.left + (n.pos[0] + c.ds.offset[0]) * s, y = el.top + (n.pos[1] + c.ds.offset[1]) * s;
            return [x, y - (title + badge) * s, x + n.size[0] * s, y + n.size[1] * s]; }});
        return [Math.min(...rects.map(r => r[0])), Math.min(...rects.map(r => r[1])),
                Math.max(...rects.map(r => r[2])), Math.max(...rects.map(r => r[3])), el.left, el.top, el.width, el.height]; }})()"""
    for _ in range(2):  # place by what is drawn now, then once more by what that drew
        x0, y0, x1, y1, left, top, width, height = await page.js(box)
        await page.js(f"""(() => {{ const c = {APP}.canvas, s = c.ds.scale;
            const scale = Math.min(1, s * ({width} - 80) / {x1 - x0}, s * ({height} - 200) / {y1 - y0});
            const gx = ({x0} - {left}) / s - c.ds.offset[0], gy = ({y0} - {top}) / s - c.ds.offset[1];
            const gw = {x1 - x0} / s, gh = {y1 - y0} / s;
            c.ds.scale = scale;
            c.ds.offset = [({width} / scale - gw) / 2 - gx, ({height} / scale - gh) / 2 - gy + 20 / scale];
            c.deselectAll?.(); c.setDirty(true, true); return 1; }})()""")
        await asyncio.sleep(1)  # Nodes 2.0 moves its DOM nodes on the next frames
    x0, y0, x1, y1 = (await page.js(box))[:4]
    return [x0 - MARGIN, y0 - MARGIN, x1 - x0 + 2 * MARGIN, y1 - y0 + 2 * MARGIN]


def preview(task: str) -> str:
    """The <video> previewing the MP4 of the task whose id the JS expression `task` holds."""
    return f"[...document.querySelectorAll('video')].find(v => v.src.includes(`filename=kling_${{{task}}}.mp4`))"


TASK_BOX = f"(({POLL}.widgets || []).find(w => w.name === 'cometapi_task_id') || {{}}).element"


async def run_template(page, name: str) -> str:
    """Open the template, press Run, wait for Poll's video preview and task id; returns the task id.
    (Poll's status text, e.g. "processing · 4 s", gives way to the preview when the video is saved.)"""
    await open_template(page, name)
    await frame_pack_nodes(page)
    await page.click("__check.named(document, 'Run')")
    shown = f"""(() => {{ const id = {TASK_BOX};
        const task = id && __check.shown(id) && (id.innerText.match(/\\d{{6,}}/) || [])[0];
        const v = task && {preview("task")};
        return v && v.readyState >= 2 && v.videoWidth && __check.onScreen(v) && task; }})()"""
    try:
        return await page.wait_for(shown, RUN_TIMEOUT, f"{name}: the video preview and task id on Poll")
    except CheckFailed as exc:
        raise CheckFailed(f"{exc} (Poll's status: {await page.js(POLL_STATUS)!r})") from None


async def graph_picture(page, task: str, path: Path) -> None:
    """The pack's nodes after the run, the preview showing a frame from the middle of the clip."""
    await page.js(f"""(async () => {{ const v = {preview(repr(task))}; v.pause();
        await new Promise(done => {{ v.addEventListener('seeked', done, {{once: true}}); v.currentTime = v.duration * 0.4; }});
        return 1; }})()""")
    box = await frame_pack_nodes(page)
    await asyncio.sleep(0.5)  # the video overlay follows the canvas
    raw = path.with_suffix(".raw.png")
    await page.shot(raw, clip=tuple(box))
    save_palette_png(Image.open(raw), path)
    raw.unlink()


def save_palette_png(image: Image.Image, path: Path, colours: int = 256) -> None:
    image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) \
        .save(path, optimize=True)


# --- the strip ------------------------------------------------------------------------------

def strip_picture(video: Path, shots: list[int], path: Path) -> None:
    """One frame from the middle of each shot, side by side, with what it is underneath."""
    total = sum(shots)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        count, size = stream.frames, f"{stream.width}x{stream.height}, {stream.average_rate} fps"
        wanted = [int(count * (sum(shots[:i]) + shots[i] / 2) / total) for i in range(len(shots))]
        frames = [f.to_image().resize(STRIP_FRAME, Image.LANCZOS)
                  for i, f in enumerate(container.decode(stream)) if i in wanted]
    gap, caption = 12, 40
    width = len(frames) * STRIP_FRAME[0] + (len(frames) - 1) * gap
    sheet = Image.new("RGB", (width, STRIP_FRAME[1] + caption), (24, 24, 28))
    for i, frame in enumerate(frames):
        sheet.paste(frame, (i * (STRIP_FRAME[0] + gap), 0))
    ImageDraw.Draw(sheet).text(
        (0, STRIP_FRAME[1] + 12), f"{V3_STORYBOARD_TEMPLATE}: a frame from each shot of the MP4 that Poll saved "
        f"({' + '.join(map(str, shots))} s, {size}), as the test server draws them", font=font(16), fill=MUTED)
    save_palette_png(sheet, path, 128)


# --- the run --------------------------------------------------------------------------------

async def make_pictures(args, work: Path) -> None:
    key = "sk-pictures" + secrets.token_hex(8)
    fake = in_process_fake_server(key, processing_seconds=3, follow_request=True, clip_writer=stand_in_clip)
    page = None
    try:
        async with comfyui(args, work, "pictures", fake.base_url, key) as c:
            devtools = await start_chromium(args, c.http, work, size=VIEWPORT)
            page = await open_page(c.http, devtools, c.url + "/", size=VIEWPORT)
            await set_up_page(page, args, c.url)
            task = await run_template(page, V3_SOUND_TEMPLATE)
            await graph_picture(page, task, args.out / GRAPH_PICTURE)
            print(f"{V3_SOUND_TEMPLATE}: task {task} -> {args.out / GRAPH_PICTURE}", flush=True)

            task = await run_template(page, V3_STORYBOARD_TEMPLATE)
            video = c.base / "output" / "cometapi_omni" / f"kling_{task}.mp4"
            shots = [int(s["duration"]) for s in fake.tasks[task].request["multi_prompt"]]
            strip_picture(video, shots, args.out / STRIP_PICTURE)
            print(f"{V3_STORYBOARD_TEMPLATE}: task {task} -> {args.out / STRIP_PICTURE}", flush=True)
            ours = [e for e in page.errors if f"/extensions/{PACK_DIR_NAME}/" in e]
            if ours:
                print(f"uncaught errors from the pack's scripts: {'; '.join(ours)[:800]}", flush=True)
            await page.close()
    except CheckFailed:
        if page is not None:
            await page.shot(work / "failure.png")
        raise
    finally:
        Service.stop_all()
        fake.stop()


async def set_up_page(page, args, url: str) -> None:
    """The app loaded with the pack, in English, Nodes 2.0 as asked, no minimap, no dialog."""
    await page.wait_for(f"!!({APP}?.graph && {APP}.extensionManager)", 90, "the ComfyUI app")
    await page.wait_for(f"{APP}.extensions.filter(e => e.name.startsWith('CometAPI')).length === 4", 30,
                        "the pack's extensions")
    version = await page.js("window.__COMFYUI_FRONTEND_VERSION__ || '?'")
    nodes2 = await set_nodes2(page, args.nodes2)
    await page.js(f"""(async () => {{ const s = {SETTING};
        await s.set('Comfy.Locale', 'en');
        if (s.get('Comfy.Minimap.Visible') !== undefined) await s.set('Comfy.Minimap.Visible', false);
        return 1; }})()""")
    print(f"ComfyUI at {url}, frontend {version}, Nodes 2.0 {'on' if nodes2 else 'off'}, "
          f"{VIEWPORT[0]}x{VIEWPORT[1]}", flush=True)
    if (version, nodes2) != (FRONTEND, False):
        print(f"(the README's pictures are made with frontend {FRONTEND}, Nodes 2.0 off: these will look different)",
              flush=True)
    await asyncio.sleep(2)  # first-run dialogs settle
    await close_dialogs(page)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/make_readme_pictures.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", required=True, type=Path, help="the ComfyUI folder (main.py)")
    parser.add_argument("--python", required=True, help="the Python of ComfyUI's environment")
    parser.add_argument("--front-end-root", type=Path,
                        help="serve this frontend (a comfyui_frontend_package/static folder); the README's pictures "
                             "use 1.58.1")
    parser.add_argument("--nodes2", choices=("on", "off"), default="off",
                        help="Nodes 2.0 (Vue-rendered nodes) on or off (default: off, as the README's pictures)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the pictures go (default: {OUT.relative_to(ROOT)})")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (ComfyUI's log and output)")
    args = parser.parse_args(argv)
    if not (args.comfyui / "main.py").is_file():
        parser.error(f"{args.comfyui} has no main.py")
    if args.front_end_root and not (args.front_end_root / "index.html").is_file():
        parser.error(f"{args.front_end_root} has no index.html (expected .../comfyui_frontend_package/static)")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="readme-pictures-"))
    started = time.monotonic()
    try:
        asyncio.run(make_pictures(args, work))
    except CheckFailed as exc:
        print(f"failed: {exc}\nwork directory kept: {work}", file=sys.stderr)
        return 1
    finally:
        Service.stop_all()
    for name in (GRAPH_PICTURE, STRIP_PICTURE):
        picture = Image.open(args.out / name)
        print(f"{args.out / name}: {picture.width}x{picture.height}, {(args.out / name).stat().st_size / 1024:.0f} KB")
    print(f"done in {time.monotonic() - started:.0f} s")
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
