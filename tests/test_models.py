"""Kling 3.0 Omni beside O1: what each model sends, what each refuses before sending, and the
promise that an O1 intent paid before models could be chosen is the same intent now."""

import asyncio
import sqlite3
import time

import pytest

from kling_omni.errors import InputError
from kling_omni.images import EncodedImage
from kling_omni.journal import Journal
from kling_omni.models import O1, V3
from kling_omni.request import ElementRef, ImageRef, Refs, Shot, Shots, VideoRef
from kling_omni.rules import build_request, build_shot, validate_request
from kling_omni.submission import external_id, intent_fingerprint

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import runtime
from tests import comfy_exec


def image(tag, role="reference"):
    return ImageRef(EncodedImage(b64=f"QUJD{tag}", format="png", width=512, height=512, nbytes=3, sha256=tag * 8,
                                 passes=1, source_sha256=tag * 8), role)


def shots(*specs):
    chain = Shots()
    for n, (text, seconds) in enumerate(specs, start=1):
        chain = chain.plus(build_shot(text, seconds, f"CometOmniShot #{n}"))
    return chain


# What the previous version (before the model choice) computed for these requests with seed 42:
# request fingerprint, intent fingerprint, first external id. Printed by it, not by this version.
O1_BEFORE = {
    "text": ("b3692125a3e45e249c3e4d52c5a842430031bdb72e4c832d747aae1179f53379",
             "8b6746ee1ffe40e3b364456752e713c9c0a51a4ad9e553c689301f56336b51b3",
             "comfy-8b6746ee1ffe40e3b364456752e713c9-1"),
    "refs": ("dff5bdb6250eefb89fe94b22e762311860f52ced349057d07028b7ed44c14147",
             "8c413a78279a59c9a9c9543b683d754715a6d222f6d944163c88a71deaf2f6fc",
             "comfy-8c413a78279a59c9a9c9543b683d7547-1"),
    "first_end": ("9f3082e87345fde71a3579feb96444a892a6900152196a0fe5d87f0284731895",
                  "bc7e4c665b4f81dba5ab4d04f802231331c6c2ab067063579e690aecaa95dc4d",
                  "comfy-bc7e4c665b4f81dba5ab4d04f8022313-1"),
    "base_edit": ("d15c062ee55ffda455b6b54b678369f4fabfcf2c25f8221b1c035c4eda83a9db",
                  "4ae53a6af61b20a5aa962fe93025f7dc367b2765fcfb8c3b9a0d525b7949119e",
                  "comfy-4ae53a6af61b20a5aa962fe93025f7dc-1"),
    "feature": ("0bcc2018d07bef0f04b38bb88017b8090a9b2776d147ba9c0bea8eaeed556b5b",
                "174a06d6ffc02acf312f16dc4594f77e4ad0167acece5f3c08c6353e8b39addb",
                "comfy-174a06d6ffc02acf312f16dc4594f77e-1"),
}
O1_ARGS = {
    "text": ("A fox runs through snow", "pro", "16:9", 5, None),
    "refs": ("<<<image_1>>> meets <<<element_1>>>", "std", "1:1", 7, Refs().plus(image("a"), ElementRef(829836802793406551))),
    "first_end": ("the person dances", "pro", "16:9", 5, Refs().plus(image("f", "first_frame"), image("e", "end_frame"))),
    "base_edit": ("Put the crown from @image on the girl in @video", "pro", "16:9", 5,
                  Refs().plus(image("c"), VideoRef("https://example.com/in.mp4", "base", True))),
    "feature": ("Based on @video, the next shot", "std", "9:16", 10,
                Refs().plus(VideoRef("https://example.com/in.mp4", "feature", False))),
}


@pytest.mark.parametrize("case", sorted(O1_BEFORE))
@pytest.mark.parametrize("model", [None, "", O1], ids=["no model", "empty", "O1"])
def test_an_o1_request_is_the_intent_it_was_before_models(case, model):
    request = build_request(*O1_ARGS[case], model=model)
    fingerprint, intent, first_id = O1_BEFORE[case]
    assert request.model == O1 and "sound" not in request.payload() and "multi_shot" not in request.payload()
    assert request.fingerprint() == fingerprint
    assert intent_fingerprint(request, 42) == intent and external_id(intent, 1) == first_id


def test_v3_sends_its_model_and_sound_and_is_another_intent():
    o1 = build_request("A fox runs through snow", "pro", "16:9", 5, None)
    v3 = build_request("A fox runs through snow", "pro", "16:9", 5, None, model=V3)
    loud = build_request("A fox runs through snow", "pro", "16:9", 5, None, model=V3, sound=True)
    assert v3.payload() == {"model_name": V3, "prompt": "A fox runs through snow", "mode": "pro",
                            "aspect_ratio": "16:9", "duration": "5", "sound": "off"}
    assert loud.payload()["sound"] == "on"
    assert len({o1.fingerprint(), v3.fingerprint(), loud.fingerprint()}) == 3


def test_v3_takes_3_to_15_seconds_in_every_mode():
    for seconds in (3, 7, 12, 15):
        assert build_request("a", "std", "16:9", seconds, None, model=V3).payload()["duration"] == str(seconds)
        assert build_request("a", "std", "16:9", seconds, Refs().plus(image("f", "first_frame")), model=V3)
    for seconds in (2, 16):
        with pytest.raises(InputError, match="kling-v3-omni takes 3 to 15 seconds") as err:
            build_request("a", "std", "16:9", seconds, None, model=V3)
        assert err.value.input == "duration" and err.value.value == seconds


@pytest.mark.parametrize("seconds, refs, problem", [
    (12, None, "kling-video-o1 takes 3 to 10 seconds"),
    (7, None, "kling-video-o1 text-to-video takes 5 or 10 seconds (kling-v3-omni takes 3 to 15)"),
    (4, Refs().plus(image("f", "first_frame")), "with kling-video-o1 a first frame alone takes 5 or 10 seconds"),
])
def test_o1_keeps_its_own_durations(seconds, refs, problem):
    with pytest.raises(InputError) as err:
        build_request("a", "pro", "16:9", seconds, refs, model=O1)
    assert problem in str(err.value) and err.value.node == "CometOmniPrompt"


def test_a_storyboard_sends_its_shots_in_chain_order():
    story = shots(("A lighthouse keeper climbs the stairs.", 4), ("He lights the lamp @image1.", 3),
                  ("Waves crash below.", 5))
    request = build_request("", "pro", "16:9", 12, Refs().plus(image("a")), model=V3, sound=True, shots=story)
    body = request.payload()
    assert "prompt" not in body  # Kling ignores it with customised shots
    assert (body["multi_shot"], body["shot_type"], body["sound"], body["duration"]) == (True, "customize", "on", "12")
    assert body["multi_prompt"] == [
        {"index": 1, "prompt": "A lighthouse keeper climbs the stairs.", "duration": "4"},
        {"index": 2, "prompt": "He lights the lamp <<<image_1>>>.", "duration": "3"},
        {"index": 3, "prompt": "Waves crash below.", "duration": "5"}]
    validate_request(request)  # Submit's re-check agrees
    with_text = build_request("An old lighthouse", "pro", "16:9", 12, Refs().plus(image("a")), model=V3, shots=story)
    assert with_text.payload()["prompt"] == "An old lighthouse"


def test_auto_shots_ask_kling_to_cut_the_prompt():
    body = build_request("A day at the harbour, from dawn to dusk", "std", "16:9", 15, None, model=V3,
                         auto_shots=True).payload()
    assert (body["multi_shot"], body["shot_type"]) == (True, "intelligence") and "multi_prompt" not in body
    with pytest.raises(InputError, match="the prompt is empty"):
        build_request("", "std", "16:9", 15, None, model=V3, auto_shots=True)


@pytest.mark.parametrize("kwargs, refs, input_, problem", [
    (dict(model=O1, shots=shots(("a", 5))), None, "shots", "storyboards need kling-v3-omni"),
    (dict(model=O1, auto_shots=True), None, "auto_shots", "storyboards need kling-v3-omni"),
    (dict(model=V3, shots=shots(*[("a", 1)] * 7), duration=7), None, "shots", "at most 6 shots"),
    (dict(model=V3, shots=shots(("a", 4), ("b", 3), ("c", 5)), duration=10), None, "duration",
     "4 + 3 + 5 = 12 s"),
    (dict(model=V3, shots=shots(("a", 5)), duration=5), Refs().plus(image("f", "first_frame"), image("e", "end_frame")),
     "shots", "cannot end on an end frame"),
    (dict(model=V3, shots=shots(("a", 5)), duration=5),
     Refs().plus(VideoRef("https://example.com/in.mp4", "base", True)), "shots", "takes no shots"),
    (dict(model=V3, shots=shots(("a", 5)), auto_shots=True, duration=5), None, "auto_shots", "choose one"),
    (dict(model=O1, sound=True), None, "sound", "kling-video-o1 makes no sound"),
    (dict(model=V3, sound=True), Refs().plus(VideoRef("https://example.com/in.mp4", "feature", True)), "sound",
     "requires sound off"),
])
def test_each_refused_combination_names_its_input_and_limit(kwargs, refs, input_, problem):
    duration = kwargs.pop("duration", 5)
    with pytest.raises(InputError) as err:
        build_request("a fox", "pro", "16:9", duration, refs, **kwargs)
    assert err.value.input == input_ and problem in str(err.value) and "Nothing was sent" in str(err.value)


def test_the_durations_message_names_both_sums():
    with pytest.raises(InputError) as err:
        build_request("", "pro", "16:9", 10, None, model=V3, shots=shots(("a", 4), ("b", 3), ("c", 5)))
    assert "10 s, with shots of 4 + 3 + 5 = 12 s" in str(err.value) and "set duration to 12" in str(err.value)


@pytest.mark.parametrize("text, seconds, input_, problem", [
    ("", 3, "prompt", "the prompt is empty; describe the shot (1 to 512 characters)"),
    (" \u200b ", 3, "prompt", "invisible characters"),
    ("x" * 513, 3, "prompt", "the limit is 512 characters"),
    ("a <<<picture_1>>>", 3, "prompt", "not a reference token"),
    ("a", 0, "duration", "a shot lasts 1 to 15 seconds"),
    ("a", 16, "duration", "a shot lasts 1 to 15 seconds"),
])
def test_a_shot_checks_its_own_inputs(text, seconds, input_, problem):
    with pytest.raises(InputError) as err:
        asyncio.run(NODES["CometOmniShot"]().add(prompt=text, duration=seconds, unique_id="7"))
    assert (err.value.node, err.value.input) == ("CometOmniShot #7", input_) and problem in str(err.value)


def test_a_token_in_a_shot_must_point_at_a_wired_reference():
    story = shots(("a", 2), ("then <<<image_2>>> waves", 3))
    with pytest.raises(InputError) as err:
        build_request("", "pro", "16:9", 5, Refs().plus(image("a")), model=V3, shots=story)
    assert err.value.node == "CometOmniShot #2" and "<<<image_2>>>" in str(err.value)
    assert "only 1 image(s) are wired into refs of CometOmniPrompt" in str(err.value)


def test_shot_nodes_chain_like_refs_the_furthest_upstream_first():
    shot = NODES["CometOmniShot"]()
    first = asyncio.run(shot.add(prompt="one", duration=4, unique_id="1"))[0]
    second = asyncio.run(shot.add(prompt="two @image", duration=3, shots=first, unique_id="2"))[0]
    third = asyncio.run(shot.add(prompt="three", duration=5, shots=second, unique_id="3"))[0]
    assert [(s.prompt, s.duration, s.origin) for s in third.items] == [
        ("one", 4, "CometOmniShot #1"), ("two <<<image_1>>>", 3, "CometOmniShot #2"), ("three", 5, "CometOmniShot #3")]
    assert first.items == (Shot("one", 4, "CometOmniShot #1"),)  # the upstream value never changes


def test_the_prompt_node_without_a_model_value_is_o1_and_new_nodes_start_on_v3():
    spec = NODES["CometOmniPrompt"].INPUT_TYPES()
    assert spec["optional"]["model"][0] == [V3, O1] and spec["optional"]["model"][1]["default"] == V3
    assert spec["required"]["duration"][1]["max"] == 15
    legacy = comfy_exec.run(NODES["CometOmniPrompt"], prompt=["A fox runs through snow"], mode=["pro"],
                            aspect_ratio=["16:9"], duration=[5])[0][0]
    assert legacy.model == O1 and legacy.fingerprint() == O1_BEFORE["text"][0]


# --- an O1 run paid before the upgrade, queued again after it -------------------------------------------------

# The journal as the previous version wrote it (schema before models were recorded).
SCHEMA_BEFORE_MODELS = """
CREATE TABLE jobs (fingerprint TEXT NOT NULL, attempt INTEGER NOT NULL, external_task_id TEXT UNIQUE,
    task_id TEXT, state TEXT NOT NULL, prompt TEXT NOT NULL DEFAULT '', base_url TEXT NOT NULL DEFAULT '',
    node_id TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, updated_at REAL NOT NULL,
    video_url TEXT NOT NULL DEFAULT '', video_path TEXT NOT NULL DEFAULT '',
    unit_deduction TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '', mode TEXT NOT NULL DEFAULT '',
    seconds REAL, video_input INTEGER NOT NULL DEFAULT 0, key_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (fingerprint, attempt));
CREATE INDEX jobs_task ON jobs(task_id);
CREATE INDEX jobs_created ON jobs(created_at);
CREATE TABLE hosts (base_url TEXT PRIMARY KEY, echoes_external_id INTEGER NOT NULL);
"""


def test_an_o1_run_paid_before_the_upgrade_creates_nothing_when_queued_again(env, fake_server):
    # The previous version created the task (its external id) and journalled it under its fingerprint.
    _, intent, first_id = O1_BEFORE["text"]
    from kling_omni.client import OmniClient
    with OmniClient(fake_server.key, fake_server.base_url) as client:
        made = client.create_task({"model_name": O1, "prompt": "A fox runs through snow", "mode": "pro",
                                   "aspect_ratio": "16:9", "duration": "5", "external_task_id": first_id})
    path = runtime.journal().path
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_BEFORE_MODELS)
        db.execute("INSERT INTO jobs (fingerprint, attempt, external_task_id, task_id, state, prompt, base_url,"
                   " created_at, updated_at, mode, seconds, video_input) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   (intent, 1, first_id, made.task_id, "processing", "pro 5 s: A fox runs through snow",
                    fake_server.base_url, now, now, "pro", 5.0, 0))
    fake_server.clear_records()

    # The same API prompt as then: no model key; and the same graph with model set to O1.
    for extra in ({}, {"model": [O1]}):
        request = comfy_exec.run(NODES["CometOmniPrompt"], prompt=["A fox runs through snow"], mode=["pro"],
                                 aspect_ratio=["16:9"], duration=[5], **extra)[0]
        tasks, ids = comfy_exec.run(NODES["CometOmniSubmit"], request=request, seed=[42], unique_id=["5"])
        assert ids == [made.task_id]
    frames = comfy_exec.run(NODES["CometOmniPoll"], task=tasks, unique_id=["6"])[0]
    assert frames[0].shape[0] > 0
    assert [r for r in fake_server.requests if r.method == "POST"] == []  # nothing created, nothing paid
    job = Journal(path).by_task(made.task_id)
    assert (job.state, job.model, job.fingerprint) == ("succeeded", "", intent)
    from kling_omni.ledger import job_cost
    assert job_cost(job, runtime.settings().rates).text == "5 s · pro ≈ $0.56"  # priced as the O1 task it is


def test_a_journal_with_columns_of_a_newer_version_still_reads(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    journal.begin("f", 1, "comfy-f-1", prompt="p", base_url="b", mode="pro", seconds=5, model=V3, sound=True,
                  shots=3)
    with sqlite3.connect(journal.path) as db:
        db.execute("ALTER TABLE jobs ADD COLUMN from_the_future TEXT NOT NULL DEFAULT 'x'")
    job = Journal(journal.path).latest("f")
    assert (job.model, job.sound, job.shots, job.auto_shots) == (V3, 1, 3, 0)
    journal.settle("f", 1, "queued", task_id="9")
    with sqlite3.connect(journal.path) as db:
        assert db.execute("SELECT from_the_future, task_id FROM jobs").fetchone() == ("x", "9")
