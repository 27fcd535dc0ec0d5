"""The templates in example_workflows/: every node exists, every widget value fits its input,
every link joins matching types, and the pack's nodes of each run against the fake server."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from tests import comfy_exec

FOLDER = Path(__file__).resolve().parent.parent / "example_workflows"
WORKFLOWS = sorted(FOLDER.glob("*.json"))
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}

# The core ComfyUI (0.3.64) nodes the templates use: their widgets in order, as (name, spec).
CORE_WIDGETS = {
    "LoadImage": [("image", "filename"), ("upload", ["image"])],
    "ImageScale": [("upscale_method", ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]),
                   ("width", ("INT", 0, 16384)), ("height", ("INT", 0, 16384)), ("crop", ["disabled", "center"])],
    "CreateVideo": [("fps", ("FLOAT", 1.0, 120.0))],
    "SaveVideo": [("filename_prefix", "STRING"), ("format", ["auto", "mp4"]), ("codec", ["auto", "h264"])],
    "Note": [("text", "STRING")],
}
CORE_TYPES = {"LoadImage": ({}, {0: "IMAGE", 1: "MASK"}), "ImageScale": ({0: "IMAGE"}, {0: "IMAGE"}),
              "CreateVideo": ({0: "IMAGE", 1: "AUDIO"}, {0: "VIDEO"}), "SaveVideo": ({0: "VIDEO"}, {}),
              "Note": ({}, {})}


def pack_widgets(node_class) -> list:
    spec = node_class.INPUT_TYPES()
    widgets = []
    for part in ("required", "optional"):
        for name, (kind, *rest) in spec.get(part, {}).items():
            options = rest[0] if rest else {}
            if isinstance(kind, list):
                widgets.append((name, kind))
            elif kind in ("INT", "FLOAT"):
                widgets.append((name, (kind, options.get("min", -2**63), options.get("max", 2**64))))
            elif kind in ("STRING", "BOOLEAN"):
                widgets.append((name, kind))
    return widgets


def fits(value, spec) -> bool:
    if spec == "filename":
        return isinstance(value, str) and value.endswith((".png", ".jpg", ".jpeg", ".webp"))
    if isinstance(spec, list):
        return value in spec
    if spec == "STRING":
        return isinstance(value, str)
    if spec == "BOOLEAN":
        return isinstance(value, bool)
    kind, low, high = spec
    number_ok = isinstance(value, int) if kind == "INT" else isinstance(value, (int, float))
    return number_ok and not isinstance(value, bool) and low <= value <= high


def load(path):
    return json.loads(path.read_text())


# One template per scenario, named by the sentence Browse Templates shows as its title.
SCENARIOS = {
    "v3 sound": "Kling 3.0 text to video with sound", "v3 storyboard": "Kling 3.0 storyboard in three shots",
    "text to video": "Kling O1 text to video", "image references": "Kling O1 video from image references",
    "first and end frame": "Kling O1 video from a first and an end frame",
    "elements": "Kling O1 video with elements from your library", "video edit": "Kling O1 edit of an input video",
    "video reference": "Kling O1 next shot from a reference video",
    "local pipeline": "Kling O1 in a local pipeline, frames in and out",
    "variations": "Kling O1 variations, four tasks in one run", "prompt list": "Kling O1 prompt list, one task per line",
    "collect by id": "Collect a Kling task by its id",
}


def test_there_are_templates_for_every_scenario():
    assert sorted(p.stem for p in WORKFLOWS) == sorted(SCENARIOS.values())
    for path in WORKFLOWS:  # Browse Templates shows <name>.jpg as the card
        assert path.with_suffix(".jpg").is_file()


def test_template_names_read_as_sentences_in_browse_templates():
    """The frontend shows a pack's template by its file name: as the title, and with - and _ made
    spaces as the description. A name is a sentence with neither, and nothing a URL must escape."""
    for path in WORKFLOWS:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9 .,]+", path.stem), path.stem
        assert "  " not in path.stem and not path.stem.endswith((" ", "."))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_nodes_widgets_and_links_are_valid(path):
    workflow = load(path)
    assert workflow["version"] == 0.4 and "COMETAPI_KEY=" not in path.read_text()
    by_id = {n["id"]: n for n in workflow["nodes"]}
    assert any(n["type"] == "Note" for n in workflow["nodes"]), "every template explains itself"
    for node in workflow["nodes"]:
        kind = node["type"]
        assert kind in NODES or kind in CORE_WIDGETS, f"unknown node type {kind}"
        widgets = pack_widgets(NODES[kind]) if kind in NODES else CORE_WIDGETS[kind]
        values = node.get("widgets_values", [])
        assert len(values) == len(widgets), f"{kind} #{node['id']}: {len(values)} values for {len(widgets)} widgets"
        for (name, spec), value in zip(widgets, values):
            assert fits(value, spec), f"{kind} #{node['id']} {name}={value!r} does not fit {spec}"
    for link_id, src, src_slot, dst, dst_slot, kind in workflow["links"]:
        out = by_id[src]["outputs"][src_slot]
        inp = by_id[dst]["inputs"][dst_slot]
        assert out["type"] == inp["type"] == kind and link_id in out["links"] and inp["link"] == link_id
        if by_id[src]["type"] in NODES:
            cls = NODES[by_id[src]["type"]]
            assert cls.RETURN_TYPES[src_slot] == kind and cls.RETURN_NAMES[src_slot] == out["name"]


def run_workflow(workflow: dict, task_id_for_collect: str = "") -> dict:
    """Execute the pack's nodes in link order, standing in for the core image sources."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {l[0]: l for l in workflow["links"]}
    outputs: dict = {}

    def ready(node):
        return all(i["link"] is None or links[i["link"]][1] in outputs for i in node["inputs"])

    pending = [n for n in workflow["nodes"] if n["type"] != "Note"]
    while pending:
        node = next(n for n in pending if ready(n))
        pending.remove(node)
        kind = node["type"]
        if kind in ("CreateVideo", "SaveVideo"):  # core sinks: ComfyUI's to run
            outputs[node["id"]] = ()
            continue
        # Every value is a list, as ComfyUI passes them (see tests/comfy_exec.py).
        linked = {i["name"]: outputs[links[i["link"]][1]][links[i["link"]][2]]
                  for i in node["inputs"] if i["link"] is not None}
        if kind == "LoadImage":
            rng = np.random.default_rng(node["id"])
            outputs[node["id"]] = ([torch.from_numpy(rng.random((1, 640, 640, 3), dtype=np.float32))], [None])
        elif kind == "ImageScale":
            _, width, height, _ = node["widgets_values"][:4]
            image = linked["image"][0].movedim(-1, 1)
            outputs[node["id"]] = ([torch.nn.functional.interpolate(image, size=(height, width)).movedim(1, -1)],)
        elif kind in NODES:
            cls = NODES[kind]
            names = [name for name, _ in pack_widgets(cls)]
            inputs = {name: [value] for name, value in zip(names, node["widgets_values"])}
            inputs.update(linked)
            if kind == "CometOmniPoll" and "task" not in linked:
                inputs["task_id"] = [task_id_for_collect]
            if "unique_id" in cls.INPUT_TYPES().get("hidden", {}):  # as ComfyUI fills hidden inputs
                inputs["unique_id"] = [str(node["id"])]
            outputs[node["id"]] = comfy_exec.run(cls, **inputs)
    return {nodes[i]["type"]: out for i, out in outputs.items()}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_pack_nodes_of_each_template_run(path, fake_server, omni_client, tmp_path, monkeypatch):
    monkeypatch.setenv("COMETAPI_KEY", fake_server.key)
    monkeypatch.setenv("COMETAPI_BASE_URL", fake_server.base_url)
    monkeypatch.setenv("COMETAPI_OMNI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COMETAPI_OMNI_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("COMETAPI_OMNI_POLL_SECONDS", "0.02")
    existing = omni_client.create_task({"model_name": "kling-video-o1", "prompt": "earlier", "duration": "5"})
    fake_server.clear_records()
    workflow = load(path)
    results = run_workflow(workflow, task_id_for_collect=existing.task_id)
    frames, audio, video, fps, task_ids, urls = results["CometOmniPoll"]
    tasks = tasks_of(workflow)
    assert len(task_ids) == len(set(task_ids)) == max(tasks, 1)  # one item per task
    for item in range(len(task_ids)):
        assert frames[item].dim() == 4 and frames[item].shape[-1] == 3 and frames[item].shape[0] >= 1
        assert audio[item]["waveform"].dim() == 3 and fps[item] > 0 and task_ids[item] and urls[item]
    created = [r for r in fake_server.requests if r.method == "POST"]
    assert len(created) == tasks


def tasks_of(workflow: dict) -> int:
    """How many tasks a template's Submit pays for: its variations × the lines of a prompt list (if any)."""
    kinds = {n["type"]: n for n in workflow["nodes"]}
    if "CometOmniSubmit" not in kinds:
        return 0
    lines = kinds.get("CometOmniPromptList", {}).get("widgets_values", ["one"])[0]
    return kinds["CometOmniSubmit"]["widgets_values"][1] * len([line for line in lines.splitlines() if line.strip()])


@pytest.mark.parametrize("name", [SCENARIOS["variations"], SCENARIOS["prompt list"]])
def test_batch_templates_say_what_they_cost_and_how_the_pace_works(name):
    workflow = load(FOLDER / f"{name}.json")
    note = next(n for n in workflow["nodes"] if n["type"] == "Note")["widgets_values"][0]
    assert f"{tasks_of(workflow)} × the price of one" in note
    assert "Queue again: nothing is sent or paid" in note
    assert "waiting for a free slot" in note and "429" in note and "Cancel" in note


SAVED_BEFORE_MODELS = sorted((Path(__file__).parent / "workflows").glob("saved_before_models_*.json"))


@pytest.mark.parametrize("path", SAVED_BEFORE_MODELS, ids=lambda p: p.stem)
def test_a_workflow_saved_before_the_model_choice_runs_as_o1(path, fake_server, tmp_path, monkeypatch):
    """Its Prompt nodes hold 4 widget values (no model, sound, auto_shots): they run as Kling O1,
    sending what they sent then (the frontend keeps them on O1 too: web/lib/legacy.js)."""
    from tests.fakeserver_fixtures import point_pack_at
    point_pack_at(fake_server, tmp_path, monkeypatch)
    workflow = load(path)
    assert [len(n["widgets_values"]) for n in workflow["nodes"] if n["type"] == "CometOmniPrompt"] == [4]
    run_workflow(workflow)
    (created,) = [r for r in fake_server.requests if r.method == "POST"]
    assert created.body["model_name"] == "kling-video-o1"
    assert not {"sound", "multi_shot", "shot_type", "multi_prompt"} & set(created.body)
