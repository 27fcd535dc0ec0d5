"""The env-key run: a ComfyUI with COMETAPI_KEY in its environment, against the fake CometAPI.

/object_info has the pack's node ids with the sockets issue 2 fixed (and Kling 3.0's); every
template in example_workflows/, converted to API format from /object_info, queues and runs to
success (each Poll's history entry, MP4 and status texts; a core SaveVideo downstream); two Polls
in one prompt wait at the same time; linking Poll's frames after a run re-runs Poll from disk,
unpaid. The key appears in no file, history or log.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from .common_checks import check_log, check_no_key, check_poll_output, check_saved_video, check_status_texts
from .comfy import Comfy, connect, node_of, outcome_text, outputs, poll_nodes, template_prompt, to_api_prompt
from .pack import template, template_names
from .processes import comfyui
from .report import CheckFailed, Report

NODE_IDS = ("CometOmniImageRef", "CometOmniElementRef", "CometOmniVideoRef",
            "CometOmniPrompt", "CometOmniShot", "CometOmniSubmit", "CometOmniPoll")
POLL_OUTPUTS = (["IMAGE", "AUDIO", "VIDEO", "FLOAT", "STRING", "STRING"],
                ["frames", "audio", "video", "fps", "task_id", "video_url"])
# issue 2's fixed sockets: (section, name, type); a list type is a COMBO with these options.
REQUIRED_INPUTS = {
    "CometOmniImageRef": [("required", "image", "IMAGE"),
                          ("required", "role", ["reference", "first_frame", "end_frame"]),
                          ("optional", "refs", "OMNI_REFS")],
    "CometOmniElementRef": [("required", "element_id", "STRING"), ("optional", "refs", "OMNI_REFS")],
    "CometOmniVideoRef": [("required", "video_url", "STRING"), ("required", "refer_type", ["base", "feature"]),
                          ("required", "keep_original_sound", "BOOLEAN"), ("optional", "refs", "OMNI_REFS")],
    "CometOmniPrompt": [("required", "prompt", "STRING"), ("required", "mode", ["pro", "std"]),
                        ("required", "aspect_ratio", ["16:9", "9:16", "1:1"]), ("required", "duration", "INT"),
                        ("optional", "model", ["kling-v3-omni", "kling-video-o1"]), ("optional", "sound", "BOOLEAN"),
                        ("optional", "auto_shots", "BOOLEAN"), ("optional", "refs", "OMNI_REFS"),
                        ("optional", "shots", "OMNI_SHOTS")],
    "CometOmniShot": [("required", "prompt", "STRING"), ("required", "duration", "INT"),
                      ("optional", "shots", "OMNI_SHOTS")],
    "CometOmniSubmit": [("required", "request", "OMNI_REQUEST"), ("required", "seed", "INT")],
    "CometOmniPoll": [("optional", "task", "OMNI_TASK"), ("optional", "task_id", "STRING")],
}
NODE_OUTPUTS = {"CometOmniImageRef": ["OMNI_REFS"], "CometOmniElementRef": ["OMNI_REFS"],
                "CometOmniVideoRef": ["OMNI_REFS"], "CometOmniPrompt": ["OMNI_REQUEST"], "CometOmniShot": ["OMNI_SHOTS"],
                "CometOmniSubmit": ["OMNI_TASK", "STRING"], "CometOmniPoll": POLL_OUTPUTS[0]}


def check_object_info(report: Report, info: dict) -> None:
    missing = [n for n in NODE_IDS if n not in info]
    report.check(not missing, f"/object_info has the {len(NODE_IDS)} node ids", f"missing {missing}" if missing else "")
    for node_id in NODE_IDS:
        if node_id not in info:
            continue
        spec, problems = info[node_id], []
        for section, name, kind in REQUIRED_INPUTS[node_id]:
            got = (spec["input"].get(section) or {}).get(name)
            if got is None:
                problems.append(f"no {section} input {name}")
                continue
            got_kind = got[0]
            if isinstance(kind, list):
                options = got_kind if isinstance(got_kind, list) else (got[1] or {}).get("options")
                if options != kind:
                    problems.append(f"{name} options {options} != {kind}")
            elif got_kind != kind:
                problems.append(f"{name} is {got_kind}, not {kind}")
        if spec["output"] != NODE_OUTPUTS[node_id]:
            problems.append(f"outputs {spec['output']} != {NODE_OUTPUTS[node_id]}")
        if node_id == "CometOmniPoll" and spec["output_name"] != POLL_OUTPUTS[1]:
            problems.append(f"output names {spec['output_name']}")
        if node_id == "CometOmniPrompt":  # 3 to 15 s since Kling 3.0 (O1's 3 to 10 are checked per model)
            duration = spec["input"]["required"].get("duration", [None, {}])[1] or {}
            if (duration.get("min"), duration.get("max"), duration.get("default")) != (3, 15, 5):
                problems.append(f"duration {duration}")
            model = (spec["input"].get("optional") or {}).get("model", [None, {}])[1] or {}
            if model.get("default") != "kling-v3-omni":
                problems.append(f"model {model}")
        report.check(not problems, f"{node_id} sockets as fixed in issue 2 (and the Kling 3.0 issue)",
                     "; ".join(problems))


async def create_task_directly(http: aiohttp.ClientSession, fake_url: str, key: str) -> str:
    """A task made outside ComfyUI, for the collect-by-id template."""
    body = {"model_name": "kling-video-o1", "prompt": "a task created outside ComfyUI", "mode": "std",
            "aspect_ratio": "16:9", "duration": "5"}
    async with http.post(f"{fake_url}/kling/v1/videos/omni-video", json=body,
                         headers={"Authorization": f"Bearer {key}"}) as r:
        data = await r.json()
    task_id = (data.get("data") or {}).get("task_id") or data.get("task_id") or data.get("id")
    if not task_id:
        raise CheckFailed(f"the fake server made no task: {data}")
    return str(task_id)


async def run_templates(report: Report, comfy: Comfy, info: dict, base: Path, fake_url: str, key: str) -> None:
    names = template_names()
    report.check(len(names) >= 2, "example_workflows has templates", f"{len(names)} found")
    for label in names:
        workflow = template(label)
        external_task = None
        for node in workflow["nodes"]:
            poll_without_task = node["type"] == "CometOmniPoll" and not any(
                i.get("link") is not None for i in node.get("inputs", []) if i["name"] == "task")
            if poll_without_task:
                external_task = await create_task_directly(comfy.http, fake_url, key)
                node["widgets_values"][0] = external_task
        try:
            prompt = to_api_prompt(workflow, info)
        except (KeyError, ValueError) as exc:
            report.check(False, f"{label}: converts to API format", repr(exc))
            continue
        run = await comfy.run(prompt, workflow)
        report.check(run["outcome"] == "success", f"{label}: runs to success", outcome_text(run))
        if run["outcome"] != "success":
            continue
        for node_id in poll_nodes(prompt):
            check_poll_output(report, label, run, node_id, base, expect_task=external_task)
            check_status_texts(report, label, comfy, run, node_id)
        for node_id, node in prompt.items():
            if node["class_type"] == "SaveVideo":
                check_saved_video(report, label, run, node_id, base)


async def check_linking_frames_later(report: Report, comfy: Comfy, info: dict) -> None:
    """Unlinked frames are not decoded; linking them later re-runs Poll, from disk and unpaid."""
    prompt, _ = template_prompt("Kling O1 text to video", info)
    poll_id = poll_nodes(prompt)[0]
    submit_id = node_of(prompt, "CometOmniSubmit")
    prompt[submit_id]["inputs"]["seed"] = 4242  # an intent of its own
    first = await comfy.run(prompt)
    linked = json.loads(json.dumps(prompt))
    linked["9001"] = {"class_type": "PreviewImage", "inputs": {"images": [poll_id, 0]}}
    # Poll's VIDEO is ComfyUI's own type: the core Save Video node takes it as it is.
    linked["9002"] = {"class_type": "SaveVideo", "inputs": {"video": [poll_id, 2], "filename_prefix": "video/from_poll",
                                                            "format": "auto", "codec": "auto"}}
    second = await comfy.run(linked)
    cached = {str(n) for _, kind, data in comfy.events if kind == "execution_cached"
              and isinstance(data, dict) and data.get("prompt_id") == second.get("prompt_id")
              for n in data.get("nodes", [])}
    previews = outputs(second, "9001").get("images") or []
    texts = [text for _, text in comfy.texts(poll_id, second["start"])]
    saved = outputs(second, "9002").get("images") or []
    report.check(len(saved) == 1 and saved[0].get("filename", "").endswith(".mp4"),
                 "Poll's video output feeds the core Save Video node", json.dumps(saved)[:300])
    report.check(first["outcome"] == second["outcome"] == "success" and poll_id not in cached
                 and submit_id in cached and len(previews) > 1 and any("from disk" in t for t in texts),
                 "linking Poll's frames after a run re-runs Poll from disk (Submit cached, nothing paid)",
                 f"cached {sorted(cached)}, {len(previews)} frame previews, status {texts[-1:]}")


async def check_concurrent_polls(report: Report, comfy: Comfy, info: dict) -> None:
    """Two Submit → Poll chains in one prompt: the second Poll must start before the first ends."""
    one, _ = template_prompt("Kling O1 text to video", info)
    prompt = {}
    for copy, words in ((0, "a red kite over the dunes"), (100, "a blue kite over the sea")):
        for nid, node in one.items():
            node = json.loads(json.dumps(node))
            for name, value in node["inputs"].items():
                if isinstance(value, list):
                    node["inputs"][name] = [str(int(value[0]) + copy), value[1]]
            if node["class_type"] == "CometOmniPrompt":
                node["inputs"]["prompt"] = words
            prompt[str(int(nid) + copy)] = node
    run = await comfy.run(prompt)
    if not report.check(run["outcome"] == "success", "two Polls in one prompt: runs to success",
                        outcome_text(run)):
        return
    spans = []
    for node_id in poll_nodes(prompt):
        times = comfy.texts(node_id, run["start"])
        done = [t for t, text in times if text.startswith("done")]
        spans.append((times[0][0] - run["start"], done[-1] - run["start"]) if times and done else None)
    overlap = None not in spans and spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]
    report.check(overlap, "two Polls in one prompt wait at the same time",
                 ", ".join(f"#{n} waited {s[0]:.1f}–{s[1]:.1f} s" if s else f"#{n} no status"
                           for n, s in zip(poll_nodes(prompt), spans)) + f"; prompt {run['seconds']:.1f} s")



async def env_key_run(args, report: Report, work: Path, fake_url: str, key: str) -> None:
    history = ""
    async with comfyui(args, work, "env_key", fake_url, key) as c:
        report.note(f"env-key run: ComfyUI at {c.url}, base directory {c.base}")
        comfy, info = await connect(c)
        check_object_info(report, info)
        status, body = await comfy.text("GET", "/cometapi_omni/key")
        report.check(status == 200 and json.loads(body).get("source") == "env" and key not in body,
                     "env-key run: GET /cometapi_omni/key answers a masked status (source env)", body)
        await run_templates(report, comfy, info, c.base, fake_url, key)
        await check_concurrent_polls(report, comfy, info)
        await check_linking_frames_later(report, comfy, info)
        history = await comfy.history_text()
        (work / "env_key.history.json").write_text(history)
        await comfy.close()
    log = c.proc.log()
    check_log(report, log, "env-key run")
    check_no_key(report, "env-key run", key, c.base, {"history": history, "ComfyUI log": log}, allowed=set())
