"""`make bench`: the pack's decoder and image encoder against the plain ways, measured now, here.

Inputs are generated once into bench/.work/ (see bench/inputs.py). Each decode runs in
its own fresh subprocess so its peak RSS (VmHWM) is its own; every method runs
`--repeat` times (rounds interleaved, each starting with another method, so none profits
from its place) and the fastest run is reported. Exit status 1 if a target misses, except a
wall-time target below what the larger floor alone takes here (shown as missed and unreachable).

Clips (1920x1080, 24 fps), each with its own targets, against baselines from the same run:
  10 s  every method below, all frames and max_frames=48, max_side=960.
  15 s  Kling 3.0 Omni's longest, 360 frames (8.96 GB as float32): the pack and the floors,
        all frames. Its targets: peak above the start within 1.05x the output, wall within
        1.5x the larger floor. Not run on it: naive, which peaks at 3.0x its output (18.2 GB
        for the 10 s clip's 6.0 GB), ~27 GB here, more than a 24 GiB machine holds (without
        swap the kernel would kill it, or another process), and would add nothing the 10 s
        naive does not show; and the selective decode, whose 48 frames cost as much as at 10 s.
With --repeat 3 this takes 4.3-5.7 minutes on a 2-core VM (the 15 s clip ~1.5 of them), and
the first run ~90 s more to make the inputs; bench/batch.py, the rest of `make bench`, 1.6.

Methods:
  pack          kling_omni.video.decode_video (one preallocated tensor, selection while
                decoding, decoding and filling the tensor side by side)
  naive         what ComfyUI's own video components do: frame.to_ndarray("rgb24") -> own
                float tensor / 255 per frame, then torch.stack
  decode-floor  threaded PyAV decode to rgb24 uint8 with one cached swscale context, nothing
                kept, no float conversion: the least codec work any decoder must do
  memory-floor  no decoding: a fresh float32 tensor of the output's size, each frame slot
                written once from one uint8 frame (page faults plus writes): the least memory
                work any decoder that returns the frames must do
  both-floors   the two floors at once in one process, independent (one thread decodes as
                decode-floor while another fills as memory-floor): what this machine's cores
                allow for the pair, shown for reference (no target)
The pack does both floors' work; done side by side it should take little more than the
larger of the two where the cores allow it, and little more than both-floors anywhere.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import inputs  # noqa: E402
from memory import status_kb  # noqa: E402

MODES = {"full": {}, "selective": {"max_frames": 48, "max_side": 960}}
MODE_LABELS = {"full": "all frames", "selective": "max_frames=48, max_side=960"}
METHODS = ("pack", "naive", "decode-floor", "memory-floor", "both-floors")
GB = 1e9


@dataclass(frozen=True)
class Case:
    """One clip and what is measured on it."""

    seconds: int
    modes: tuple[str, ...]
    methods: tuple[str, ...]
    left_out: str = ""  # what is not measured on this clip, and why; printed under its tables


CASES = (
    Case(10, tuple(MODES), METHODS),
    Case(15, ("full",), tuple(m for m in METHODS if m != "naive"),
         left_out="Not run on the 15 s clip: naive (it peaks at 3.0x its output, ~27 GB here; it does not "
                  "fit in 24 GiB), and max_frames=48, max_side=960 (48 frames cost the same as at 10 s)."),
)


# --- worker: one decode in this process -----------------------------------------------------

def worker(method: str, mode: str, clip: str) -> dict:
    import threading

    import av
    import numpy as np
    import torch
    from av.video.reformatter import VideoReformatter

    from scripts.load_pack import load_pack
    load_pack()
    from kling_omni.video import FrameSelection, decode_video

    opts = MODES[mode]
    max_frames = opts.get("max_frames", 0)
    max_side = opts.get("max_side", 0)
    with av.open(clip) as c:  # output shape, as the pack computes it
        s = c.streams.video[0]
        selection = FrameSelection(**opts)
        width, height = selection.output_size(s.codec_context.width, s.codec_context.height)
        count = selection.count(s.frames, float(s.average_rate))
    resize = {} if not max_side else {"width": width, "height": height}

    def decode_floor() -> int:
        decoded = 0
        reformatter = VideoReformatter()
        with av.open(clip) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                reformatter.reformat(frame, format="rgb24", interpolation="AREA" if resize else None,
                                     **resize).to_ndarray()
                decoded += 1
                if max_frames and decoded >= max_frames:
                    break
        return decoded

    def memory_floor() -> torch.Tensor:
        out = torch.empty((count, height, width, 3), dtype=torch.float32)
        rgb = np.full((height, width, 3), 128, dtype=np.uint8)
        for slot in out.numpy():
            np.multiply(rgb, np.float32(1.0 / 255.0), out=slot)
        return out

    before = status_kb("VmRSS")
    start = time.perf_counter()
    out_bytes = 0
    frames = 0
    if method == "pack":
        result = decode_video(clip, FrameSelection(**opts), want_audio=False)
        out_bytes, frames = result.frames.numel() * 4, result.frames.shape[0]
    elif method == "naive":
        images = []
        with av.open(clip) as container:
            for frame in container.decode(video=0):
                img = frame.to_ndarray(format="rgb24", **resize)
                images.append(torch.from_numpy(img) / 255.0)
                if max_frames and len(images) >= max_frames:
                    break
        result = torch.stack(images)
        del images
        out_bytes, frames = result.numel() * 4, result.shape[0]
    elif method == "decode-floor":
        frames = decode_floor()
    elif method == "memory-floor":
        out = memory_floor()
        out_bytes, frames = out.numel() * 4, count
    elif method == "both-floors":
        decoder = threading.Thread(target=decode_floor)
        decoder.start()
        out = memory_floor()
        decoder.join()
        out_bytes, frames = out.numel() * 4, count
    wall = time.perf_counter() - start
    return {"method": method, "mode": mode, "wall": wall, "rss_before": before * 1024,
            "peak": status_kb("VmHWM") * 1024, "out_bytes": out_bytes, "frames": frames}


# --- driver ------------------------------------------------------------------------------------

def run_worker(method: str, mode: str, clip: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, mode, str(clip)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        killed = " (killed by the kernel: out of memory?)" if done.returncode == -9 else ""
        raise SystemExit(f"{method}/{mode} worker on {clip.name} failed{killed}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_decode(clips: dict[Case, Path], repeat: int) -> dict[Case, dict]:
    """The fastest run of each (method, mode), per case."""
    best: dict[Case, dict[tuple[str, str], dict]] = {case: {} for case in clips}
    for round_no in range(repeat):
        for case, clip in clips.items():
            # Each round starts with another method: none always follows the same neighbour.
            shift = round_no % len(case.methods)
            for mode in case.modes:
                for method in case.methods[shift:] + case.methods[:shift]:
                    r = run_worker(method, mode, clip)
                    print(f"  round {round_no + 1}: {case.seconds:2} s {mode:9} {method:12} {r['wall']:6.2f} s  "
                          f"peak {r['peak'] / GB:5.2f} GB", flush=True)
                    key = (method, mode)
                    if key not in best[case] or r["wall"] < best[case][key]["wall"]:
                        best[case][key] = r
    return best


def bench_images() -> list[dict]:
    import numpy as np
    from PIL import Image

    from scripts.load_pack import load_pack
    load_pack()
    from kling_omni.images import MAX_IMAGE_BYTES, encode_image

    rows = []
    for width, height in inputs.IMAGE_SIZES:
        pixels = np.load(inputs.image_path(width, height))
        encode_image(pixels[:512, :512])  # warm the codecs once
        start = time.perf_counter()
        enc = encode_image(pixels)
        pack_s = time.perf_counter() - start
        start = time.perf_counter()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        png_s = time.perf_counter() - start
        rows.append({"size": f"{width}x{height}", "pack_s": pack_s, "pack_bytes": enc.nbytes,
                     "b64_bytes": len(enc.b64), "format": enc.format, "sent": f"{enc.width}x{enc.height}",
                     "passes": enc.passes, "png_s": png_s, "png_bytes": len(buffer.getvalue()),
                     "ok": enc.nbytes <= MAX_IMAGE_BYTES and enc.passes <= 2})
    return rows


def floor_wall(best: dict, mode: str) -> float:
    return max(best[("decode-floor", mode)]["wall"], best[("memory-floor", mode)]["wall"])


def decode_targets(best: dict) -> list[tuple[str, float, float, float]]:
    """(target, measured, limit, floor) for one clip's decode; each holds when measured <= limit.
    `floor` is what the larger floor alone measures on the same scale, where that means something:
    a limit below it cannot be met by any decoder on this machine. Targets against naive or the
    selective decode are there only where those were measured."""
    full = best[("pack", "full")]
    larger_floor = floor_wall(best, "full")
    targets = [("full decode wall <= 1.5x the larger floor", full["wall"] / larger_floor, 1.5, 1.0)]
    if ("naive", "full") in best:
        naive = best[("naive", "full")]
        targets += [
            ("full decode wall <= 0.10x naive", full["wall"] / naive["wall"], 0.10, larger_floor / naive["wall"]),
            ("full decode peak RSS <= 0.6x naive", full["peak"] / naive["peak"], 0.6, 0.0),
        ]
    targets.append(("full decode peak above pre-decode RSS <= 1.05x output bytes",
                    (full["peak"] - full["rss_before"]) / full["out_bytes"], 1.05, 0.0))
    if ("pack", "selective") in best:
        sel = best[("pack", "selective")]
        targets += [
            ("selective wall <= 0.3x pack full", sel["wall"] / full["wall"], 0.3, 0.0),
            ("selective peak RSS <= 0.2x pack full", sel["peak"] / full["peak"], 0.2, 0.0),
        ]
    return targets


def report_decode(case: Case, best: dict) -> None:
    """One clip's tables: every method's best run, then the pack's ratios to the others."""
    print(f"| decode ({case.seconds} s {inputs.CLIP_W}x{inputs.CLIP_H} {inputs.CLIP_FPS} fps H.264) | method | frames "
          "| wall s | peak RSS GB | RSS before GB | output GB | peak-before / output |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in case.modes:
        for method in case.methods:
            r = best[(method, mode)]
            out = r["out_bytes"]
            growth = f"{(r['peak'] - r['rss_before']) / out:.3f}x" if out else "-"
            print(f"| {MODE_LABELS[mode]} | {method} | {r['frames']} | {r['wall']:.2f} | {r['peak'] / GB:.2f} | "
                  f"{r['rss_before'] / GB:.2f} | {out / GB:.2f} | {growth} |")
    print()
    print(f"| ratio ({case.seconds} s) | " + " | ".join(MODE_LABELS[mode] for mode in case.modes) + " |")
    print("|---" * (1 + len(case.modes)) + "|")
    ratios = [("pack/larger floor wall", lambda m: best[("pack", m)]["wall"] / floor_wall(best, m))]
    for other in ("decode-floor", "memory-floor", "both-floors", "naive"):
        if other in case.methods:
            ratios.append((f"pack/{other} wall",
                           lambda m, o=other: best[("pack", m)]["wall"] / best[(o, m)]["wall"]))
    for other in ("memory-floor", "naive"):
        if other in case.methods:
            ratios.append((f"pack/{other} peak RSS",
                           lambda m, o=other: best[("pack", m)]["peak"] / best[(o, m)]["peak"]))
    for name, ratio in ratios:
        print(f"| {name} | " + " | ".join(f"{ratio(mode):.2f}x" for mode in case.modes) + " |")
    if case.left_out:
        print()
        print(case.left_out)
    print()


def report(results: dict[Case, dict], image_rows: list[dict], repeat: int) -> bool:
    import av
    import torch
    print()
    print(f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}); "
          f"best of {repeat} runs, each in a fresh process")
    print()
    for case, best in results.items():
        report_decode(case, best)

    print("| image | pack format | sent as | passes | pack s | pack bytes | Base64 bytes | plain PNG s | "
          "plain PNG bytes | pack/PNG bytes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in image_rows:
        print(f"| {row['size']} | {row['format']} | {row['sent']} | {row['passes']} | {row['pack_s']:.3f} | "
              f"{row['pack_bytes']:,} | {row['b64_bytes']:,} | {row['png_s']:.3f} | {row['png_bytes']:,} | "
              f"{row['pack_bytes'] / row['png_bytes']:.2f}x |")
    print()
    ok = True
    print("| clip | target | measured | holds |")
    print("|---|---|---|---|")
    # A target below what the larger floor alone measures cannot be met by any decoder on this
    # machine: it is shown as missed, and left out of the exit status, which then still catches
    # a regression of what can be met.
    for case, best in results.items():
        for name, value, limit, floor in decode_targets(best):
            holds = value <= limit
            unreachable = not holds and floor > limit
            ok &= holds or unreachable
            verdict = "yes" if holds else "NO" + (f" (unreachable here: the larger floor alone is {floor:.3f})"
                                                   if unreachable else "")
            print(f"| {case.seconds} s | {name} | {value:.3f} | {verdict} |")
    images_ok = all(row["ok"] for row in image_rows)
    ok &= images_ok
    print(f"| images | every image under 10 MB within 2 encodes | "
          f"{max(r['passes'] for r in image_rows)} pass(es), max {max(r['pack_bytes'] for r in image_rows):,} B "
          f"| {'yes' if images_ok else 'NO'} |")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the fastest is reported")
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "MODE", "CLIP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    print("Preparing inputs in bench/.work/ (first run only: ~90 s) ...", flush=True)
    clips = {case: inputs.clip_path(case.seconds) for case in CASES}
    for width, height in inputs.IMAGE_SIZES:
        inputs.image_path(width, height)
    print("Decoding ...", flush=True)
    results = bench_decode(clips, max(1, args.repeat))
    print("Encoding images ...", flush=True)
    image_rows = bench_images()
    return 0 if report(results, image_rows, max(1, args.repeat)) else 1


if __name__ == "__main__":
    sys.exit(main())
