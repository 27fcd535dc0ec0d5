"""The fake CometAPI serving Kling 3.0 Omni (`kling-v3-omni`, contract §12), spoken to with plain
`requests` over loopback like tests/test_fake_server.py: the v3 rules, O1 refusing v3 fields, the
switch that refuses v3, and result videos that follow the request (length, size, sound, shots)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import requests
from PIL import Image

from fake_cometapi.media import frame_pixels, make_mp4, read_index, read_shot
from fake_cometapi.server import API_PATH, V3_ONLY_FIELDS, Clip, FakeCometAPI
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


def video_of(server, task_id) -> dict:
    r = requests.get(f"{server.base_url}{API_PATH}/{task_id}",
                     headers={"Authorization": f"Bearer {server.key}"}, timeout=5)
    data = r.json()["data"]
    assert data["task_status"] == "succeed", data
    return data["task_result"]["videos"][0] | {"units": data["final_unit_deduction"]}


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


# --- result videos that follow the request ------------------------------------------------------

def fetch(server, task_id, tmp_path) -> tuple[dict, Path]:
    video = video_of(server, task_id)
    path = tmp_path / f"{task_id}.mp4"
    path.write_bytes(requests.get(video["url"], timeout=30).content)
    return video, path


def audio_of(path: Path):
    """(codec, seconds, RMS of the last second) of the first audio track, or None without one."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])
        rate = stream.rate
    return stream.codec_context.name, len(samples) / rate, float(np.sqrt(np.mean(samples[-rate:] ** 2)))


def pictures(path: Path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, float(stream.average_rate)


def test_following_the_request_gives_its_length_size_fps_and_sound(tmp_path):
    with FakeCometAPI(follow_request=True) as server:
        loud = created(server, v3(mode="std", aspect_ratio="1:1", duration="3", sound="on"))
        video, path = fetch(server, loud, tmp_path)
        assert video["duration"] == "3.0" and video["units"] == "2.4"  # v3 std with sound: 0.8 units a second
        frames, fps = pictures(path)
        assert fps == 24 and len(frames) == 72 and frames[0].shape == (720, 720, 3)
        assert [read_index(f) for f in frames] == list(range(72))
        assert {read_shot(f) for f in frames} == {1}  # one shot: shot 1 throughout
        codec, seconds, last_rms = audio_of(path)
        assert codec == "aac" and seconds == pytest.approx(3.0, abs=0.05)
        assert last_rms > 0.3  # the tone, near its 0.8 peak: not silence

        quiet = created(server, v3(mode="std", aspect_ratio="9:16", duration="3", sound="off"))
        video, path = fetch(server, quiet, tmp_path)
        assert video["duration"] == "3.0" and audio_of(path) is None
        with av.open(str(path)) as container:  # the stream's own figures: no need to decode it all
            stream = container.streams.video[0]
            assert (stream.average_rate, stream.frames, stream.width, stream.height) == (24, 72, 720, 1280)


@pytest.mark.parametrize("mode,aspect,size", [("pro", "16:9", (1920, 1080)), ("pro", "9:16", (1080, 1920)),
                                              ("pro", "1:1", (1080, 1080)), ("std", "16:9", (1280, 720)),
                                              ("std", "9:16", (720, 1280)), ("std", "1:1", (720, 720)),
                                              (None, None, (1920, 1080))])
def test_the_followed_size_is_720p_or_1080p_in_the_aspect_ratio(mode, aspect, size):
    body = v3(duration="11", **({"mode": mode} if mode else {}), **({"aspect_ratio": aspect} if aspect else {}))
    with FakeCometAPI(follow_request=True) as server:
        task_id = created(server, body)
        assert server.result_clip(server.tasks[task_id]) == Clip(11.0, 24, *size, audio=False)
        assert video_of(server, task_id)["duration"] == "11.0"  # reported without making the file


def test_following_o1_and_the_cases_that_keep_the_fixed_clip():
    with FakeCometAPI(follow_request=True, video_seconds=1.0, video_fps=12, video_size=(160, 120)) as server:
        def clip(body):
            task_id = created(server, body)
            return server.result_clip(server.tasks[task_id])

        assert clip({"prompt": "x"}) == Clip(5.0, 24, 1920, 1080, audio=False)  # O1, default 5 s, pro, 16:9
        assert clip({"prompt": "x", "mode": "std", "duration": 10}) == Clip(10.0, 24, 1280, 720, audio=False)
        kept = [{"video_url": VID, "refer_type": "feature", "keep_original_sound": "yes"}]
        assert clip({"prompt": "x", "video_list": kept, "duration": "4"}) == Clip(4.0, 24, 1920, 1080, audio=True)
        assert clip(v3(multi_shot=True, shot_type="intelligence", duration="6")) == Clip(6.0, 24, 1920, 1080, False)
        # a base edit's length follows an input the fake never sees: the fixed clip, its sound if kept
        base = [{"video_url": VID, "refer_type": "base", "keep_original_sound": "yes"}]
        assert clip(v3(video_list=base, duration="9")) == Clip(1.0, 12, 160, 120, audio=True)
        assert clip({"prompt": "x", "video_list": [{"video_url": VID, "refer_type": "base"}]}) == \
            Clip(1.0, 12, 160, 120, audio=False)


def test_without_following_every_clip_is_the_fixed_one_and_sound_on_adds_the_tone(tmp_path):
    with FakeCometAPI(video_seconds=1.0, video_fps=12, video_size=(160, 120), video_audio=False) as server:
        quiet = created(server, v3(duration="15"))
        video, path = fetch(server, quiet, tmp_path)
        assert video["duration"] == "1.0" and audio_of(path) is None
        loud = created(server, v3(duration="15", sound="on"))
        video, path = fetch(server, loud, tmp_path)
        codec, seconds, last_rms = audio_of(path)
        assert video["duration"] == "1.0" and codec == "aac" and seconds == pytest.approx(1.0, abs=0.05)
        assert last_rms > 0.3
        frames, fps = pictures(path)
        assert fps == 12 and len(frames) == 12 and frames[0].shape == (120, 160, 3)


def test_a_clip_writer_makes_each_tasks_file_once_from_its_request_and_clip(tmp_path):
    written = []

    def writer(request, clip, path):  # a clip of its own, 1 s whatever was asked: the writer decides
        written.append((request["prompt"], clip))
        make_mp4(path, seconds=1.0, fps=12, width=160, height=96, audio=False)

    with FakeCometAPI(follow_request=True, clip_writer=writer) as server:
        task_id = created(server, v3(mode="std", duration="4", sound="on"))
        video, path = fetch(server, task_id, tmp_path)
        assert video["duration"] == "4.0"  # the answer still reports the clip the request asks for
        frames, fps = pictures(path)
        assert fps == 12 and len(frames) == 12 and frames[0].shape == (96, 160, 3)
        assert requests.get(video["url"], timeout=30).content == path.read_bytes()  # written once, served again
        assert written == [("A lighthouse at dusk", Clip(4.0, 24, 1280, 720, audio=True))]


def test_the_control_turns_following_on(fake_server):
    assert control(fake_server, {"set": {"follow_request": True}}).status_code == 200
    task_id = created(fake_server, v3(duration="13", mode="std"))
    assert video_of(fake_server, task_id)["duration"] == "13.0"


# --- shot numbers in the frames -------------------------------------------------------------------

def test_each_frame_of_a_multi_shot_task_shows_its_shot_in_the_proportions_of_the_shots(tmp_path):
    # the fixed clip at a small size: 4 s at 12 fps, shared 1 : 2 : 1 among three shots
    with FakeCometAPI(video_seconds=4.0, video_fps=12, video_size=(160, 120), video_audio=False) as server:
        task_id = created(server, v3(duration="4", multi_shot=True, shot_type="customize",
                                     multi_prompt=shots(1, 2, 1)))
        video, path = fetch(server, task_id, tmp_path)
        frames, _ = pictures(path)
        assert [read_shot(f) for f in frames] == [1] * 12 + [2] * 24 + [3] * 12
        assert [read_index(f) for f in frames] == list(range(48))
        assert video["duration"] == "4.0"


def test_read_shot_reads_every_shot_number_from_the_exact_picture():
    for shot in range(1, 7):
        for width, height in ((160, 120), (1920, 1080), (161, 97)):
            picture = frame_pixels(300, width, height, shot)
            assert (read_shot(picture), read_index(picture)) == (shot, 300)


def test_frame_indexes_past_255_survive_h264_and_scaling_at_a_small_size(tmp_path):
    # 15 s at 24 fps is 360 frames; 8 index bits told only 256 apart
    path = make_mp4(tmp_path / "long.mp4", seconds=15.0, fps=24, width=160, height=120, audio=False,
                    shots=(5, 10))
    frames, _ = pictures(path)
    assert [read_index(f) for f in frames] == list(range(360))
    assert [read_shot(f) for f in frames] == [1] * 120 + [2] * 240
    halved = [np.asarray(Image.fromarray(f).resize((80, 60), Image.BILINEAR)) for f in frames[250:270]]
    assert [read_index(f) for f in halved] == list(range(250, 270))
    assert [read_index(f.astype(np.float32) / 255.0) for f in frames[300:303]] == [300, 301, 302]


# --- standalone -------------------------------------------------------------------------------------

def test_standalone_server_refuses_v3_and_follows_requests():
    proc = subprocess.Popen([sys.executable, "-m", "fake_cometapi", "--port", "0", "--key", "k-standalone",
                             "--processing-seconds", "0", "--submitted-seconds", "0",
                             "--refuse-v3", "gateway", "--follow-request"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "refusing kling-v3-omni (gateway)" in line
        base = re.search(r" at (http://127\.0\.0\.1:\d+)", line).group(1)
        auth = {"Authorization": "Bearer k-standalone"}
        refused = requests.post(base + API_PATH, json=v3(), headers=auth, timeout=5)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_not_found"
        made = requests.post(base + API_PATH, json={"prompt": "x", "duration": "10"}, headers=auth, timeout=5)
        task_id = made.json()["data"]["task_id"]
        done = requests.get(f"{base}{API_PATH}/{task_id}", headers=auth, timeout=5).json()["data"]
        assert done["task_result"]["videos"][0]["duration"] == "10.0"  # followed, not the fixed 5 s
        state = requests.get(base + "/_fake/state", timeout=5).json()
        assert (state["creation_requests"], state["created"]) == (2, 1)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
