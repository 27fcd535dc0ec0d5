"""The batch run (--batch, --batch-only): variations and prompt lists at the account's pace. A
fresh ComfyUI against a fake account that allows 3 tasks in flight (each task 6 s): 8 variations in
one queued run (8 tasks created, no more; 8 whole MP4s; frames for each through a core SaveImage;
no failed node; about ceil(8/3) task durations, against one chain measured in the same run),
re-queued (nothing sent), raised to 10 (exactly 2 more), and the prompt-list template."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .comfy import PROMPT_TIMEOUT, connect, node_of, outcome_text, outputs, poll_nodes, template_prompt
from .common_checks import check_log, check_no_key
from .media import output_path, video_info
from .processes import Service, comfyui, start_fake_server
from .report import Report


BATCH_LIMIT = 3  # the fake account's tasks in flight
BATCH_TASK_SECONDS = 6  # each task: 1 s submitted + 5 s processing
BATCH_CLIP = (3, 24)  # seconds, fps of the result video: a whole MP4 has 72 frames


def start_batch_fake_server(work: Path, key: str) -> tuple[Service, str]:
    """A fake account of its own that allows BATCH_LIMIT tasks in flight and logs every creation."""
    return start_fake_server(work, key, processing_seconds=BATCH_TASK_SECONDS - 1, name="fake_cometapi_batch",
                             video_seconds=BATCH_CLIP[0],
                             extra=("--max-in-flight", str(BATCH_LIMIT), "--log-creations"))


def creations(fake: Service) -> tuple[list, int]:
    """(task ids the fake account created, creations it refused with 429) so far, from its log."""
    log = fake.log()
    return re.findall(r"creation answered 2\d\d: task (\S+)", log), len(re.findall(r"creation answered 429", log))


def batch_prompt(info: dict, name: str, variations: int | None = None) -> tuple[dict, dict]:
    """(API prompt, UI workflow) of a template; Poll's frames also feed ImageFromBatch → SaveImage,
    which runs once per variation (the first frame of each)."""
    prompt, workflow = template_prompt(name, info)
    submit_id = node_of(prompt, "CometOmniSubmit")
    if variations is not None:
        prompt[submit_id]["inputs"]["variations"] = variations
    poll_id = poll_nodes(prompt)[0]
    prompt["9101"] = {"class_type": "ImageFromBatch", "inputs": {"image": [poll_id, 0], "batch_index": 0, "length": 1}}
    prompt["9102"] = {"class_type": "SaveImage", "inputs": {"images": ["9101", 0], "filename_prefix": f"batch/{name}"}}
    return prompt, workflow


def check_batch_outputs(report: Report, label: str, run: dict, prompt: dict, base: Path, expected: int) -> list:
    """Every variation's whole MP4 on disk, Poll's history entry for each, and a first frame saved by
    the core SaveImage for each. Returns the task ids."""
    poll_id = poll_nodes(prompt)[0]
    out = outputs(run, poll_id)
    task_ids, videos = out.get("task_id") or [], out.get("images") or []
    report.check(len(task_ids) == len(set(task_ids)) == len(videos) == expected,
                 f"{label}: Poll returned {expected} tasks, each with its video preview",
                 f"{len(task_ids)} task ids ({len(set(task_ids))} distinct), {len(videos)} previews")
    frames = [video_info(output_path(base, v))["frames"] for v in videos]
    whole = BATCH_CLIP[0] * BATCH_CLIP[1]
    report.check(len(frames) == expected and all(f == whole for f in frames),
                 f"{label}: {expected} whole videos in the output folder", f"frames per MP4 {frames} (whole: {whole})")
    saved = outputs(run, "9102").get("images") or []
    files = [output_path(base, s) for s in saved]
    report.check(len(saved) == expected and all(f.is_file() and f.stat().st_size > 0 for f in files),
                 f"{label}: frames came back for each task (the core SaveImage ran once per variation)",
                 f"{len(saved)} images saved by SaveImage #9102")
    return task_ids


async def batch_run(args, report: Report, work: Path, key: str) -> None:
    """8 variations against an account that allows 3 tasks at once, then re-queued, then 10; the
    prompt-list template. Times are compared with one chain measured in the same run."""
    fake, fake_url = start_batch_fake_server(work, key)
    history = ""
    async with comfyui(args, work, "batch", fake_url, key) as c:
        report.note(f"batch run: ComfyUI at {c.url}, fake account at {fake_url} allowing {BATCH_LIMIT} tasks in "
                    f"flight, each task {BATCH_TASK_SECONDS} s")
        comfy, info = await connect(c)
        report.check("CometOmniPromptList" in info and info["CometOmniPromptList"]["output_is_list"] == [True],
                     "batch: /object_info has CometOmniPromptList, whose output is a list",
                     json.dumps(info.get("CometOmniPromptList", {}).get("output_is_list")))

        one, _ = batch_prompt(info, "Kling O1 text to video")
        for node in one.values():  # the variations template's request: a seed of its own, or it would be reused
            if node["class_type"] == "CometOmniSubmit":
                node["inputs"]["seed"] = 1000
        one_run = await comfy.run(one)
        report.check(one_run["outcome"] == "success", "batch: one chain (the yardstick) runs", outcome_text(one_run))
        chain = one_run["seconds"]

        prompt, workflow = batch_prompt(info, "Kling O1 variations, four tasks in one run", variations=8)
        made_before, refused_before = creations(fake)
        run = await comfy.run(prompt, workflow, timeout=PROMPT_TIMEOUT + 8 * BATCH_TASK_SECONDS)
        made, refused = creations(fake)
        new = made[len(made_before):]
        failed = [d for _, kind, d in comfy.events if kind == "execution_error"
                  and isinstance(d, dict) and d.get("prompt_id") == run.get("prompt_id")]
        report.check(run["outcome"] == "success" and not failed, "batch: 8 variations run with no failed node",
                     outcome_text(run))
        report.check(len(new) == 8, "batch: 8 variations create 8 tasks, no more",
                     f"{len(new)} created, {refused - refused_before} creations answered 429 (nothing made)")
        if run["outcome"] == "success":
            ids = check_batch_outputs(report, "batch", run, prompt, c.base, 8)
            report.check(sorted(ids) == sorted(new), "batch: Poll's tasks are the ones the account created",
                         f"{len(set(ids) & set(new))} of 8 match")
        rounds = -(-8 // BATCH_LIMIT)
        submit_id = node_of(prompt, "CometOmniSubmit")
        waits = [t for _, t in comfy.texts(submit_id, run["start"]) if t.startswith("waiting for a free slot")]
        report.check(any(f"({BATCH_LIMIT} running" in t for t in waits),
                     "batch: Submit said it was waiting for a free slot", (waits or ["(no such status)"])[0][:200])
        report.check((rounds - 1) * BATCH_TASK_SECONDS <= run["seconds"] <= rounds * chain * 1.5,
                     f"batch: 8 variations at {BATCH_LIMIT} at once take about ceil(8/{BATCH_LIMIT}) = {rounds} task "
                     f"durations", f"{run['seconds']:.1f} s; one chain {chain:.1f} s in this run "
                     f"({run['seconds'] / chain:.2f}x; allowed {(rounds - 1) * BATCH_TASK_SECONDS} s to "
                     f"{rounds * chain * 1.5:.1f} s)")

        again = await comfy.run(prompt, workflow)
        report.check(again["outcome"] == "success" and creations(fake) == (made, refused),
                     "batch: re-queueing the run sends nothing", f"{outcome_text(again)}; "
                     f"{len(creations(fake)[0]) - len(made)} creations")

        ten, _ = batch_prompt(info, "Kling O1 variations, four tasks in one run", variations=10)
        more = await comfy.run(ten, workflow, timeout=PROMPT_TIMEOUT + 4 * BATCH_TASK_SECONDS)
        made_ten = creations(fake)[0][len(made):]
        report.check(more["outcome"] == "success" and len(made_ten) == 2,
                     "batch: raising variations to 10 creates exactly 2 more tasks",
                     f"{outcome_text(more)}; {len(made_ten)} created")
        if more["outcome"] == "success":
            check_batch_outputs(report, "batch, 10 variations", more, ten, c.base, 10)

        listed, listed_workflow = batch_prompt(info, "Kling O1 prompt list, one task per line")
        lines = next(n for n in listed.values() if n["class_type"] == "CometOmniPromptList")["inputs"]["prompts"]
        before = len(creations(fake)[0])
        run_list = await comfy.run(listed, listed_workflow, timeout=PROMPT_TIMEOUT + 3 * BATCH_TASK_SECONDS)
        report.check(run_list["outcome"] == "success", "batch: the prompt-list template runs", outcome_text(run_list))
        if run_list["outcome"] == "success":
            count = len(lines.splitlines())
            report.check(len(creations(fake)[0]) - before == count,
                         f"batch: the prompt list creates one task per line ({count})",
                         f"{len(creations(fake)[0]) - before} created")
            check_batch_outputs(report, "batch, prompt list", run_list, listed, c.base, count)
        history = await comfy.history_text()
        await comfy.close()
    log = c.proc.log()
    check_log(report, log, "batch run")
    check_no_key(report, "batch run", key, c.base, {"history": history, "ComfyUI log": log}, allowed=set())
