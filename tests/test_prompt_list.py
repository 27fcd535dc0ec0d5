"""CometOmniPromptList → CometOmniPrompt: one request per line, each checked on its own, errors naming
the line or the item; run as ComfyUI 0.3.64 runs them (tests/comfy_exec.py: a list output, a node
mapped over it with ComfyUI's executing context) against the fake server over real HTTP.
"""

import contextvars

import pytest
import torch

from kling_omni.errors import InputError

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import bridge
from tests.comfy_exec import run

LIST = NODES["CometOmniPromptList"]


def prompts_of(text):
    return run(LIST, prompts=[text], unique_id=["7"])[0]


def graph(prompt_input):
    """The API-format graph ComfyUI hands as PROMPT: a prompt list '7' and the Prompt node '9'."""
    return {"7": {"class_type": "CometOmniPromptList", "inputs": {"prompts": "a\nb"}},
            "9": {"class_type": "CometOmniPrompt", "inputs": {"prompt": prompt_input, "mode": "pro",
                                                             "aspect_ratio": "16:9", "duration": 5}}}


def build(prompts, refs=None, linked=True):
    inputs = {"prompt": prompts, "mode": ["pro"], "aspect_ratio": ["16:9"], "duration": [5],
              "unique_id": ["9"], "graph": [graph(["7", 0] if linked else prompts[0])]}
    if refs is not None:
        inputs["refs"] = refs
    return run(NODES["CometOmniPrompt"], **inputs)[0]


def test_one_prompt_per_line_blank_lines_ignored():
    assert LIST.OUTPUT_IS_LIST == (True,) and LIST.RETURN_TYPES == ("STRING",)
    assert prompts_of("a fox in snow\n\n   \r\na cat on a roof  \n\u200b\n") == ["a fox in snow", "a cat on a roof"]
    assert "blank lines are ignored" in LIST.INPUT_TYPES()["required"]["prompts"][1]["tooltip"]


def test_an_empty_list_names_the_node():
    with pytest.raises(InputError) as empty:
        prompts_of("\n  \n")
    assert "CometOmniPromptList #7 › prompts" in str(empty.value) and "one prompt per line" in str(empty.value)
    assert "CometOmniPromptList" in LIST.VALIDATE_INPUTS(prompts="", unique_id="7")  # at queue time too


def test_a_bad_line_is_named_at_queue_time_and_at_run_time():
    text = "a fox in snow\n\nthe fox meets <<<pic_1>>>"
    problem = LIST.VALIDATE_INPUTS(prompts=text, unique_id="7")
    assert "CometOmniPromptList #7 › prompts, line 3" in problem and "<<<pic_1>>>" in problem
    with pytest.raises(InputError, match="line 3"):
        prompts_of(text)
    assert "line 2" in LIST.VALIDATE_INPUTS(prompts="ok\n" + "x" * 2501, unique_id="7")
    assert LIST.VALIDATE_INPUTS(prompts="a fox\na cat", unique_id="7") is True


def test_the_prompt_node_maps_over_the_list_and_checks_each_item(env, fake_server):
    image = torch.rand((1, 320, 320, 3))
    (refs,) = run(NODES["CometOmniImageRef"], image=[image], role=["reference"], unique_id=["3"])
    lines = prompts_of("@image1 in snow\n<<<image_1>>> on a roof")
    requests = build(lines, refs)
    assert [r.prompt for r in requests] == ["<<<image_1>>> in snow", "<<<image_1>>> on a roof"]
    assert all(len(r.refs.images) == 1 for r in requests)  # the refs go with every item
    with pytest.raises(InputError) as bad:
        build(prompts_of("<<<image_1>>> in snow\n<<<image_2>>> on a roof"), refs)
    text = str(bad.value)
    assert "CometOmniPrompt #9 › prompt, for item 2 of the prompt list" in text and "<<<image_2>>>" in text
    assert "points at nothing" in text and fake_server.requests == []


def test_an_unlinked_prompt_error_names_no_item(env):
    with pytest.raises(InputError) as bad:
        build(["<<<image_2>>> alone"], linked=False)
    assert "item" not in str(bad.value).split("›")[1].split(":")[0]


def test_queue_time_check_of_the_prompt_node_leaves_a_linked_prompt_to_run_time():
    def validate(g, text):
        def queued():
            bridge._remember_prompt({"prompt": g, "client_id": "x"})
            return NODES["CometOmniPrompt"].VALIDATE_INPUTS(prompt=text)
        return contextvars.copy_context().run(queued)

    g = graph(["7", 0])
    assert validate(g, None) is True  # ComfyUI passes None for a linked input
    g["8"] = {"class_type": "CometOmniPrompt", "inputs": {"prompt": "<<<element_1>>>"}}  # a widget beside it
    assert "no element" in validate(g, "<<<element_1>>>")


def test_a_prompt_list_runs_through_submit_and_poll(env, fake_server):
    requests = build(prompts_of("a fox in snow\na cat on a roof"))
    tasks, ids = run(NODES["CometOmniSubmit"], request=requests, seed=[3], variations=[2], unique_id=["4"])
    frames, _, _, _, polled, _ = run(NODES["CometOmniPoll"], task=tasks, unique_id=["5"])
    assert fake_server.created_count == 4 and polled == ids and len(frames) == 4
    sent = [r.body["prompt"] for r in fake_server.requests if r.method == "POST"]
    assert sent == ["a fox in snow"] * 2 + ["a cat on a roof"] * 2
