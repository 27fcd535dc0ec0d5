"""The fake CometAPI serving Kling 3.0 Omni (`kling-v3-omni`, contract §12), spoken to with plain
`requests` over loopback like tests/test_fake_server.py: the v3 rules, O1 refusing v3 fields and the
switch that refuses v3."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from fake_cometapi.server import API_PATH, V3_ONLY_FIELDS, FakeCometAPI
from tests.fakeserver_fixtures import fake_server  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
IMG = "https://example.com/a.png"
VID = "https://example.com/in.mp4"
V3 = "kling-v3-omni"


def post(server, body):
    return requests.post(server.base_url + API_PATH, json=body,
                         headers={"Authorization": f"Bearer {server.key}"}, timeout=5)


def created(server, body) -> str:
    r = post(server, body)
    assert r.status_code == 200, r.text
    return r.json()["data"]["task_id"]


def control(server, body):
    return requests.post(server.base_url + "/_fake/control", json=body, timeout=5)


def shots(*lengths, prompt="a shot"):
    return [{"index": i, "prompt": prompt, "duration": str(n)} for i, n in enumerate(lengths, 1)]


def v3(**fields):
    return {"model_name": V3, "prompt": "A lighthouse at dusk", **fields}


# --- the v3 rules (§12.1) ----------------------------------------------------------------------

GOOD_V3 = {
    "text 3 s": v3(duration="3"),
    "text 7 s (no 5/10 rule for v3)": v3(duration="7"),
    "text 15 s as an int": v3(duration=15),
    "first frame only 3 s": v3(image_list=[{"image_url": IMG, "type": "first_frame"}], duration="3"),
    "refs 15 s": v3(image_list=[{"image_url": IMG}] * 4, element_list=[{"element_id": 7}] * 3, duration="15"),
    "sound on": v3(sound="on", duration="5"),
    "sound off with a video": v3(sound="off", video_list=[{"video_url": VID, "refer_type": "feature"}],
                                 duration="12"),
    "base edit ignores duration": v3(video_list=[{"video_url": VID, "refer_type": "base"}], duration="99"),
    "customize without prompt": {"model_name": V3, "duration": "8", "multi_shot": True, "shot_type": "customize",
                                 "multi_prompt": shots(3, 5)},
    "customize with empty prompt": v3(prompt="", duration="3", multi_shot=True, shot_type="customize",
                                      multi_prompt=shots(1, 1, 1)),
    "6 shots of 512 characters summing to 15": v3(duration="15", multi_shot=True, shot_type="customize",
                                                  multi_prompt=shots(3, 3, 3, 2, 2, 2, prompt="p" * 512)),
    "shots add up to the default 5 s": v3(multi_shot=True, shot_type="customize", multi_prompt=shots(2, 3)),
    "intelligence": v3(duration="10", multi_shot=True, shot_type="intelligence"),
    "shots with a first frame and refs": v3(image_list=[{"image_url": IMG, "type": "first_frame"}, {"image_url": IMG}],
                                            duration="4", multi_shot=True, shot_type="customize",
                                            multi_prompt=shots(2, 2)),
    "shots with a reference video": v3(video_list=[{"video_url": VID, "refer_type": "feature"}], duration="6",
                                       multi_shot=True, shot_type="customize", multi_prompt=shots(4, 2)),
    "no multi_shot: shot fields ignored": v3(multi_shot=False, shot_type="bogus", multi_prompt="bogus"),
    "first + end frame, one shot": v3(image_list=[{"image_url": IMG, "type": "first_frame"},
                                                  {"image_url": IMG, "type": "end_frame"}], duration="13"),
}


@pytest.mark.parametrize("name", sorted(GOOD_V3))
def test_v3_requests_within_the_rules_create_a_task_and_are_recorded(fake_server, name):
    task_id = created(fake_server, GOOD_V3[name])
    assert fake_server.created_count == 1
    assert fake_server.tasks[task_id].request == GOOD_V3[name] == fake_server.requests[-1].body


# name: (body, words the message must hold: the field, the value, the rule)
BAD_V3 = {
    "duration 2": (v3(duration="2"), ["duration", "'2'", "3 and 15"]),
    "duration 16": (v3(duration="16"), ["duration", "'16'", "3 and 15"]),
    "duration 16 as an int": (v3(duration=16), ["duration", "16", "3 and 15"]),
    "duration with a fraction": (v3(duration="5.5"), ["duration", "'5.5'", "whole number"]),
    "duration true": (v3(duration=True), ["duration", "True", "whole number"]),
    "duration in other digits": (v3(duration="\u0665"), ["duration", "whole number"]),
    "sound yes": (v3(sound="yes"), ["sound", "'yes'", "on or off"]),
    "sound true": (v3(sound=True), ["sound", "True", "on or off"]),
    "sound on with a video": (v3(sound="on", video_list=[{"video_url": VID, "refer_type": "feature"}]),
                              ["sound", "'on'", "off when video_list"]),
    "sound on with a base edit": (v3(sound="on", video_list=[{"video_url": VID, "refer_type": "base"}]),
                                  ["sound", "'on'", "off when video_list"]),
    "multi_shot a string": (v3(multi_shot="true", shot_type="customize", multi_prompt=shots(5)),
                            ["multi_shot", "'true'", "boolean"]),
    "no shot_type": (v3(multi_shot=True, multi_prompt=shots(5)), ["shot_type", "None", "customize or intelligence"]),
    "shot_type auto": (v3(multi_shot=True, shot_type="auto"), ["shot_type", "'auto'", "customize or intelligence"]),
    "customize without shots": (v3(multi_shot=True, shot_type="customize"), ["multi_prompt", "None", "1 to 6"]),
    "customize with no shot": (v3(multi_shot=True, shot_type="customize", multi_prompt=[]),
                               ["multi_prompt", "0 shots", "1 to 6"]),
    "7 shots": (v3(duration="7", multi_shot=True, shot_type="customize", multi_prompt=shots(*[1] * 7)),
                ["multi_prompt", "7 shots", "1 to 6"]),
    "a shot that is no object": (v3(multi_shot=True, shot_type="customize", multi_prompt=["5 s of sea"]),
                                 ["shot 1", "'5 s of sea'", "object"]),
    "0-based index": (v3(multi_shot=True, shot_type="customize",
                         multi_prompt=[{"index": 0, "prompt": "a", "duration": "5"}]),
                      ["shot 1", "index", "got 0", "1-based, in order"]),
    "indexes out of order": (v3(multi_shot=True, shot_type="customize",
                                multi_prompt=[{"index": 2, "prompt": "a", "duration": "2"},
                                              {"index": 1, "prompt": "b", "duration": "3"}]),
                             ["shot 1", "index", "got 2", "in order"]),
    "index as a string": (v3(multi_shot=True, shot_type="customize",
                             multi_prompt=[{"index": "1", "prompt": "a", "duration": "5"}]),
                          ["shot 1", "index", "'1'"]),
    "index true": (v3(multi_shot=True, shot_type="customize",
                      multi_prompt=[{"index": True, "prompt": "a", "duration": "5"}]),
                   ["shot 1", "index", "True"]),
    "empty shot prompt": (v3(multi_shot=True, shot_type="customize", multi_prompt=shots(5, prompt="")),
                          ["shot 1", "prompt", "0 characters", "1 to 512"]),
    "shot prompt of 513": (v3(duration="6", multi_shot=True, shot_type="customize",
                              multi_prompt=shots(3, 3)[:1] + shots(3, 3, prompt="p" * 513)[1:]),
                           ["shot 2", "prompt", "513 characters", "1 to 512"]),
    "shot duration 0": (v3(multi_shot=True, shot_type="customize", multi_prompt=shots(5, 0)),
                        ["shot 2", "duration", "'0'", "at least 1"]),
    "shot duration an int": (v3(multi_shot=True, shot_type="customize",
                                multi_prompt=[{"index": 1, "prompt": "a", "duration": 5}]),
                             ["shot 1", "duration", "got 5", "as a string"]),
    "shot duration with a fraction": (v3(multi_shot=True, shot_type="customize",
                                         multi_prompt=[{"index": 1, "prompt": "a", "duration": "2.5"},
                                                       {"index": 2, "prompt": "b", "duration": "2.5"}]),
                                      ["shot 1", "duration", "'2.5'", "whole number"]),
    "shots short of the duration": (v3(duration="8", multi_shot=True, shot_type="customize",
                                       multi_prompt=shots(3, 4)), ["multi_prompt", "3+4 = 7", "duration 8"]),
    "shots past the default 5 s": (v3(multi_shot=True, shot_type="customize", multi_prompt=shots(3, 3)),
                                   ["multi_prompt", "3+3 = 6", "duration 5"]),
    "intelligence without prompt": ({"model_name": V3, "multi_shot": True, "shot_type": "intelligence"},
                                    ["prompt is required"]),
    "one shot without prompt": ({"model_name": V3, "duration": "5"}, ["prompt is required"]),
    "customize with a prompt that is no string": (v3(prompt=["x"], duration="5", multi_shot=True,
                                                     shot_type="customize", multi_prompt=shots(5)),
                                                  ["prompt", "['x']", "string"]),
    "shots with an end frame": (v3(image_list=[{"image_url": IMG, "type": "first_frame"},
                                               {"image_url": IMG, "type": "end_frame"}],
                                   multi_shot=True, shot_type="customize", multi_prompt=shots(5)),
                                ["multi_shot", "end_frame"]),
    "intelligent shots with an end frame": (v3(image_list=[{"image_url": IMG, "type": "first_frame"},
                                                           {"image_url": IMG, "type": "end_frame"}],
                                               multi_shot=True, shot_type="intelligence"),
                                            ["multi_shot", "end_frame"]),
    "shots with a base edit": (v3(video_list=[{"video_url": VID, "refer_type": "base"}], multi_shot=True,
                                  shot_type="customize", multi_prompt=shots(5)), ["multi_shot", "base video edit"]),
    "capitalised model name": ({"model_name": "kling-v3-Omni", "prompt": "x"},
                               ["model_name", "'kling-v3-Omni'", "kling-v3-omni"]),
    "model name that is a list": ({"model_name": [V3], "prompt": "x"}, ["model_name", "['kling-v3-omni']"]),
    "mode that is an object": (v3(mode={"pro": True}), ["mode", "{'pro': True}"]),
    "v3 still counts refs": (v3(image_list=[{"image_url": IMG}] * 5,
                                video_list=[{"video_url": VID, "refer_type": "feature"}]), ["at most 4"]),
}


@pytest.mark.parametrize("name", sorted(BAD_V3))
def test_v3_rule_violations_are_400_code_1201_naming_field_value_rule_and_create_nothing(fake_server, name):
    body, words = BAD_V3[name]
    r = post(fake_server, body)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["code"] == 1201 and answer["request_id"]
    for word in words:
        assert word in answer["message"], (word, answer["message"])
    assert fake_server.created_count == 0 and not fake_server.tasks
    assert fake_server.requests[-1].body == body  # recorded as asked, refused or not


# --- O1 keeps its rules and refuses every v3 field ---------------------------------------------

V3_VALUES = {"sound": "off", "multi_shot": False, "shot_type": "customize", "multi_prompt": shots(5),
             "voice_list": []}


@pytest.mark.parametrize("named", [True, False], ids=["model_name o1", "no model_name"])
@pytest.mark.parametrize("field", V3_ONLY_FIELDS)
def test_o1_refuses_each_v3_field_even_a_harmless_value(fake_server, field, named):
    body = {"prompt": "x", "duration": "5", field: V3_VALUES[field]}
    if named:
        body["model_name"] = "kling-video-o1"
    r = post(fake_server, body)
    assert r.status_code == 400 and r.json()["code"] == 1201
    message = r.json()["message"]
    assert message.startswith(f"{field} is not supported by kling-video-o1") and repr(V3_VALUES[field]) in message
    assert fake_server.created_count == 0


@pytest.mark.parametrize("body", [{"prompt": "x", "duration": "7"}, {"prompt": "x", "duration": "3"},
                                  {"prompt": "x", "image_list": [{"image_url": IMG}], "duration": "11"},
                                  {"prompt": "x", "image_list": [{"image_url": IMG, "type": "first_frame"}],
                                   "duration": "4"}],
                         ids=["text 7", "text 3", "refs 11", "first frame 4"])
def test_durations_o1_refuses_are_fine_for_v3(fake_server, body):
    assert post(fake_server, body).status_code == 400
    assert post(fake_server, {**body, "model_name": "kling-video-o1"}).status_code == 400
    assert fake_server.created_count == 0
    created(fake_server, {**body, "model_name": V3})


# --- the switch that refuses v3 -------------------------------------------------------------------

def assert_refused_as(style, r, server):
    if style == "kling":
        assert r.status_code == 400
        body = r.json()
        assert set(body) == {"code", "message", "request_id"}
        assert body["code"] == 1201 and body["message"] == "model_name kling-v3-omni is not supported"
    else:
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "model_not_found" and error["type"] == "comet_api_error"
        assert error["message"].startswith("No available channel for model kling-v3-omni under group default")
        assert "request id" in error["message"]
    assert server.created_count == 0 and not server.refused_creates  # no task, no 429, nothing billed


@pytest.mark.parametrize("style", ["kling", "gateway"])
def test_a_route_without_v3_refuses_it_and_makes_nothing(style):
    with FakeCometAPI(refuse_v3=style) as server:
        for body in (v3(duration="5"), v3(sound="on", duration="9"),
                     {"model_name": V3, "duration": "2"}):  # refused as a model, before its rules
            assert_refused_as(style, post(server, body), server)
            assert server.requests[-1].body == body
        created(server, {"prompt": "x"})  # O1 is still served
        created(server, {"prompt": "x", "model_name": "kling-video-o1"})
        assert server.created_count == 2
        assert all(t.request.get("model_name") != V3 for t in server.tasks.values())


def test_the_remote_control_switches_v3_off_either_way_and_back_on(fake_server):
    for style in ("gateway", "kling"):
        assert control(fake_server, {"set": {"refuse_v3": style}}).status_code == 200
        assert_refused_as(style, post(fake_server, v3()), fake_server)
    for bogus in ("no", True):
        assert control(fake_server, {"set": {"refuse_v3": bogus}}).status_code == 400
    assert fake_server.refuse_v3 == "kling"
    assert control(fake_server, {"set": {"refuse_v3": ""}}).status_code == 200
    task_id = created(fake_server, v3())
    state = requests.get(fake_server.base_url + "/_fake/state", timeout=5).json()
    assert (state["creation_requests"], state["created"]) == (3, 1)
    assert state["tasks"][0]["task_id"] == task_id and state["tasks"][0]["model_name"] == V3


def test_refuse_v3_takes_only_its_styles():
    with pytest.raises(ValueError):
        FakeCometAPI(refuse_v3="yes")
    assert FakeCometAPI(refuse_v3=None).refuse_v3 == ""


# --- standalone -------------------------------------------------------------------------------------

def test_standalone_server_refuses_v3():
    proc = subprocess.Popen([sys.executable, "-m", "fake_cometapi", "--port", "0", "--key", "k-standalone",
                             "--processing-seconds", "0", "--submitted-seconds", "0",
                             "--refuse-v3", "gateway"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "refusing kling-v3-omni (gateway)" in line
        base = re.search(r" at (http://127\.0\.0\.1:\d+)", line).group(1)
        auth = {"Authorization": "Bearer k-standalone"}
        refused = requests.post(base + API_PATH, json=v3(), headers=auth, timeout=5)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_not_found"
        made = requests.post(base + API_PATH, json={"prompt": "x", "duration": "10"}, headers=auth, timeout=5)
        assert made.status_code == 200  # O1 is still served
        state = requests.get(base + "/_fake/state", timeout=5).json()
        assert (state["creation_requests"], state["created"]) == (2, 1)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
