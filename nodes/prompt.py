"""CometOmniPrompt: the prompt and settings, validated into an OMNI_REQUEST."""

from __future__ import annotations

from ..kling_omni.errors import InputError
from ..kling_omni.models import MAX_SECONDS, MODEL_NAMES, NEWEST, O1, V3
from ..kling_omni.request import ASPECT_RATIOS, MODES
from ..kling_omni.rules import (build_request, check_prompt, check_prompt_characters, check_token_counts,
                                check_token_syntax, is_blank, normalize_prompt)
from . import bridge
from .runtime import CATEGORY, label

REF_KINDS = {"CometOmniImageRef": "image", "CometOmniElementRef": "element", "CometOmniVideoRef": "video"}
ONE_IMAGE_SOURCES = {"LoadImage"}  # a batch of one, known before running


def wired_counts(graph: dict, node_id) -> dict | None:
    """Count the references wired into a Prompt node of an API-format graph, walking its refs
    chain upstream. None when the chain passes through a node we cannot count."""
    counts = {"images": 0, "elements": 0, "videos": 0, "images_exact": True}
    link, seen = graph[node_id].get("inputs", {}).get("refs"), set()
    while isinstance(link, list) and len(link) == 2:
        source_id = str(link[0])
        node = graph.get(source_id)
        kind = REF_KINDS.get(node.get("class_type")) if node and source_id not in seen else None
        if kind is None:
            return None
        seen.add(source_id)
        inputs = node.get("inputs", {})
        if kind == "image" and inputs.get("role") == "reference":
            image = inputs.get("image")
            source = graph.get(str(image[0])) if isinstance(image, list) else None
            if not (source and source.get("class_type") in ONE_IMAGE_SOURCES):
                counts["images_exact"] = False  # a batch adds as many images as it holds
        counts[kind + "s"] += 1
        link = inputs.get("refs")
    return counts


class CometOmniPrompt:
    DESCRIPTION = ("Describes the video. Refer to wired references as <<<image_1>>>, <<<element_1>>>, "
                   "<<<video_1>>> (or @image1, @element1, @video). Kling 3.0 Omni (kling-v3-omni) adds 3-15 s, "
                   "native sound and storyboards (link Kling Omni Shot nodes to shots); Kling O1 (kling-video-o1) "
                   "is what workflows saved before the model choice run. Every rule of the API is checked here, "
                   "before anything is sent or paid.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("OMNI_REQUEST",)
    RETURN_NAMES = ("request",)
    OUTPUT_TOOLTIPS = ("The checked request: wire it into a Kling Omni Submit.",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "prompt": ("STRING", {"multiline": True, "default": "",
                                      "tooltip": "1 to 2500 characters. May be empty when shots are linked "
                                                 "(each shot has its own prompt)."}),
                "mode": (list(MODES), {"default": "pro", "tooltip": "pro: 1080p. std: 720p, cheaper."}),
                "aspect_ratio": (list(ASPECT_RATIOS), {"default": "16:9",
                                 "tooltip": "Not sent when a first frame or a base video fixes the frame."}),
                "duration": ("INT", {"default": 5, "min": 3, "max": MAX_SECONDS, "step": 1,
                                     "tooltip": f"Seconds. {V3}: 3 to 15. {O1}: 3 to 10, and 5 or 10 for text "
                                                "only or a first frame alone. With shots: their total. Ignored "
                                                "for a base video edit (it keeps the input's length)."}),
            },
            "optional": {
                "model": (list(MODEL_NAMES), {"default": NEWEST,
                          "tooltip": f"{V3} (Kling 3.0 Omni): 3-15 s, native sound, storyboards. {O1} (Kling "
                                     "O1): 3-10 s, no sound of its own. A workflow saved before this choice "
                                     f"existed runs as {O1}."}),
                "sound": ("BOOLEAN", {"default": False, "tooltip": f"{V3} only: native sound (speech with lip "
                                      "sync, ambience, effects), on Poll's audio output. Costs more. Not with a "
                                      "video reference."}),
                "auto_shots": ("BOOLEAN", {"default": False, "tooltip": f"{V3} only: Kling cuts the prompt into "
                                           "shots itself. Not with linked shots."}),
                "refs": ("OMNI_REFS", {"tooltip": "The end of a chain of reference nodes."}),
                "shots": ("OMNI_SHOTS", {"tooltip": f"{V3} only: the end of a chain of Kling Omni Shot nodes (up "
                                         "to 6; the one furthest upstream is shot 1). Their lengths add up to "
                                         "duration."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID", "graph": "PROMPT"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, prompt):
        """At queue time, before any node runs or anything is paid: length, token syntax, and
        tokens that point at nothing in the wired chain."""
        if prompt is None:  # the text comes from a link: checked when the node runs
            return True
        text = normalize_prompt(prompt)
        try:
            check_prompt_characters(prompt)
            graph = bridge.queued_prompt()
            ours = [node_id for node_id, node in (graph or {}).items()
                    if node.get("class_type") == "CometOmniPrompt" and node.get("inputs", {}).get("prompt") == prompt]
            if is_blank(text) and graph and any(shots_linked(graph, node_id) for node_id in ours):
                return True  # with shots the text may be empty
            check_prompt(text)
            check_token_syntax(text)
            if not graph:
                return True
            problems = []
            for node_id in ours:
                counts = wired_counts(graph, node_id)
                if counts is None:
                    return True
                try:
                    check_token_counts(text, **counts)
                except InputError as exc:
                    problems.append(exc)
            # The same text on several nodes: flag it only if it is wrong on each of them.
            if ours and len(problems) == len(ours):
                raise problems[0]
        except InputError as exc:
            return str(exc)
        return True

    async def build(self, prompt, mode, aspect_ratio, duration, model=None, sound=False, auto_shots=False,
                    refs=None, shots=None, unique_id=None, graph=None):
        # No model value (an API prompt or a workflow saved before the choice existed) is O1, as it ran then.
        # Wired to a list (e.g. a CometOmniPromptList), ComfyUI runs this once per item: say which one failed.
        try:
            return (build_request(prompt, mode, aspect_ratio, duration, refs, model=model or O1, sound=sound,
                                  shots=shots, auto_shots=auto_shots),)
        except InputError as exc:
            if exc.node != "CometOmniPrompt":
                raise  # a Shot's own input, named with its id
            item = bridge.list_index()
            where = (exc.input if item is None or not prompt_is_linked(graph, unique_id)
                     else f"{exc.input}, for item {item + 1} of the prompt list")
            raise InputError(label("CometOmniPrompt", unique_id), where, exc.value, exc.problem) from None


def shots_linked(graph: dict, node_id) -> bool:
    """Is the Prompt node's `shots` input linked (in the API-format graph queued)?"""
    return isinstance(((graph.get(str(node_id)) or {}).get("inputs") or {}).get("shots"), list)


def prompt_is_linked(graph: dict | None, node_id) -> bool:
    """Does the Prompt node's text come from a link (in the API-format graph ComfyUI runs)?"""
    node = (graph or {}).get(str(node_id)) or {}
    return isinstance((node.get("inputs") or {}).get("prompt"), list)
