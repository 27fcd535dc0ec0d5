"""Odd values a graph can hold get a clear error before any request, never a raw exception
or a silently damaged (and paid) request. Through the nodes, against the fake server."""

import asyncio

import numpy as np
import pytest
import torch

from kling_omni.errors import InputError

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES


@pytest.fixture
def pack_env(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("COMETAPI_KEY", fake_server.key)
    monkeypatch.setenv("COMETAPI_BASE_URL", fake_server.base_url)
    monkeypatch.setenv("COMETAPI_OMNI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COMETAPI_OMNI_OUTPUT", str(tmp_path / "output"))
    return fake_server


def run(coro):
    return asyncio.run(coro)


def prompt_node(prompt, refs=None):
    (request,) = run(NODES["CometOmniPrompt"]().build(prompt=prompt, mode="pro", aspect_ratio="16:9", duration=5,
                                                     refs=refs))
    return request


def image_ref(image, role="reference"):
    return run(NODES["CometOmniImageRef"]().add(image=image, role=role, unique_id="12"))[0]


def element_ref(element_id):
    return run(NODES["CometOmniElementRef"]().add(element_id=element_id, unique_id="13"))[0]


def video_ref(url):
    return run(NODES["CometOmniVideoRef"]().add(video_url=url, refer_type="feature", keep_original_sound=False,
                                                unique_id="14"))[0]


def picture(batch=1, height=384, width=512, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.random((batch, height, width, 3), dtype=np.float32))


def refused(action, node, input_name, *words):
    """Run the node all the way to Submit; it must stop with an InputError naming node, input and value."""
    with pytest.raises(InputError) as err:
        refs = action()
        run(NODES["CometOmniSubmit"]().submit(request=prompt_node("<<<image_1>>> walks", refs), seed=0,
                                              unique_id="20"))
    message = str(err.value)
    assert err.value.node == node and err.value.input == input_name, message
    assert "got " in message and "Nothing was sent" in message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_pixels_are_refused_not_sent_as_black_or_white(pack_env, bad):
    image = picture(batch=2)
    image[1, 10:20, 30:40, 0] = bad  # 100 pixels of the second image
    message = refused(lambda: image_ref(image), "CometOmniImageRef #12", "image[1]", "100", "NaN")
    assert pack_env.requests == []
    assert "NaN" in message and "infinite" in message


def test_an_empty_image_batch_is_refused(pack_env):
    refused(lambda: image_ref(picture(batch=0)), "CometOmniImageRef #12", "image", "0 images")
    assert pack_env.requests == []


INVISIBLE = ["\u200b\u200b", "\x00\x07", " \u2028\ufeff\u00a0\t", "\u2060\u200d\u200c"]


@pytest.mark.parametrize("prompt", INVISIBLE, ids=["zero-width", "control", "separators", "joiners"])
def test_a_prompt_of_invisible_characters_is_empty(pack_env, prompt):
    problem = NODES["CometOmniPrompt"].VALIDATE_INPUTS(prompt=prompt)  # at queue time
    assert isinstance(problem, str) and "empty" in problem and "invisible" in problem
    with pytest.raises(InputError) as err:  # and when the node runs (the text came from a link)
        prompt_node(prompt)
    assert err.value.input == "prompt" and "empty" in str(err.value)
    assert pack_env.requests == []


def test_a_visible_prompt_with_invisible_characters_is_kept(pack_env):
    assert prompt_node("a fox\u200b runs").prompt == "a fox\u200b runs"


def test_a_lone_surrogate_is_refused_at_the_prompt_naming_its_position(pack_env):
    prompt = "a fox \ud800 runs"
    problem = NODES["CometOmniPrompt"].VALIDATE_INPUTS(prompt=prompt)
    assert isinstance(problem, str) and "character 7" in problem and "U+D800" in problem
    with pytest.raises(InputError) as err:
        prompt_node(prompt)
    assert err.value.node == "CometOmniPrompt" and "character 7" in str(err.value)
    assert pack_env.requests == []


@pytest.mark.parametrize("element_id", ["²", "٣٣", "１２", "12\u200b", "-5", "1e5"])
def test_an_element_id_is_ascii_digits_only(pack_env, element_id):
    with pytest.raises(InputError) as err:
        element_ref(element_id)
    assert err.value.node == "CometOmniElementRef #13" and err.value.input == "element_id"
    assert "0-9" in str(err.value) and "got " in str(err.value)
    assert pack_env.requests == []


@pytest.mark.parametrize("url, words", [
    ("http://[::1", ["not a valid URL"]),
    ("https://example.com:99999/a.mp4", ["not a valid URL"]),
    ("https://example.com/my clip.mp4", ["character 23", "%20"]),
    ("https://example.com/a.mp4\nhttps://other.example/b.mp4", ["character 26"]),
    ("https://example.com/\x00a.mp4", ["character 21"]),
    ("https:///a.mp4", ["host"]),
    ("https://:443/a.mp4", ["host"]),
    ("ftp://example.com/a.mp4", ["http"]),
])
def test_a_video_url_that_cannot_be_fetched_is_refused(pack_env, url, words):
    with pytest.raises(InputError) as err:
        video_ref(url)
    message = str(err.value)
    assert err.value.node == "CometOmniVideoRef #14" and err.value.input == "video_url", message
    for word in words:
        assert word in message, message
    assert pack_env.requests == []


def test_a_good_video_url_still_passes(pack_env):
    refs = video_ref("  https://cdn.example.com/clips/a%20b.mp4?sig=1  ")
    assert refs.videos[0].url == "https://cdn.example.com/clips/a%20b.mp4?sig=1"
