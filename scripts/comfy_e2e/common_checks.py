"""Checks every run makes: the pack imported and left no traceback, the key is nowhere it should
not be, and what a Poll node leaves (its history entry, its MP4, its status texts, a core
SaveVideo downstream)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .comfy import Comfy, outputs
from .media import media_metadata, output_path, video_info
from .pack import PACK_DIR_NAME
from .report import Report


async def close_page_checked(page, report: Report, comfy: Comfy, label: str) -> tuple:
    """The end of a browser run: no uncaught error from the pack's scripts, the page closed. Returns what
    check_no_key then searches: (the page's localStorage and sessionStorage, the history)."""
    storage = await page.js("JSON.stringify({local: {...localStorage}, session: {...sessionStorage}})")
    history = await comfy.history_text(100)
    ours = [e for e in page.errors if f"/extensions/{PACK_DIR_NAME}/" in e]
    report.check(not ours, f"{label}: no uncaught error from the pack's scripts", "; ".join(ours)[:800])
    if page.errors and not ours:
        report.note(f"(uncaught errors from the frontend itself: {'; '.join(page.errors)[:400]})")
    await page.close()
    return storage, history


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



def check_poll_output(report: Report, label: str, run: dict, node_id: str, base: Path,
                      expect_task: str | None = None) -> str | None:
    """The Poll's history entry has the video preview and the task id; the MP4 exists. Returns the task id."""
    out = outputs(run, node_id)
    images = out.get("images") or []
    task_ids = out.get("task_id") or []
    # One entry per task: a Poll mapped over a batch's tasks has several.
    ok = (images and len(images) == len(task_ids) and all(task_ids) and out.get("animated") == [True] * len(images)
          and all(e.get("filename", "").endswith(".mp4") and e.get("type") == "output" for e in images)
          and (expect_task is None or task_ids == [expect_task]))
    report.check(ok, f"{label}: Poll #{node_id} history has the video preview entry and the task id",
                 json.dumps(out)[:400])
    paths = [output_path(base, e) for e in images]
    sizes = [path.stat().st_size if path.is_file() else 0 for path in paths]
    report.check(paths and all(size > 0 and video_info(path)["frames"] > 0 for path, size in zip(paths, sizes)),
                 f"{label}: the MP4 is in the output folder",
                 ", ".join(f"{path.relative_to(base)} ({size} bytes)" for path, size in zip(paths, sizes)))
    return task_ids[0] if task_ids else None


def check_status_texts(report: Report, label: str, comfy: Comfy, run: dict, node_id: str) -> None:
    texts = [text for _, text in comfy.texts(node_id, run["start"])]
    first_lines = list(dict.fromkeys(t.split("\n")[0] for t in texts))
    waiting = [t for t in first_lines if re.search(r"\d+ s$", t)]
    report.check(len(first_lines) >= 3 and waiting and first_lines[-1].startswith("done"),
                 f"{label}: Poll #{node_id} sent changing status text", " | ".join(first_lines)[:300])


def check_saved_video(report: Report, label: str, run: dict, node_id: str, base: Path) -> None:
    """Core nodes downstream of Poll ran: SaveVideo wrote a playable file with sound."""
    entry = (outputs(run, node_id).get("images") or [{}])[0]
    info = video_info(output_path(base, entry))  # all zeros when there is no such file
    report.check(info["frames"] > 0 and info["audio"],
                 f"{label}: CreateVideo → SaveVideo #{node_id} ran on Poll's frames and audio",
                 f"{entry.get('filename')}: {info['frames']} frames at {info['fps']:.1f} fps, "
                 f"audio={info['audio']}, metadata keys {sorted(info['metadata'])}")


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


def pack_data_dir(base: Path) -> Path:
    """The pack's private folder (key file, journal): ComfyUI's system-user folder (0.3.76 and
    later), else the pack's data/ folder."""
    system = base / "user" / "__cometapi_omni"
    return system if system.is_dir() else base / "custom_nodes" / PACK_DIR_NAME / "data"


def pack_key_file(base: Path) -> Path:
    return pack_data_dir(base) / "key"

