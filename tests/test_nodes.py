"""Every node executed for real, in plain Python, against the fake CometAPI over HTTP."""

import asyncio
import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from fake_cometapi.media import read_index
from kling_omni.errors import InputError, KeyMissing, TaskFailed, WaitCancelled, WaitTimeout

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import bridge, runtime


def run(coro):
    return asyncio.run(coro)


def picture(width=512, height=384, batch=1, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.random((batch, height, width, 3), dtype=np.float32))


@pytest.fixture
def pack_env(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("COMETAPI_KEY", fake_server.key)
    monkeypatch.setenv("COMETAPI_BASE_URL", fake_server.base_url)
    monkeypatch.setenv("COMETAPI_OMNI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COMETAPI_OMNI_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("COMETAPI_OMNI_POLL_SECONDS", "0.02")
    return fake_server


def build(prompt="A fox runs through snow", refs=None, mode="pro", aspect="16:9", duration=5):
    return run(NODES["CometOmniPrompt"]().build(prompt=prompt, mode=mode, aspect_ratio=aspect,
                                                duration=duration, refs=refs))[0]


def image_ref(image, role="reference", refs=None, uid="10"):
    return run(NODES["CometOmniImageRef"]().add(image=image, role=role, refs=refs, unique_id=uid))[0]


def submit(request, seed=0, uid="20"):
    (task,), (task_id,) = run(NODES["CometOmniSubmit"]().submit(request=request, seed=seed, unique_id=uid))["result"]
    return task, task_id


def poll(uid="30", prompt=None, **kwargs):
    return run(NODES["CometOmniPoll"]().poll(unique_id=uid, prompt=prompt, **kwargs))


def posts(server):
    return [r for r in server.requests if r.method == "POST"]


def test_text_to_video_end_to_end(pack_env):
    task, task_id = submit(build())
    out = poll(task=task)
    frames, audio, video, fps, tid, url = out["result"]
    body = posts(pack_env)[0].body
    assert body == {"model_name": "kling-video-o1", "prompt": "A fox runs through snow", "mode": "pro",
                    "aspect_ratio": "16:9", "duration": "5", "external_task_id": body["external_task_id"]}
    assert tid == task_id == task.task_id
    n = round(pack_env.video_seconds * pack_env.video_fps)
    assert frames.dtype == torch.float32 and tuple(frames.shape) == (n, 120, 160, 3)
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    assert [read_index(f.numpy()) for f in frames] == list(range(n))
    assert audio["waveform"].dim() == 3 and audio["waveform"].shape[0] == 1 and audio["sample_rate"] > 0
    assert fps == pytest.approx(pack_env.video_fps)
    path = video.get_stream_source()
    assert path.endswith(".mp4") and "output" in path
    assert url.startswith(pack_env.files_base_url)
    assert out["ui"]["task_id"] == [task_id]
    assert out["ui"]["images"][0]["filename"] in path and out["ui"]["animated"] == [True]


def test_image_references_keep_chain_and_batch_order(pack_env):
    first = picture(seed=1)
    batch = picture(seed=2, batch=2)
    refs = image_ref(first, uid="1")
    refs = image_ref(batch, refs=refs, uid="2")
    request = build("<<<image_1>>> then @image3", refs=refs, duration=7)
    submit(request)
    sent = posts(pack_env)[0].body["image_list"]
    assert len(sent) == 3
    assert request.prompt == "<<<image_1>>> then <<<image_3>>>"
    decoded = []
    for entry in sent:
        assert not entry["image_url"].startswith("data:") and "type" not in entry
        decoded.append(np.asarray(Image.open(io.BytesIO(base64.b64decode(entry["image_url"]))), dtype=np.float32))
    expected = [first[0], batch[0], batch[1]]
    for got, want in zip(decoded, expected):  # each arrived in its place (JPEG: close, not exact)
        assert np.abs(got / 255.0 - want.numpy()).mean() < 0.08


def test_first_frame_without_aspect_ratio(pack_env):
    refs = image_ref(picture(), role="first_frame")
    submit(build("she turns", refs=refs))
    body = posts(pack_env)[0].body
    assert "aspect_ratio" not in body and body["image_list"][0]["type"] == "first_frame"


def test_element_and_video_refs_payload(pack_env):
    refs = run(NODES["CometOmniElementRef"]().add(element_id="829836802793406551", unique_id="3"))[0]
    refs = run(NODES["CometOmniVideoRef"]().add(video_url="https://example.com/in.mp4", refer_type="base",
                                               keep_original_sound=True, refs=refs, unique_id="4"))[0]
    submit(build("<<<element_1>>> in <<<video_1>>>", refs=refs))
    post = posts(pack_env)[0]
    assert '"element_id": 829836802793406551' in json.dumps(post.body)
    assert post.body["video_list"] == [{"video_url": "https://example.com/in.mp4", "refer_type": "base",
                                        "keep_original_sound": "yes"}]
    assert "duration" not in post.body and "aspect_ratio" not in post.body


BAD = {
    "prompt too long": (lambda: build("x" * 2501), "CometOmniPrompt", "prompt"),
    "token to nothing": (lambda: build("see <<<image_1>>>"), "CometOmniPrompt", "prompt"),
    "text-only 7 s": (lambda: build(duration=7), "CometOmniPrompt", "duration"),
    "image too small": (lambda: image_ref(picture(200, 400)), "CometOmniImageRef", "image"),
    "image too wide": (lambda: image_ref(picture(1000, 300)), "CometOmniImageRef", "image"),
    "batch as first frame": (lambda: image_ref(picture(batch=2), role="first_frame"), "CometOmniImageRef", "image"),
    "end frame alone": (lambda: build(refs=image_ref(picture(), role="end_frame")), "CometOmniPrompt", "refs"),
    "element id": (lambda: run(NODES["CometOmniElementRef"]().add(element_id="abc")), "CometOmniElementRef", "element_id"),
    "video scheme": (lambda: run(NODES["CometOmniVideoRef"]().add(video_url="file:///a.mp4", refer_type="base",
                                                                  keep_original_sound=False)),
                     "CometOmniVideoRef", "video_url"),
    "eight images": (lambda: build(refs=image_ref(picture(batch=8))), "CometOmniPrompt", "refs"),
    "poll nothing": (lambda: poll(), "CometOmniPoll", "task / task_id"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_node_input_and_sends_nothing(pack_env, case):
    action, node, input_name = BAD[case]
    with pytest.raises(InputError) as err:
        action()
    assert err.value.node.startswith(node) and err.value.input == input_name
    assert "got" in str(err.value)
    assert pack_env.requests == []


def test_missing_key_says_how_to_set_it(pack_env, monkeypatch):
    monkeypatch.delenv("COMETAPI_KEY")
    with pytest.raises(KeyMissing) as err:
        submit(build())
    assert "COMETAPI_KEY" in str(err.value) and "Settings" in str(err.value)
    assert pack_env.requests == []


def test_poll_collects_any_task_by_id(pack_env, omni_client):
    state = omni_client.create_task({"model_name": "kling-video-o1", "prompt": "made elsewhere",
                                     "duration": "5", "aspect_ratio": "16:9"})
    frames, _, _, _, tid, _ = poll(task_id=f"  {state.task_id} ")["result"]
    assert tid == state.task_id and frames.shape[0] > 1


def test_failed_task_raises_with_reason_and_id(pack_env):
    task, _ = submit(build("a cat [moderation]"))
    with pytest.raises(TaskFailed) as err:
        poll(task=task)
    assert task.task_id in str(err.value) and "risk control" in str(err.value)


def test_timeout_names_the_task_to_collect_later(pack_env, monkeypatch):
    pack_env.processing_seconds = 3600
    task, _ = submit(build())
    with pytest.raises(WaitTimeout) as err:
        run(NODES["CometOmniPoll"]().poll(task=task, timeout_minutes=1 / 1200, unique_id="30"))  # 0.05 s
    assert task.task_id in str(err.value) and "CometOmniPoll" in str(err.value)


def test_cancel_stops_within_a_second_and_names_the_task(pack_env, monkeypatch):
    pack_env.processing_seconds = 3600
    task, _ = submit(build())
    monkeypatch.setattr(bridge, "interrupted", lambda: pack_env.queries_of(task.task_id) >= 2)
    with pytest.raises(WaitCancelled) as err:
        poll(task=task)
    assert task.task_id in str(err.value) and "keeps running" in str(err.value)


def test_several_polls_wait_at_the_same_time(pack_env):
    pack_env.processing_seconds = 3600
    a, _ = submit(build("first clip"), seed=1)
    b, _ = submit(build("second clip"), seed=2)

    async def both():
        waits = [NODES["CometOmniPoll"]().poll(task=t, unique_id=u) for t, u in ((a, "31"), (b, "32"))]
        gathered = asyncio.gather(*waits)
        # Both tasks are being queried before either is done: the waits overlap.
        await asyncio.to_thread(pack_env.wait_until,
                                lambda: pack_env.queries_of(a.task_id) >= 2 and pack_env.queries_of(b.task_id) >= 2)
        pack_env.finish(a.task_id)
        pack_env.finish(b.task_id)
        return await gathered

    first, second = asyncio.run(both())
    assert first["result"][4] == a.task_id and second["result"][4] == b.task_id


def test_unlinked_frames_and_audio_are_not_decoded(pack_env):
    task, _ = submit(build())
    api_prompt = {"30": {"class_type": "CometOmniPoll", "inputs": {"task": ["20", 0]}},
                  "40": {"class_type": "SaveVideo", "inputs": {"video": ["30", 2]}}}
    frames, audio, video, fps, *_ = poll(task=task, prompt=api_prompt)["result"]
    assert tuple(frames.shape) == (1, 1, 1, 3) and audio["waveform"].numel() == 1
    assert fps == pytest.approx(pack_env.video_fps)
    assert NODES["CometOmniPoll"].IS_CHANGED(unique_id="30", prompt=api_prompt) == "2"
    linked = dict(api_prompt, **{"50": {"class_type": "PreviewImage", "inputs": {"images": ["30", 0]}}})
    assert NODES["CometOmniPoll"].IS_CHANGED(unique_id="30", prompt=linked) == "0,2"
    frames, *_ = poll(task=task, prompt=linked)["result"]
    assert frames.shape[0] > 1


def test_rerun_after_restart_costs_no_request_and_no_download(pack_env):
    task, _ = submit(build(), seed=7)
    poll(task=task)
    job = runtime.journal().by_task(task.task_id)  # what the journal keeps of a paid intent
    assert job.fingerprint == task.fingerprint and job.state == "succeeded" and job.attempt == 1
    assert job.video_on_disk is not None and job.video_url.startswith(pack_env.files_base_url)
    assert float(job.unit_deduction) > 0  # Kling's final_unit_deduction, as reported
    assert job.created_at <= job.updated_at and job.external_task_id.startswith("comfy-")
    runtime._journal_at.cache_clear()  # as after a restart: a fresh journal object on the same file
    pack_env.clear_records()
    task_again, _ = submit(build(), seed=7)
    frames, *_ = poll(task=task_again)["result"]
    assert task_again.task_id == task.task_id and frames.shape[0] > 1
    assert pack_env.requests == [] and pack_env.file_requests == []
    assert pack_env.created_count == 1


def test_new_seed_is_a_new_task(pack_env):
    a, _ = submit(build(), seed=1)
    b, _ = submit(build(), seed=2)
    assert a.task_id != b.task_id and pack_env.created_count == 2


def test_key_never_leaves_a_trace(pack_env, tmp_path):
    task, _ = submit(build())
    out = poll(task=task)
    key = pack_env.key.encode()
    assert key not in json.dumps(out["ui"]).encode()
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "key":
            assert key not in path.read_bytes(), path
    assert all("authorization" not in {k.lower() for k in r.headers} for r in pack_env.file_requests)


def test_collect_of_a_mistyped_id_leaves_no_journal_row(pack_env):
    from kling_omni.errors import NotFound
    with pytest.raises(NotFound) as err:
        poll(task_id="12345")
    assert "12345" in str(err.value)
    assert runtime.journal().jobs() == []


def test_cancel_while_a_query_hangs_ends_the_prompt_at_once(pack_env, monkeypatch):
    """ComfyUI runs each prompt in asyncio.run(), whose end joins the loop's default executor:
    an abandoned status query must not keep a cancelled prompt running until it times out."""
    import time
    pack_env.processing_seconds = 3600
    task, _ = submit(build())
    pack_env.status_delay = 30  # every status answer hangs for 30 s
    monkeypatch.setattr(bridge, "interrupted", lambda: pack_env.queries_of(task.task_id) >= 1)
    started = time.monotonic()
    try:
        with pytest.raises(WaitCancelled):
            poll(task=task)  # asyncio.run(...), as ComfyUI runs a prompt
        assert time.monotonic() - started < 10  # far below the 30 s the query hangs
    finally:
        pack_env.release_delays()


def test_rerun_after_a_failed_task_submits_a_new_attempt(pack_env):
    """ComfyUI would hand out the cached failed task forever; Submit's IS_CHANGED moves on."""
    submit_node = NODES["CometOmniSubmit"]
    request = build("a cat [moderation]")
    assert submit_node.IS_CHANGED(unique_id="20", seed=0) == 0
    task, _ = submit(request)
    with pytest.raises(TaskFailed):
        poll(task=task)
    assert submit_node.IS_CHANGED(unique_id="20", seed=0) == 1  # ComfyUI re-runs Submit
    retry, _ = submit(request)
    assert retry.task_id != task.task_id and pack_env.created_count == 2
    assert submit_node.IS_CHANGED(unique_id="20", seed=0) == 1  # stable until another failure


def test_the_settings_test_key_action(pack_env):
    ok, message = runtime.test_key(pack_env.key)
    assert ok and "accepted" in message
    ok, message = runtime.test_key("sk-wrong-key-000000000000")
    assert not ok and "sk-wrong-key" not in message and "401" in message
    assert [r.method for r in pack_env.requests] == ["GET", "GET"]  # cheap: no task was created
    assert pack_env.created_count == 0
