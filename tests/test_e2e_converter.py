"""The end-to-end check's converter of saved workflows into API prompts (scripts/comfy_e2e): a
widget a saved workflow has no value for gets its default, as the frontend gives it, except on the
pack's own nodes, whose templates must match the pack; a Prompt saved before the model choice
loads on kling-video-o1, as the pack's web/lib/saved_prompt.js loads it."""

import json

import pytest

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from scripts.comfy_e2e.comfy import to_api_prompt
from scripts.comfy_e2e.pack import OLD_WORKFLOW, template
from scripts.comfy_e2e.v3_run import as_frontend_loads

# ComfyUI 0.33's CreateVideo as /object_info serves it: bit_depth is newer than workflows saved for 0.3.64.
CREATE_VIDEO = {"input": {"required": {"images": ["IMAGE", {}], "fps": ["FLOAT", {"default": 30.0}]},
                          "optional": {"audio": ["AUDIO", {}], "bit_depth": ["INT", {"default": 8, "min": 8, "max": 10}]}},
                "input_order": {"required": ["images", "fps"], "optional": ["audio", "bit_depth"]}}


def workflow(node_type, values, inputs=()):
    return {"nodes": [{"id": 8, "type": node_type, "inputs": list(inputs), "widgets_values": values}], "links": []}


def test_a_core_widget_the_workflow_lacks_gets_its_default():
    prompt = to_api_prompt(workflow("CreateVideo", [12.0]), {"CreateVideo": CREATE_VIDEO})
    assert prompt["8"]["inputs"] == {"fps": 12.0, "bit_depth": 8}


def test_a_combo_without_a_default_gets_its_first_option():
    info = {"Pick": {"input": {"required": {"a": ["INT", {"default": 1}], "how": [["x", "y"], {}]}}}}
    assert to_api_prompt(workflow("Pick", [3]), info)["8"]["inputs"] == {"a": 3, "how": "x"}


# ComfyUI 0.33's SaveVideo, trimmed: format is a dynamic combo whose option brings a codec of its own
# (itself a dynamic combo), and a hidden optional codec.
CODEC = ["COMFY_DYNAMICCOMBO_V3", {"options": [
    {"key": "auto", "inputs": {"required": {}}},
    {"key": "h264", "inputs": {"required": {}, "optional": {"encoding": ["COMFY_DYNAMICCOMBO_V3", {"options": [
        {"key": "auto", "inputs": {"required": {}}},
        {"key": "re-encode", "inputs": {"required": {"crf": ["FLOAT", {"default": 23.0}]}}}]}]}}}]}]
SAVE_VIDEO = {"input": {"required": {"video": ["VIDEO", {}], "filename_prefix": ["STRING", {"default": "video/ComfyUI"}],
                                     "format": ["COMFY_DYNAMICCOMBO_V3", {"options": [
                                         {"key": "auto", "inputs": {"required": {"codec": CODEC}}},
                                         {"key": "mp4", "inputs": {"required": {"codec": CODEC}}}]}]},
                        "optional": {"codec": [CODEC[0], {**CODEC[1], "hidden": True}]}},
              "input_order": {"required": ["video", "filename_prefix", "format"], "optional": ["codec"]}}


def test_a_dynamic_combo_brings_the_widgets_of_its_option_as_the_frontend_queues_them():
    saved_for_0_3_64 = workflow("SaveVideo", ["video/kling_preview", "auto", "auto"])
    # What frontend 1.58.1 queued for this node on ComfyUI 0.33 (read back from the MP4's metadata).
    assert to_api_prompt(saved_for_0_3_64, {"SaveVideo": SAVE_VIDEO})["8"]["inputs"] == {
        "filename_prefix": "video/kling_preview", "format": "auto", "format.codec": "auto", "codec": "auto"}
    nested = workflow("SaveVideo", ["v", "mp4", "h264", "re-encode", 18.0])
    assert to_api_prompt(nested, {"SaveVideo": SAVE_VIDEO})["8"]["inputs"] == {
        "filename_prefix": "v", "format": "mp4", "format.codec": "h264", "format.codec.encoding": "re-encode",
        "format.codec.encoding.crf": 18.0, "codec": "auto"}


def test_a_pack_node_without_a_value_fails_loudly():
    info = {"CometOmniPrompt": {"input": NODES["CometOmniPrompt"].INPUT_TYPES()}}  # as /object_info wraps it
    with pytest.raises(ValueError, match=r"node 8 \(CometOmniPrompt\) has no widget value for model"):
        to_api_prompt(workflow("CometOmniPrompt", ["a fox", "pro", "16:9", 5]), info)


def test_values_left_over_still_fail():
    with pytest.raises(ValueError, match="unused widget values"):
        to_api_prompt(workflow("CreateVideo", [12.0, 8, "extra"]), {"CreateVideo": CREATE_VIDEO})


def test_a_prompt_saved_before_the_model_choice_loads_on_o1_as_the_frontend_loads_it():
    info = {"CometOmniPrompt": {"input": NODES["CometOmniPrompt"].INPUT_TYPES()}}
    old = as_frontend_loads(json.loads(OLD_WORKFLOW.read_text()), info)
    (prompt,) = [n for n in old["nodes"] if n["type"] == "CometOmniPrompt"]
    assert prompt["widgets_values"][4:] == ["kling-video-o1", False, False]  # web/lib/saved_prompt.js BEFORE_MODELS
    saved_with_a_model = template("Kling 3.0 text to video with sound")
    assert as_frontend_loads(json.loads(json.dumps(saved_with_a_model)), info) == saved_with_a_model
