"""CometOmniPrompt.VALIDATE_INPUTS: an invalid prompt fails at queue time, before any node runs.

ComfyUI calls the pack's on-prompt handler, then validates in the same task; the tests
do the same through the bridge's handler.
"""

import contextvars

from cometapi_kling_omni.nodes import bridge
from cometapi_kling_omni.nodes.prompt import CometOmniPrompt, wired_counts


def graph(prompt_text, *chain):
    """An API-format graph: LoadImage sources, a chain of ref nodes, the Prompt node '9'."""
    g = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
         "2": {"class_type": "ImageBatch", "inputs": {}}}
    previous = None
    for n, (kind, extra) in enumerate(chain, start=10):
        inputs = dict(extra)
        if previous:
            inputs["refs"] = [previous, 0]
        g[str(n)] = {"class_type": kind, "inputs": inputs}
        previous = str(n)
    g["9"] = {"class_type": "CometOmniPrompt", "inputs": {"prompt": prompt_text, "mode": "pro",
                                                          "aspect_ratio": "16:9", "duration": 5}}
    if previous:
        g["9"]["inputs"]["refs"] = [previous, 0]
    return g


def validate(g, text):
    def queued():
        bridge._remember_prompt({"prompt": g, "client_id": "x"})
        return CometOmniPrompt.VALIDATE_INPUTS(prompt=text)
    return contextvars.copy_context().run(queued)


ONE_IMAGE = ("CometOmniImageRef", {"image": ["1", 0], "role": "reference"})
BATCH = ("CometOmniImageRef", {"image": ["2", 0], "role": "reference"})
ELEMENT = ("CometOmniElementRef", {"element_id": "123"})
VIDEO = ("CometOmniVideoRef", {"video_url": "https://x/y.mp4", "refer_type": "feature", "keep_original_sound": False})


def test_valid_prompt_passes():
    text = "<<<image_1>>> meets @element1 in <<<video_1>>>"
    assert validate(graph(text, ONE_IMAGE, ELEMENT, VIDEO), text) is True


def test_token_pointing_at_nothing_fails_with_node_input_and_value():
    text = "<<<image_1>>> and <<<element_2>>>"
    message = validate(graph(text, ONE_IMAGE, ELEMENT), text)
    assert isinstance(message, str)
    assert "CometOmniPrompt" in message and "prompt" in message and "<<<element_2>>>" in message
    assert "only 1 element" in message


def test_image_count_is_exact_for_load_image_only():
    text = "<<<image_2>>>"
    assert "points at nothing" in validate(graph(text, ONE_IMAGE), text)
    assert validate(graph(text, BATCH), text) is True  # a batch of unknown size may hold two
    assert "no image" in validate(graph(text, ELEMENT), text)


def test_chain_through_an_unknown_node_is_left_to_run_time():
    g = graph("<<<element_3>>>", ELEMENT)
    g["10"]["inputs"]["refs"] = ["1", 0]  # something that is not a ref node
    assert wired_counts(g, "9") is None
    assert validate(g, "<<<element_3>>>") is True


def test_length_and_syntax_are_checked_even_without_the_graph():
    assert "2500" in contextvars.copy_context().run(CometOmniPrompt.VALIDATE_INPUTS, prompt="x" * 2501)
    assert "not a reference token" in contextvars.copy_context().run(CometOmniPrompt.VALIDATE_INPUTS,
                                                                     prompt="<<<pic_1>>>")
    assert contextvars.copy_context().run(CometOmniPrompt.VALIDATE_INPUTS, prompt=None) is True


def test_queued_graphs_do_not_leak_between_requests():
    text = "<<<element_1>>>"
    assert "no element" in validate(graph(text), text)
    assert bridge.queued_prompt() is None  # each request's context is its own
    assert contextvars.copy_context().run(CometOmniPrompt.VALIDATE_INPUTS, prompt=text) is True


def test_same_text_on_two_nodes_is_flagged_only_where_wrong_everywhere():
    text = "<<<element_1>>>"
    g = graph(text, ELEMENT)
    g["8"] = {"class_type": "CometOmniPrompt", "inputs": {"prompt": text}}  # no refs: wrong there
    assert validate(g, text) is True
    g["9"]["inputs"].pop("refs")
    assert "no element" in validate(g, text)
