"""The request model and every rule of the contract, in plain Python."""

import json

import pytest

from kling_omni.errors import InputError
from kling_omni.images import EncodedImage
from kling_omni.request import ElementRef, ImageRef, OmniRequest, Refs, VideoRef
from kling_omni.rules import (build_request, check_video_url, normalize_prompt, parse_element_id,
                              validate_request)


def image(tag: str = "a", role: str = "reference") -> ImageRef:
    return ImageRef(EncodedImage(b64=f"QUJD{tag}", format="png", width=512, height=512, nbytes=3,
                                 sha256=tag * 8, passes=1, source_sha256=tag * 8), role, origin=f"test {tag}")


def video(refer_type="feature", keep=True):
    return VideoRef("https://example.com/in.mp4", refer_type, keep)


def refs(*items):
    return Refs().plus(*items)


def test_text_to_video_payload_follows_the_contract():
    req = build_request("A fox runs through snow", "pro", "16:9", 5, None)
    assert req.payload() == {"model_name": "kling-video-o1", "prompt": "A fox runs through snow",
                             "mode": "pro", "aspect_ratio": "16:9", "duration": "5"}


def test_references_numbered_in_chain_order_and_batch_order():
    chain = refs(image("up"), image("b1"), image("b2"), ElementRef(829836802793406551), image("down"))
    req = build_request("<<<image_1>>> meets <<<element_1>>> near <<<image_4>>>", "std", "1:1", 7, chain)
    body = req.payload()
    assert [i["image_url"] for i in body["image_list"]] == ["QUJDup", "QUJDb1", "QUJDb2", "QUJDdown"]
    assert "type" not in body["image_list"][0]
    assert body["duration"] == "7" and body["aspect_ratio"] == "1:1"


def test_element_id_is_a_json_integer_with_every_digit():
    body = build_request("x <<<element_1>>>", "pro", "16:9", 5, refs(ElementRef(829836802793406551))).payload()
    assert '"element_id": 829836802793406551' in json.dumps(body)
    assert parse_element_id(" 9223372036854775807 ") == 2**63 - 1


@pytest.mark.parametrize("text", ["", "12a", "-5", "0", "9223372036854775808", "1.5"])
def test_bad_element_ids_name_node_input_and_value(text):
    with pytest.raises(InputError) as err:
        parse_element_id(text)
    assert err.value.node == "CometOmniElementRef" and err.value.input == "element_id"


def test_shorthands_are_rewritten():
    assert normalize_prompt("@image with @image2, @element1 in @video.") == \
        "<<<image_1>>> with <<<image_2>>>, <<<element_1>>> in <<<video_1>>>."
    assert normalize_prompt("mail me@images.com or x@image") == "mail me@images.com or x@image"
    assert normalize_prompt("<<< image_01 >>> and <<<video_1 >>>") == "<<<image_1>>> and <<<video_1>>>"


def test_first_frame_drops_aspect_ratio_and_keeps_type():
    req = build_request("she dances", "pro", "9:16", 5, refs(image("f", "first_frame")))
    body = req.payload()
    assert "aspect_ratio" not in body and body["image_list"][0]["type"] == "first_frame"


def test_base_edit_drops_aspect_ratio_and_duration_and_sends_sound_flags():
    req = build_request("put the crown from <<<image_1>>> on her in <<<video_1>>>", "pro", "16:9", 4,
                        refs(image("c"), video("base", True)))
    body = req.payload()
    assert "aspect_ratio" not in body and "duration" not in body
    assert body["video_list"] == [{"video_url": "https://example.com/in.mp4", "refer_type": "base",
                                   "keep_original_sound": "yes"}]


def test_feature_reference_keeps_aspect_and_duration():
    body = build_request("next shot after <<<video_1>>>", "pro", "16:9", 3, refs(video("feature", False))).payload()
    assert body["aspect_ratio"] == "16:9" and body["duration"] == "3"
    assert body["video_list"][0]["keep_original_sound"] == "no"


@pytest.mark.parametrize("prompt,chain,input_name,fragment", [
    ("", None, "prompt", "empty"),
    ("x" * 2501, None, "prompt", "2500"),
    ("see <<<image_2>>>", [image()], "prompt", "only 1 image"),
    ("see <<<element_1>>>", None, "prompt", "no element"),
    ("see <<<video_2>>>", [video()], "prompt", "points at nothing"),
    ("see <<<picture_1>>>", None, "prompt", "not a reference token"),
    ("eight", [image(str(i)) for i in range(8)], "refs", "at most 7"),
    ("five with video", [image(str(i)) for i in range(5)] + [video()], "refs", "at most 4"),
    ("two videos", [video(), video()], "refs", "at most 1 video"),
    ("end only", [image("e", "end_frame")], "refs", "needs a first frame"),
    ("end with extra", [image("f", "first_frame"), image("e", "end_frame"), image("x")], "refs", "cannot be combined"),
    ("two firsts", [image("f", "first_frame"), image("g", "first_frame")], "refs", "only one first_frame"),
    ("first with base", [image("f", "first_frame"), video("base")], "refs", "cannot take a first"),
])
def test_rule_violations_are_named(prompt, chain, input_name, fragment):
    with pytest.raises(InputError) as err:
        build_request(prompt, "pro", "16:9", 5, refs(*chain) if chain else None)
    assert err.value.node == "CometOmniPrompt"
    assert err.value.input == input_name
    assert fragment in str(err.value)
    assert "Nothing was sent" in str(err.value)


@pytest.mark.parametrize("chain,duration,ok", [
    (None, 5, True), (None, 10, True), (None, 7, False),  # text-only: 5 or 10
    ([image("f", "first_frame")], 7, False),  # first frame alone: 5 or 10
    ([image("f", "first_frame"), image("e", "end_frame")], 7, True),
    ([image("f", "first_frame"), image("r")], 3, True),
    ([image("r")], 3, True),
    ([video("feature")], 8, True),
    ([video("base")], 4, True),  # not sent at all
])
def test_durations_per_scenario(chain, duration, ok):
    args = ("x", "pro", "16:9", duration, refs(*chain) if chain else None)
    if ok:
        build_request(*args)
    else:
        with pytest.raises(InputError) as err:
            build_request(*args)
        assert err.value.input == "duration" and "5 or 10" in str(err.value)


@pytest.mark.parametrize("url", ["", "ftp://x/y.mp4", "file:///tmp/a.mp4", "C:\\clip.mp4", "https://"])
def test_video_url_scheme(url):
    with pytest.raises(InputError) as err:
        check_video_url(url)
    assert err.value.input == "video_url"


def test_fingerprint_ignores_image_encoding_but_not_content():
    a = build_request("x <<<image_1>>>", "pro", "16:9", 5, refs(image("same")))
    same = OmniRequest(a.prompt, a.mode, a.aspect_ratio, a.duration,
                       refs(ImageRef(EncodedImage("OTHERB64", "jpeg", 512, 512, 9, "other-bytes", 1,
                                                  source_sha256="same" * 8))))
    other = build_request("x <<<image_1>>>", "pro", "16:9", 5, refs(image("diff")))
    assert a.fingerprint() == same.fingerprint() != other.fingerprint()
    assert "QUJD" not in a.fingerprint()


def test_validate_request_rechecks_hand_built_requests():
    with pytest.raises(InputError):
        validate_request(OmniRequest("see <<<image_1>>>"))


def test_request_repr_never_carries_image_data():
    """ComfyUI prints node inputs into error reports and the history: no Base64 there."""
    req = build_request("x <<<image_1>>>", "pro", "16:9", 5, refs(image("secretpixels")))
    assert "QUJDsecretpixels" not in repr(req) and "QUJDsecretpixels" not in str(req.refs)


def test_fingerprint_follows_the_pixels_not_the_encoder():
    import numpy as np
    from kling_omni.images import encode_image
    pixels = np.random.default_rng(0).random((400, 400, 3), dtype=np.float32)
    a, b = encode_image(pixels), encode_image(pixels, max_bytes=60_000)  # two different encodings
    assert a.sha256 != b.sha256 and a.source_sha256 == b.source_sha256
    first = build_request("x <<<image_1>>>", "pro", "16:9", 5, refs(ImageRef(a)))
    second = build_request("x <<<image_1>>>", "pro", "16:9", 5, refs(ImageRef(b)))
    assert first.fingerprint() == second.fingerprint()
