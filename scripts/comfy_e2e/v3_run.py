"""The Kling 3.0 run (--v3, --v3-only): issue 15's "Done when" in a real ComfyUI, against a fake
CometAPI in this process whose result clips follow the request (its duration at 24 fps, 1080p for
pro and 720p for std, an AAC track with sound on; each frame shows its index and its shot number,
fake_cometapi.media) and whose recorded requests the checks read. One ComfyUI with COMETAPI_KEY:

- the v3 sound template (12 s, pro, sound on): what was sent; the saved MP4 has 288 frames at
  1920x1080 and a 12 s AAC track that is not silent; Poll's frames output has 288 frames (counted
  by the core GetImageSize) and its AUDIO, saved by the core SaveAudio, lasts 12 s and is not
  silent. Poll gets max_side 160 there (288 frames at 1080p are 7.2 GB as float32): the full size
  is checked on the MP4, decoded one frame at a time;
- the storyboard template (3 Shot nodes, 4 + 3 + 5 s, on a 12 s Prompt): the shots sent in chain
  order; 288 frames in the MP4 and out of Poll (each saved by the core SaveImage), their shot
  numbers 1, 2, 3 in order in the proportions 4:3:5;
- auto_shots sends multi_shot with shot_type "intelligence" and no shots;
- each combination Kling refuses stops at its node with an error naming the node and the input,
  and no request reaches the fake;
- a route without v3 (the fake refusing it as Kling would, then as a gateway would): the error
  says kling-v3-omni is not served and to pick kling-video-o1, and no task is made;
- from before Kling 3.0: a workflow saved then (4 Prompt values), converted as the frontend loads
  it (web/lib/saved_prompt.js), and an API prompt without a model both run as kling-video-o1;
- the upgrade, in a base directory of its own: the previous version of the pack (PREVIOUS_VERSION,
  from this checkout's git) creates and collects an O1 task; ComfyUI is stopped, the pack replaced
  by this version (its data/ folder kept, as a `git pull` keeps it) and started again: the same
  API prompt queued again creates nothing and gets the same task.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from .comfy import PROMPT_TIMEOUT, connect, node_of, outcome_text, outputs, template_prompt, to_api_prompt, widget_names
from .common_checks import check_log, check_no_key, pack_data_dir
from .media import audio_facts, frame_marks, image_marks, output_path
from .pack import OLD_WORKFLOW, PACK_DIR_NAME, REPO, V3_SOUND_TEMPLATE, V3_STORYBOARD_TEMPLATE, template_nodes
from .processes import comfyui, in_process_fake_server, install_pack, make_base_dir
from .report import Report

V3, O1 = "kling-v3-omni", "kling-video-o1"
BEFORE_MODELS = {"model": O1, "sound": False, "auto_shots": False}  # web/lib/saved_prompt.js
PREVIOUS_VERSION = "19cde06"  # the pack before Kling 3.0
FPS = 24  # Kling's (and the fake's) frame rate
SMALL = 160  # Poll's max_side where its frames are counted: 288 frames at 1080p are 7.2 GB as float32
V3_TIMEOUT = PROMPT_TIMEOUT + 120  # a 12 s 1080p clip is made, fetched and decoded
# Core nodes added after Poll to read its outputs.
PROBE = {"size": "9301", "count": "9302", "fps": "9303", "frames": "9304", "audio": "9305"}
TOO_MANY_SHOTS = 7  # Kling takes at most 6
VIDEO_URL = "https://example.com/reference.mp4"  # checked as a URL only: nothing fetches it


def creation_requests(fake) -> list:
    from fake_cometapi.server import API_PATH
    return [r for r in fake.requests if r.method == "POST" and r.path == API_PATH]


async def run_and_record(comfy, fake, prompt: dict, workflow: dict | None = None) -> tuple[dict, list[dict]]:
    """Queue a prompt and wait for its end: (the run, the bodies of the creation requests the fake got)."""
    sent = len(creation_requests(fake))
    run = await comfy.run(prompt, workflow, timeout=V3_TIMEOUT)
    return run, [r.body for r in creation_requests(fake)[sent:]]


def probe_poll(prompt: dict, name: str, frames: bool = False, audio: bool = False) -> str:
    """Poll's outputs through core nodes: its frames, made small by max_side, counted by GetImageSize
    and shown with its fps by PreviewAny; with `frames` each frame saved by SaveImage, with `audio`
    its AUDIO saved by SaveAudio (FLAC). Returns Poll's id."""
    poll = node_of(prompt, "CometOmniPoll")
    prompt[poll]["inputs"]["max_side"] = SMALL
    prompt[PROBE["size"]] = {"class_type": "GetImageSize", "inputs": {"image": [poll, 0]}}
    prompt[PROBE["count"]] = {"class_type": "PreviewAny", "inputs": {"source": [PROBE["size"], 2]}}
    prompt[PROBE["fps"]] = {"class_type": "PreviewAny", "inputs": {"source": [poll, 3]}}
    if frames:
        prompt[PROBE["frames"]] = {"class_type": "SaveImage",
                                   "inputs": {"images": [poll, 0], "filename_prefix": f"v3/{name}"}}
    if audio:
        prompt[PROBE["audio"]] = {"class_type": "SaveAudio",
                                  "inputs": {"audio": [poll, 1], "filename_prefix": f"v3/{name}"}}
    return poll


def shown(run: dict, probe: str) -> str | None:
    """The text a PreviewAny probe showed."""
    return (outputs(run, PROBE[probe]).get("text") or [None])[0]


def runs_of(values: list) -> str:
    """[1, 1, 2] as '1×2, 2×1': shot numbers in order, with how many frames each."""
    out = []
    for value in values:
        if out and out[-1][0] == value:
            out[-1][1] += 1
        else:
            out.append([value, 1])
    return ", ".join(f"{v}×{n}" for v, n in out)


def variant(name: str, info: dict, **prompt_inputs) -> tuple[dict, str]:
    """A template's API prompt with these Prompt inputs changed; (prompt, the Prompt's id)."""
    prompt, _ = template_prompt(name, info)
    prompt_id = node_of(prompt, "CometOmniPrompt")
    prompt[prompt_id]["inputs"].update(prompt_inputs)
    return prompt, prompt_id


def with_video(prompt: dict, prompt_id: str, refer_type: str) -> dict:
    prompt["9401"] = {"class_type": "CometOmniVideoRef",
                      "inputs": {"video_url": VIDEO_URL, "refer_type": refer_type, "keep_original_sound": False}}
    prompt[prompt_id]["inputs"]["refs"] = ["9401", 0]
    return prompt


def with_first_and_end_frame(prompt: dict, prompt_id: str) -> dict:
    prompt["9411"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    prompt["9412"] = {"class_type": "CometOmniImageRef", "inputs": {"image": ["9411", 0], "role": "first_frame"}}
    prompt["9413"] = {"class_type": "CometOmniImageRef",
                      "inputs": {"image": ["9411", 0], "role": "end_frame", "refs": ["9412", 0]}}
    prompt[prompt_id]["inputs"]["refs"] = ["9413", 0]
    return prompt


def with_shot(graph: dict, number: int, **inputs) -> tuple[dict, str]:
    """The storyboard's API prompt with its shot `number` (1 = furthest upstream) changed; (that prompt,
    the Shot's id)."""
    _, shots = template_nodes(V3_STORYBOARD_TEMPLATE)
    shot_id = str(shots[number - 1]["id"])
    graph[shot_id]["inputs"].update(inputs)
    return graph, shot_id


def with_shots(prompt: dict, prompt_id: str, count: int, seconds: int) -> dict:
    """The template's shots replaced by a chain of `count` shots of `seconds` each."""
    for node_id in [n for n, node in prompt.items() if node["class_type"] == "CometOmniShot"]:
        del prompt[node_id]
    before = None
    for number in range(1, count + 1):
        node_id = str(9500 + number)
        prompt[node_id] = {"class_type": "CometOmniShot",
                           "inputs": {"prompt": f"shot {number} of {count}", "duration": seconds}}
        if before:
            prompt[node_id]["inputs"]["shots"] = [before, 0]
        before = node_id
    prompt[prompt_id]["inputs"]["shots"] = [before, 0]
    prompt[prompt_id]["inputs"]["duration"] = count * seconds
    return prompt


def as_frontend_loads(workflow: dict, info: dict) -> dict:
    """A saved workflow as the frontend loads it with the pack's web/lib/saved_prompt.js: a Prompt
    whose saved values hold no model name at the model's place was saved before the model choice,
    and gets kling-video-o1, no sound, no auto shots; every other value stays as saved."""
    names = widget_names(info["CometOmniPrompt"])
    at = names.index("model")
    for node in workflow["nodes"]:
        values = node.get("widgets_values")
        if node["type"] != "CometOmniPrompt" or not isinstance(values, list):
            continue
        if len(values) > at and isinstance(values[at], str) and values[at].strip():
            continue  # saved with a model: the user's choice
        values.extend([None] * (len(names) - len(values)))
        for name, value in BEFORE_MODELS.items():
            values[names.index(name)] = value
    return workflow


async def v3_sound(report: Report, comfy, info: dict, fake, base: Path) -> None:
    """The v3 sound template: 12 s, pro, sound on: 288 frames at 1080p and a 12 s sound."""
    label = "v3: text to video 12 s, pro, with sound"
    prompt, workflow = template_prompt(V3_SOUND_TEMPLATE, info)
    poll = probe_poll(prompt, "sound", audio=True)
    run, bodies = await run_and_record(comfy, fake, prompt, workflow)
    if not report.check(run["outcome"] == "success", f"{label} ({V3_SOUND_TEMPLATE}): runs to success",
                        outcome_text(run)):
        return
    asked = {k: (bodies[-1] if bodies else {}).get(k) for k in ("model_name", "mode", "duration", "sound")}
    report.check(len(bodies) == 1 and asked == {"model_name": V3, "mode": "pro", "duration": "12", "sound": "on"},
                 f"{label}: one creation request, for {V3}, pro, 12 s, sound on", f"{len(bodies)}: {json.dumps(asked)}")
    mp4 = output_path(base, (outputs(run, poll).get("images") or [{}])[0])
    clip = frame_marks(mp4)
    indexes = [index for index, _ in clip["marks"]]
    report.check(indexes == list(range(12 * FPS)) and (clip["width"], clip["height"]) == (1920, 1080)
                 and clip["fps"] == FPS, f"{label}: the saved MP4 has 288 frames at 1920x1080, 24 fps, in order",
                 f"{mp4.name}: {len(indexes)} frames at {clip['width']}x{clip['height']}, {clip['fps']:g} fps")
    sound = audio_facts(mp4)
    report.check(sound["codec"] == "aac" and abs(sound["seconds"] - 12) < 0.1 and sound["peak"] > 0.3,
                 f"{label}: the saved MP4 has a 12 s AAC track that is not silent",
                 f"{sound['codec']}, {sound['seconds']:.2f} s, peak {sound['peak']:.2f}")
    report.check(shown(run, "count") == str(12 * FPS) and shown(run, "fps") == "24.0",
                 f"{label}: Poll's frames output has 288 frames at 24 fps (counted by the core GetImageSize; "
                 f"max_side {SMALL} on Poll)", f"batch size {shown(run, 'count')}, fps {shown(run, 'fps')}")
    flac = output_path(base, (outputs(run, PROBE["audio"]).get("audio") or [{}])[0])
    heard = audio_facts(flac) if flac.is_file() else {"codec": None, "seconds": 0.0, "peak": 0.0}
    report.check(abs(heard["seconds"] - 12) < 0.1 and heard["peak"] > 0.3,
                 f"{label}: Poll's AUDIO lasts 12 s and is not silent (saved by the core SaveAudio)",
                 f"{flac.name}: {heard['codec']}, {heard['seconds']:.2f} s, peak {heard['peak']:.2f}")


async def v3_storyboard(report: Report, comfy, info: dict, fake, base: Path) -> None:
    """The storyboard template: 3 shots (4 + 3 + 5 s) on a 12 s Prompt, in chain order, frame by frame."""
    label = "v3: a storyboard of 3 Shot nodes (4 + 3 + 5 s) on a 12 s Prompt"
    _, shot_nodes = template_nodes(V3_STORYBOARD_TEMPLATE)
    lengths = [node["widgets_values"][1] for node in shot_nodes]
    expected_shots = [number for number, seconds in enumerate(lengths, start=1) for _ in range(seconds * FPS)]
    prompt, workflow = template_prompt(V3_STORYBOARD_TEMPLATE, info)
    poll = probe_poll(prompt, "storyboard", frames=True)
    run, bodies = await run_and_record(comfy, fake, prompt, workflow)
    if not report.check(run["outcome"] == "success", f"{label} ({V3_STORYBOARD_TEMPLATE}): runs to success",
                        outcome_text(run)):
        return
    body = bodies[-1] if bodies else {}
    shots = [(s.get("index"), s.get("prompt"), s.get("duration")) for s in body.get("multi_prompt") or []]
    chain = [(number, node["widgets_values"][0], str(node["widgets_values"][1]))
             for number, node in enumerate(shot_nodes, start=1)]
    report.check(len(bodies) == 1 and lengths == [4, 3, 5] and shots == chain and body.get("multi_shot") is True
                 and body.get("shot_type") == "customize" and body.get("duration") == "12",
                 f"{label}: one creation request with the shots in chain order",
                 f"{len(bodies)}: shot_type {body.get('shot_type')}, duration {body.get('duration')}, shots "
                 + "; ".join(f"{i}: {d} s {p[:30]!r}" for i, p, d in shots))
    mp4 = output_path(base, (outputs(run, poll).get("images") or [{}])[0])
    clip = frame_marks(mp4)
    indexes, numbers = [i for i, _ in clip["marks"]], [s for _, s in clip["marks"]]
    report.check(indexes == list(range(12 * FPS)) and numbers == expected_shots
                 and (clip["width"], clip["height"]) == (1920, 1080),
                 f"{label}: the saved MP4 has 288 frames at 1920x1080, shots 1, 2, 3 in order, 4:3:5",
                 f"{mp4.name}: {len(indexes)} frames at {clip['width']}x{clip['height']}; shot×frames {runs_of(numbers)}")
    saved = outputs(run, PROBE["frames"]).get("images") or []
    marks = image_marks([output_path(base, entry) for entry in saved])
    numbers = [s for _, s in marks]
    report.check([i for i, _ in marks] == list(range(12 * FPS)) and numbers == expected_shots
                 and shown(run, "count") == str(12 * FPS),
                 f"{label}: Poll's frames output has 288 frames, shots 1, 2, 3 in order, 4:3:5 (each frame saved by "
                 "the core SaveImage)", f"{len(saved)} frames saved (max_side {SMALL}); shot×frames {runs_of(numbers)}")


async def v3_auto_shots(report: Report, comfy, info: dict, fake) -> None:
    """auto_shots: Kling cuts the prompt into shots itself."""
    prompt, _ = variant(V3_SOUND_TEMPLATE, info, prompt="v3 run: a day at the harbour, dawn to dusk, cut by Kling",
                        mode="std", duration=3, sound=False, auto_shots=True)
    run, bodies = await run_and_record(comfy, fake, prompt)
    body = bodies[-1] if bodies else {}
    report.check(run["outcome"] == "success" and len(bodies) == 1 and body.get("multi_shot") is True
                 and body.get("shot_type") == "intelligence" and "multi_prompt" not in body,
                 'v3: auto_shots sends multi_shot with shot_type "intelligence" (and no shots of its own)',
                 f"{outcome_text(run)}; {len(bodies)} request(s): multi_shot {body.get('multi_shot')}, "
                 f"shot_type {body.get('shot_type')}, multi_prompt {'multi_prompt' in body}")


def refused_combinations(info: dict) -> list[tuple[str, dict, str, tuple]]:
    """(what, API prompt, the node type that refuses it, words its error must hold)."""
    def sound(**inputs):
        return variant(V3_SOUND_TEMPLATE, info, **inputs)

    def storyboard(**inputs):
        return variant(V3_STORYBOARD_TEMPLATE, info, **inputs)

    o1_storyboard, _ = storyboard(model=O1, duration=10)
    o1_storyboard, _ = with_shot(o1_storyboard, 3, duration=3)  # 4 + 3 + 3 = 10 s, a length O1 takes
    empty, empty_id = with_shot(storyboard()[0], 2, prompt="")
    long, long_id = with_shot(storyboard()[0], 2, prompt="x" * 513)
    return [
        ("sound on kling-video-o1", sound(model=O1, duration=10)[0], "CometOmniPrompt",
         ("CometOmniPrompt #", "› sound", "kling-video-o1 makes no sound")),
        ("sound with a video reference", with_video(*sound(), "feature"), "CometOmniPrompt",
         ("CometOmniPrompt #", "› sound", "with a video reference")),
        ("kling-video-o1 at 12 s", sound(model=O1, sound=False)[0], "CometOmniPrompt",
         ("CometOmniPrompt #", "› duration", "kling-video-o1 takes 3 to 10 seconds")),
        ("shots with kling-video-o1", o1_storyboard, "CometOmniPrompt",
         ("CometOmniPrompt #", "› shots", "storyboards need kling-v3-omni")),
        (f"{TOO_MANY_SHOTS} shots", with_shots(*storyboard(), TOO_MANY_SHOTS, 2), "CometOmniPrompt",
         ("CometOmniPrompt #", "› shots", "at most 6 shots")),
        ("a shot prompt empty", empty, "CometOmniShot", (f"CometOmniShot #{empty_id} › prompt", "the prompt is")),
        ("a shot prompt of 513 characters", long, "CometOmniShot",
         (f"CometOmniShot #{long_id} › prompt", "the limit is 512 characters")),
        ("shots of 4 + 3 + 5 s on a 10 s Prompt", storyboard(duration=10)[0], "CometOmniPrompt",
         ("CometOmniPrompt #", "› duration", "4 + 3 + 5 = 12 s")),
        ("shots with an end frame", with_first_and_end_frame(*storyboard()), "CometOmniPrompt",
         ("CometOmniPrompt #", "› shots", "with an end frame")),
        ("shots with a base video edit (refer_type base)", with_video(*storyboard(), "base"), "CometOmniPrompt",
         ("CometOmniPrompt #", "› shots", "with a base video edit")),
        ("shots and auto_shots both", storyboard(auto_shots=True)[0], "CometOmniPrompt",
         ("CometOmniPrompt #", "› auto_shots", "choose one")),
    ]


async def v3_refusals(report: Report, comfy, info: dict, fake) -> None:
    """Each combination Kling refuses stops at its node, before any request."""
    for what, prompt, node_type, words in refused_combinations(info):
        before = len(fake.requests)
        run = await comfy.run(prompt)
        error = run["error"] or {}
        message = (error.get("exception_message") or json.dumps(error)).strip()  # a refusal at queue time has none
        requests = fake.requests[before:]
        report.check(run["outcome"] in ("error", "rejected") and error.get("node_type", node_type) == node_type
                     and all(w in message for w in words) and "Nothing was sent" in message and not requests,
                     f"v3: refused before sending: {what}: the error names it, no request reaches the fake",
                     f"{run['outcome']} at {error.get('node_type')} #{error.get('node_id')}: {message[:300]}; "
                     f"{len(requests)} request(s)")


async def v3_route_without_v3(report: Report, comfy, info: dict, fake) -> None:
    """The fake refuses kling-v3-omni as a route without it would: in Kling's words, then a gateway's."""
    for style in ("kling", "gateway"):
        fake.refuse_v3 = style
        prompt, _ = variant(V3_SOUND_TEMPLATE, info, prompt=f"v3 run: a route without kling-v3-omni ({style})",
                            mode="std", duration=3, sound=False)
        created = fake.created_count
        run, refused = await run_and_record(comfy, fake, prompt)
        error = run["error"] or {}
        message = error.get("exception_message", "").strip()
        report.check(run["outcome"] == "error" and error.get("node_type") == "CometOmniSubmit"
                     and all(w in message for w in ("does not serve kling-v3-omni", "Nothing was created",
                                                    "Pick kling-video-o1"))
                     and fake.created_count == created,
                     f"v3: a route without v3 ({style} refusal): the error says kling-v3-omni is not served and to "
                     "pick kling-video-o1; nothing is created",
                     f"{message[:400]}; {len(refused)} creation request(s) refused, "
                     f"{fake.created_count - created} task(s) made")
    fake.refuse_v3 = ""


async def v3_before_models(report: Report, comfy, info: dict, fake) -> None:
    """A workflow saved before the model choice, loaded as the frontend loads it, and an API prompt
    without a model: both run as kling-video-o1."""
    old = as_frontend_loads(json.loads(OLD_WORKFLOW.read_text(encoding="utf-8")), info)
    from_old = to_api_prompt(old, info)
    bare, bare_id = variant("Kling O1 text to video", info, prompt="v3 run: an API prompt without a model")
    for name in BEFORE_MODELS:
        del bare[bare_id]["inputs"][name]
    for what, prompt in ((f"a workflow saved before the model choice ({OLD_WORKFLOW.name}, 4 Prompt values), "
                          "loaded as the frontend loads it,", from_old),
                         ("an API prompt without a model key", bare)):
        run, bodies = await run_and_record(comfy, fake, prompt)
        queued = {k: v for k, v in prompt[node_of(prompt, "CometOmniPrompt")]["inputs"].items() if k in BEFORE_MODELS}
        model = bodies[-1].get("model_name") if bodies else None
        report.check(run["outcome"] == "success" and len(bodies) == 1 and model == O1 and "sound" not in bodies[-1],
                     f"v3: {what} runs as kling-video-o1",
                     f"{outcome_text(run)}; queued {json.dumps(queued)}; the fake got model_name {model}")


def previous_pack(work: Path) -> Path:
    """The pack's files at PREVIOUS_VERSION, from this checkout's git (`git archive`)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", PREVIOUS_VERSION],
                             capture_output=True, timeout=60)
    if archive.returncode != 0:
        raise OSError(f"git archive {PREVIOUS_VERSION} in {REPO}: {archive.stderr.decode(errors='replace')[:300]}")
    target = work / f"pack-{PREVIOUS_VERSION}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


async def v3_upgrade(args, report: Report, work: Path, fake, key: str) -> None:
    """An O1 task paid with the previous version is found again, unpaid, after the upgrade."""
    label = f"v3: the upgrade from {PREVIOUS_VERSION} (before Kling 3.0)"
    try:
        previous = previous_pack(work)
    except (OSError, subprocess.SubprocessError, tarfile.TarError) as exc:
        report.check(False, f"{label}: the previous version's files", f"needs a git checkout holding it: {exc}")
        return
    base = make_base_dir(work, "upgrade", pack=previous)
    async with comfyui(args, work, "upgrade_before", fake.base_url, key, base=base) as c:
        comfy, info = await connect(c)
        workflow = json.loads((previous / "example_workflows" / "kling_omni_text_to_video.json").read_text())
        prompt = to_api_prompt(workflow, info)  # the previous version's own template: no model input at all
        prompt_id, poll = node_of(prompt, "CometOmniPrompt"), node_of(prompt, "CometOmniPoll")
        prompt[prompt_id]["inputs"]["prompt"] = "v3 run: an O1 video paid with the version before Kling 3.0"
        first, made = await run_and_record(comfy, fake, prompt)
        await comfy.close()
    task = (outputs(first, poll).get("task_id") or [None])[0]
    check_log(report, c.proc.log(), f"upgrade: the previous version ({PREVIOUS_VERSION})")
    if not report.check(first["outcome"] == "success" and len(made) == 1 and task
                        and "model" not in prompt[prompt_id]["inputs"],
                        f"{label}: the previous version creates and collects an O1 task",
                        f"{outcome_text(first)}; {len(made)} creation request(s), task {task}"):
        return

    # As `git pull` replaces it: the files change, the git-ignored data/ (ComfyUI 0.3.x's journal) stays.
    pack_dir = base / "custom_nodes" / PACK_DIR_NAME
    kept = work / "upgrade_pack_data"
    if (pack_dir / "data").exists():
        shutil.move(pack_dir / "data", kept)
    shutil.rmtree(pack_dir)
    install_pack(base)
    if kept.exists():
        shutil.move(kept, pack_dir / "data")
    journal = pack_data_dir(base) / "journal.sqlite3"
    report.note(f"upgrade: the pack replaced by this version; its journal {journal.relative_to(base)} kept "
                f"({journal.stat().st_size if journal.is_file() else 0} bytes)")
    async with comfyui(args, work, "upgrade_after", fake.base_url, key, base=base) as c:
        comfy, _ = await connect(c)
        again, made = await run_and_record(comfy, fake, prompt)
        said = [text.split("\n")[0] for _, text in comfy.texts(poll, again["start"])]
        await comfy.close()
    check_log(report, c.proc.log(), "upgrade: this version")
    same = (outputs(again, poll).get("task_id") or [None])[0]
    report.check(again["outcome"] == "success" and not made and same == task,
                 f"{label}: after the pack is replaced by this version, the same API prompt queued again creates "
                 "nothing and gets the same task",
                 f"{outcome_text(again)}; {len(made)} creation request(s); task {same} (before: {task}); Poll: {said[-1:]}")
    check_no_key(report, "upgrade", key, base, {"ComfyUI logs": (work / "upgrade_before.comfyui.log").read_text()
                                                 + c.proc.log()}, allowed=set())


async def v3_run(args, report: Report, work: Path, key: str) -> None:
    """Issue 15's "Done when" in a real ComfyUI, against a fake whose clips follow the request."""
    fake = in_process_fake_server(key, processing_seconds=2, follow_request=True)
    try:
        async with comfyui(args, work, "v3", fake.base_url, key) as c:
            report.note(f"v3 run: ComfyUI at {c.url}, fake CometAPI in this process at {fake.base_url} "
                        "(clips follow the request)")
            comfy, info = await connect(c)
            await v3_sound(report, comfy, info, fake, c.base)
            await v3_storyboard(report, comfy, info, fake, c.base)
            await v3_auto_shots(report, comfy, info, fake)
            await v3_refusals(report, comfy, info, fake)
            await v3_route_without_v3(report, comfy, info, fake)
            await v3_before_models(report, comfy, info, fake)
            history = await comfy.history_text()
            await comfy.close()
        log = c.proc.log()
        check_log(report, log, "v3 run", expected=("InputError", "ModelRefused"))
        check_no_key(report, "v3 run", key, c.base, {"history": history, "ComfyUI log": log}, allowed=set())
        await v3_upgrade(args, report, work, fake, key)
    finally:
        fake.stop()
