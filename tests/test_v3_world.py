"""Kling 3.0 Omni end to end through the nodes, as ComfyUI runs them, against the fake over real
HTTP with result clips that follow the request: the sound comes out of Poll, a storyboard's shots
come back in chain order, and a route that lacks v3 says so before anything is made."""

import av
import numpy as np
import pytest

from fake_cometapi.media import read_index, read_shot
from fake_cometapi.server import FakeCometAPI
from kling_omni.errors import InputError, ModelRefused

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from tests.comfy_exec import run
from tests.fakeserver_fixtures import point_pack_at

V3 = "kling-v3-omni"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    with FakeCometAPI(key="test-key-123", follow_request=True) as server:
        point_pack_at(server, tmp_path, monkeypatch)
        yield server


def prompt(text="A saxophone under a bridge at night", *, mode="std", duration=3, **optional):
    widgets = {"model": V3, **optional}
    return run(NODES["CometOmniPrompt"], prompt=[text], mode=[mode], aspect_ratio=["16:9"], duration=[duration],
               **{k: [v] for k, v in widgets.items()})[0]


def shot_chain(*specs):
    shots = None
    for number, (text, seconds) in enumerate(specs, start=1):
        inputs = {"prompt": [text], "duration": [seconds], "unique_id": [str(10 + number)]}
        if shots is not None:
            inputs["shots"] = shots
        shots = run(NODES["CometOmniShot"], **inputs)[0]
    return shots


def submit_and_poll(request, **poll):
    tasks, ids = run(NODES["CometOmniSubmit"], request=request, seed=[0], unique_id=["4"])
    return run(NODES["CometOmniPoll"], task=tasks, unique_id=["5"], **{k: [v] for k, v in poll.items()})


def posts(server):
    return [r for r in server.requests if r.method == "POST"]


def test_native_sound_comes_out_of_poll_and_stays_in_the_file(fake):
    frames, audio, video, fps, _, _ = submit_and_poll(prompt(duration=3, sound=True), max_side=160)
    (sent,) = posts(fake)
    assert (sent.body["model_name"], sent.body["sound"], sent.body["duration"]) == (V3, "on", "3")
    assert frames[0].shape[0] == 72 and fps[0] == 24.0  # 3 s at 24 fps
    wave, rate = audio[0]["waveform"], audio[0]["sample_rate"]
    assert wave.shape[-1] / rate == pytest.approx(3.0, abs=0.1)
    assert float(wave.abs().max()) > 0.3  # the clip's own tone, not the silent track of a clip without sound
    with av.open(video[0].get_stream_source()) as container:  # the kept MP4 (and the VIDEO output) carry it too
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]


def test_without_sound_the_audio_output_is_silent(fake):
    _, audio, _, _, _, _ = submit_and_poll(prompt(duration=3, sound=False), max_side=160)
    assert posts(fake)[0].body["sound"] == "off"
    assert float(audio[0]["waveform"].abs().max()) == 0.0


def test_a_storyboard_sends_its_shots_in_chain_order_and_they_come_back_in_it(fake):
    shots = shot_chain(("the keeper climbs", 1), ("he lights the lamp", 2), ("waves crash", 1))
    frames, _, _, _, _, _ = submit_and_poll(prompt("", duration=4, shots=shots[0]), max_side=160)
    (sent,) = posts(fake)
    assert [(s["index"], s["prompt"], s["duration"]) for s in sent.body["multi_prompt"]] == [
        (1, "the keeper climbs", "1"), (2, "he lights the lamp", "2"), (3, "waves crash", "1")]
    assert (sent.body["shot_type"], sent.body["duration"]) == ("customize", "4") and "prompt" not in sent.body
    pictures = (frames[0].numpy() * 255).astype(np.uint8)
    assert [read_index(p) for p in pictures] == list(range(96))
    shot_of = [read_shot(p) for p in pictures]
    assert shot_of == [1] * 24 + [2] * 48 + [3] * 24  # 1 + 2 + 1 s at 24 fps


def test_auto_shots_ask_kling_to_cut_the_prompt(fake):
    submit_and_poll(prompt("A day at the harbour, dawn to dusk", duration=3, auto_shots=True), max_side=160)
    (sent,) = posts(fake)
    assert (sent.body["multi_shot"], sent.body["shot_type"]) == (True, "intelligence")
    assert "multi_prompt" not in sent.body


@pytest.mark.parametrize("widgets, input_", [
    (dict(model="kling-video-o1", sound=True), "sound"),
    (dict(model="kling-video-o1", auto_shots=True), "auto_shots"),
    (dict(model=V3, duration=16), "duration"),
    (dict(model="kling-video-o1", duration=12), "duration"),
])
def test_a_refused_combination_makes_no_request(fake, widgets, input_):
    values = {"mode": "std", "duration": widgets.pop("duration", 5), **widgets}
    with pytest.raises(InputError) as err:
        run(NODES["CometOmniPrompt"], prompt=["a fox"], aspect_ratio=["16:9"], **{k: [v] for k, v in values.items()})
    assert err.value.input == input_ and fake.requests == []


def test_shots_that_do_not_add_up_make_no_request(fake):
    shots = shot_chain(("one", 4), ("two", 3), ("three", 5))
    with pytest.raises(InputError) as err:
        prompt("", duration=10, shots=shots[0])
    assert "4 + 3 + 5 = 12 s" in str(err.value) and fake.requests == []


@pytest.mark.parametrize("style", ["kling", "gateway"])
def test_a_route_without_v3_says_so_and_creates_nothing(fake, style):
    fake.refuse_v3 = style
    with pytest.raises(ModelRefused) as err:
        run(NODES["CometOmniSubmit"], request=prompt(), seed=[0], unique_id=["4"])
    text = str(err.value)
    assert "does not serve kling-v3-omni" in text and "Pick kling-video-o1" in text and "Nothing was created" in text
    assert fake.created_count == 0
    from cometapi_kling_omni.nodes import runtime
    (row,) = runtime.journal().jobs()
    assert row.state == "rejected" and row.task_id is None  # not billed, not uncertain: a new run may try O1
