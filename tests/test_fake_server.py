"""The fake CometAPI itself, spoken to with plain `requests` (not the pack's client), so a
client bug cannot hide a fake-server bug or the other way round."""

from __future__ import annotations

import base64
import http.client
import io
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import av
import pytest
import requests
from PIL import Image

from fake_cometapi.server import API_PATH, FakeCometAPI
from tests.fakeserver_fixtures import fake_server  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def png_b64(width=320, height=320) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


IMG = "https://example.com/a.png"
VID = "https://example.com/in.mp4"


def post(server, body, key=None):
    key = server.key if key is None else key
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(server.base_url + API_PATH, json=body, headers=headers, timeout=5)


def get(server, task_id, key=None):
    return requests.get(f"{server.base_url}{API_PATH}/{task_id}",
                        headers={"Authorization": f"Bearer {key or server.key}"}, timeout=5)


# --- auth -------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["", "wrong-key"])
def test_missing_or_bad_key_is_401_comet_envelope(fake_server, key):
    r = post(fake_server, {"prompt": "x", "duration": "5"}, key=key)
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["type"] == "comet_api_error" and "request id" in err["message"]
    assert fake_server.created_count == 0


def test_no_quota_key_is_403_insufficient_user_quota(fake_server):
    r = post(fake_server, {"prompt": "x"}, key=fake_server.no_quota_key)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "insufficient_user_quota"
    assert fake_server.created_count == 0


# --- validation -------------------------------------------------------------------------------

BAD_BODIES = {
    "empty prompt": {"prompt": ""},
    "no prompt": {"duration": "5"},
    "long prompt": {"prompt": "x" * 2501},
    "model": {"prompt": "x", "model_name": "kling-v2"},
    "mode": {"prompt": "x", "mode": "4k"},
    "aspect": {"prompt": "x", "aspect_ratio": "4:3"},
    "duration 7 text-only": {"prompt": "x", "duration": "7"},
    "duration 3 first frame only": {"prompt": "x", "image_list": [{"image_url": IMG, "type": "first_frame"}],
                                    "duration": "3"},
    "duration 11": {"prompt": "x", "image_list": [{"image_url": IMG}], "duration": "11"},
    "duration 2 int": {"prompt": "x", "image_list": [{"image_url": IMG}], "duration": 2},
    "duration float text": {"prompt": "x", "image_list": [{"image_url": IMG}], "duration": "5.5"},
    "8 refs": {"prompt": "x", "image_list": [{"image_url": IMG}] * 5, "element_list": [{"element_id": 1}] * 3},
    "5 refs with video": {"prompt": "x", "image_list": [{"image_url": IMG}] * 5,
                          "video_list": [{"video_url": VID, "refer_type": "feature"}]},
    "2 videos": {"prompt": "x", "video_list": [{"video_url": VID}] * 2},
    "type enum": {"prompt": "x", "image_list": [{"image_url": IMG, "type": "middle_frame"}]},
    "end without first": {"prompt": "x", "image_list": [{"image_url": IMG, "type": "end_frame"}]},
    "end with 3 images": {"prompt": "x", "image_list": [{"image_url": IMG, "type": "first_frame"},
                                                        {"image_url": IMG, "type": "end_frame"},
                                                        {"image_url": IMG}]},
    "refer_type": {"prompt": "x", "video_list": [{"video_url": VID, "refer_type": "style"}]},
    "keep_original_sound": {"prompt": "x", "video_list": [{"video_url": VID, "keep_original_sound": True}]},
    "bad base64": {"prompt": "x", "image_list": [{"image_url": "not base64!!"}]},
    "data prefix": {"prompt": "x", "image_list": [{"image_url": "data:image/png;base64," + png_b64()}]},
    "small image": {"prompt": "x", "image_list": [{"image_url": png_b64(200, 320)}]},
    "wide image": {"prompt": "x", "image_list": [{"image_url": png_b64(1000, 300)}]},
    "empty image_url": {"prompt": "x", "image_list": [{"image_url": ""}]},
    "element id string": {"prompt": "x", "element_list": [{"element_id": "829836802793406551"}]},
    "v3 sound field": {"prompt": "x", "sound": "on"},
    "frames with base edit": {"prompt": "x", "image_list": [{"image_url": IMG, "type": "first_frame"}],
                              "video_list": [{"video_url": VID, "refer_type": "base"}]},
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_rule_violations_are_400_code_1201_and_create_nothing(fake_server, name):
    r = post(fake_server, BAD_BODIES[name])
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] in (1200, 1201) and body["message"] and body["request_id"]
    assert fake_server.created_count == 0


GOOD_BODIES = {
    "prompt only": {"prompt": "A paper boat drifting down a rain-soaked street at dusk"},
    "int duration": {"prompt": "x", "duration": 10},
    "refs 3 s": {"prompt": "<<<image_1>>> <<<element_1>>>", "image_list": [{"image_url": png_b64()}],
                 "element_list": [{"element_id": 829836802793406551}], "aspect_ratio": "1:1", "duration": "3"},
    "first+end 7 s": {"prompt": "x", "image_list": [{"image_url": IMG, "type": "first_frame"},
                                                    {"image_url": IMG, "type": "end_frame"}], "duration": "7"},
    "7 refs": {"prompt": "x", "image_list": [{"image_url": IMG}] * 4, "element_list": [{"element_id": 5}] * 3},
    "base edit ignores duration": {"prompt": "x", "video_list": [{"video_url": VID, "refer_type": "base",
                                                                  "keep_original_sound": "yes"}],
                                   "duration": "99"},
    "feature 4 refs": {"prompt": "x", "image_list": [{"image_url": IMG}] * 4, "duration": "4",
                       "video_list": [{"video_url": VID, "refer_type": "feature", "keep_original_sound": "no"}]},
}


@pytest.mark.parametrize("name", sorted(GOOD_BODIES))
def test_valid_requests_create_a_submitted_task(fake_server, name):
    r = post(fake_server, GOOD_BODIES[name])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 0
    data = body["data"]
    assert isinstance(data["task_id"], str) and data["task_id"].isdigit()
    assert data["task_status"] == "submitted" and data["created_at"] > 1e12  # milliseconds
    assert fake_server.created_count == 1
    assert fake_server.requests[-1].body == GOOD_BODIES[name]


def test_relaxed_durations_flag_allows_3_s_text_to_video():
    with FakeCometAPI(strict_durations=False) as server:
        assert post(server, {"prompt": "x", "duration": "3"}).status_code == 200


def test_external_task_id_is_echoed_and_unique(fake_server):
    r = post(fake_server, {"prompt": "x", "external_task_id": "job-1"})
    data = r.json()["data"]
    assert data["task_info"] == {"external_task_id": "job-1"}
    assert get(fake_server, data["task_id"]).json()["data"]["task_info"]["external_task_id"] == "job-1"
    again = post(fake_server, {"prompt": "y", "external_task_id": "job-1"})
    assert again.status_code == 400 and again.json()["code"] == 1201
    assert "already exists" in again.json()["message"]
    assert fake_server.created_count == 1


# --- state machine and shapes -------------------------------------------------------------------

def test_state_machine_follows_the_server_clock():
    with FakeCometAPI(submitted_seconds=10, processing_seconds=100) as server:
        task_id = post(server, {"prompt": "x"}).json()["data"]["task_id"]
        first = get(server, task_id).json()["data"]
        assert first["task_status"] == "submitted" and first["task_result"] == {}
        server.advance(10)
        second = get(server, task_id).json()["data"]
        assert second["task_status"] == "processing" and second["task_result"] == {}
        assert second["updated_at"] > first["updated_at"]
        server.advance(100)
        done = get(server, task_id).json()["data"]
        assert done["task_status"] == "succeed" and done["final_unit_deduction"]
        video = done["task_result"]["videos"][0]
        assert video["url"].startswith(server.files_base_url + "/")
        assert float(video["duration"]) == server.video_seconds and video["id"]


def test_finish_ends_a_task_at_once_either_way():
    with FakeCometAPI(processing_seconds=3600) as server:
        a = post(server, {"prompt": "x"}).json()["data"]["task_id"]
        b = post(server, {"prompt": "y"}).json()["data"]["task_id"]
        server.finish(a)
        server.finish(b, failed=True, message="nope")
        assert get(server, a).json()["data"]["task_status"] == "succeed"
        failed = get(server, b).json()["data"]
        assert failed["task_status"] == "failed" and failed["task_status_msg"] == "nope"


def test_moderation_marker_fails_the_task_with_a_message(fake_server):
    task_id = post(fake_server, {"prompt": "a [moderation] test"}).json()["data"]["task_id"]
    data = get(fake_server, task_id).json()["data"]
    assert data["task_status"] == "failed" and data["task_status_msg"]
    assert data["task_result"] == {}


def test_variant_b_wraps_the_kling_task(fake_server):
    fake_server.variant = "B"
    task_id = post(fake_server, {"prompt": "x"}).json()["data"]["task_id"]
    body = get(fake_server, task_id).json()
    assert body["code"] == "success"
    wrapper = body["data"]
    assert wrapper["status"] == "SUCCESS" and wrapper["progress"] == "100%" and wrapper["action"] == "OMNI_VIDEO"
    assert wrapper["submit_time"] < 1e11  # seconds, unlike Kling's milliseconds
    assert wrapper["data"]["task_status"] == "succeed"
    assert wrapper["data"]["task_result"]["videos"][0]["url"]


def test_variant_b_failure_and_progress_vocabulary():
    with FakeCometAPI(variant="B", submitted_seconds=1, processing_seconds=10) as server:
        task_id = post(server, {"prompt": "x [moderation]"}).json()["data"]["task_id"]
        assert get(server, task_id).json()["data"]["status"] == "SUBMITTED"
        server.advance(6)
        wrapper = get(server, task_id).json()["data"]
        assert wrapper["status"] == "IN_PROGRESS" and wrapper["progress"] == "50%"
        server.advance(10)
        wrapper = get(server, task_id).json()["data"]
        assert wrapper["status"] == "FAILURE" and wrapper["fail_reason"]


def test_variant_c_nests_a_whole_kling_envelope(fake_server):
    fake_server.variant = "C"
    task_id = post(fake_server, {"prompt": "x"}).json()["data"]["task_id"]
    inner = get(fake_server, task_id).json()["data"]["data"]
    assert inner["code"] == 0 and inner["data"]["task_status"] == "succeed"
    assert inner["data"]["task_result"]["videos"][0]["url"]


@pytest.mark.parametrize("shape,where", [("task_id", ("task_id",)), ("id", ("id",))])
def test_other_create_shapes(shape, where):
    with FakeCometAPI(create_shape=shape) as server:
        body = post(server, {"prompt": "x"}).json()
        assert body[where[0]] == next(iter(server.tasks))


def test_unknown_task_is_404_code_1203(fake_server):
    r = get(fake_server, "123")
    assert r.status_code == 404 and r.json()["code"] == 1203


def test_wrong_paths_answer_html_and_moved_paths_redirect(fake_server):
    r = requests.get(fake_server.base_url + "/v1/videos/omni-video/1", timeout=5)
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("text/html")
    r = requests.post(fake_server.base_url + "/moved" + API_PATH, json={}, allow_redirects=False, timeout=5)
    assert r.status_code == 301 and r.headers["Location"] == API_PATH


# --- faults -------------------------------------------------------------------------------------

def test_create_500_after_commit_and_429_before(fake_server):
    fake_server.fail_next_create_after_commit()
    r = post(fake_server, {"prompt": "x"})
    assert r.status_code == 500 and r.json()["code"] == 5000
    assert fake_server.created_count == 1
    fake_server.reject_next_create()
    r = post(fake_server, {"prompt": "x"})
    assert r.status_code == 429 and r.json()["code"] == 1303
    assert fake_server.created_count == 1
    assert post(fake_server, {"prompt": "x"}).status_code == 200  # faults are one-shot
    assert fake_server.created_count == 2


def test_status_storm_then_normal(fake_server):
    task_id = post(fake_server, {"prompt": "x"}).json()["data"]["task_id"]
    fake_server.status_storm([429, 503])
    assert [get(fake_server, task_id).status_code for _ in range(3)] == [429, 503, 200]
    assert fake_server.queries_of(task_id) == 3


def _finished_url(server):
    task_id = post(server, {"prompt": "x"}).json()["data"]["task_id"]
    return task_id, get(server, task_id).json()["data"]["task_result"]["videos"][0]["url"]


def test_file_server_serves_a_real_mp4_with_ranges(fake_server):
    _, url = _finished_url(fake_server)
    whole = requests.get(url, timeout=5)
    assert whole.status_code == 200 and whole.headers["Content-Type"] == "video/mp4"
    with av.open(io.BytesIO(whole.content)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == fake_server.video_seconds * fake_server.video_fps
    part = requests.get(url, headers={"Range": "bytes=100-"}, timeout=5)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-{len(whole.content) - 1}/{len(whole.content)}"
    assert part.content == whole.content[100:]


def test_cut_download_announces_everything_and_delivers_half(fake_server):
    _, url = _finished_url(fake_server)
    size = len(requests.get(url, timeout=5).content)
    fake_server.cut_next_downloads(1)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request("GET", parts.path)
    response = conn.getresponse()
    assert int(response.getheader("Content-Length")) == size
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    conn.close()
    assert len(cut.value.partial) == size // 2


def test_expired_urls_answer_403_and_a_fresh_query_gives_a_working_one(fake_server):
    task_id, url = _finished_url(fake_server)
    fake_server.expire_urls()
    assert requests.get(url, timeout=5).status_code == 403
    fresh = get(fake_server, task_id).json()["data"]["task_result"]["videos"][0]["url"]
    assert fresh != url and requests.get(fresh, timeout=5).status_code == 200


def test_file_server_is_another_host_and_records_headers(fake_server):
    _, url = _finished_url(fake_server)
    assert fake_server.files_base_url != fake_server.base_url
    requests.get(url, headers={"X-Probe": "1"}, timeout=5)
    assert fake_server.file_requests[-1].header("x-probe") == "1"


# --- standalone --------------------------------------------------------------------------------

def test_standalone_server_prints_its_urls_and_answers():
    proc = subprocess.Popen([sys.executable, "-m", "fake_cometapi", "--port", "0", "--key", "k-standalone",
                             "--processing-seconds", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        base = re.search(r"(http://127\.0\.0\.1:\d+)", line).group(1)
        r = requests.post(base + API_PATH, json={"prompt": "x"},
                          headers={"Authorization": "Bearer k-standalone"}, timeout=5)
        assert r.status_code == 200 and r.json()["data"]["task_status"] == "submitted"
        assert "Result videos served from http://" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_remote_control_applies_listed_faults_only_and_reports_counts(fake_server):
    def control(body):
        return requests.post(fake_server.base_url + "/_fake/control", json=body, timeout=5)

    assert control({"set": {"create_status": 201}}).status_code == 200
    assert control({"call": "reject_next_create", "args": [429, 1303]}).status_code == 200
    assert post(fake_server, {"prompt": "x"}).status_code == 429
    created = post(fake_server, {"prompt": "x", "external_task_id": "e-1"})
    assert created.status_code == 201
    task_id = created.json()["data"]["task_id"]
    assert control({"call": "finish", "args": [task_id]}).status_code == 200
    assert control({"call": "break_next_files", "kwargs": {"kind": "empty"}}).status_code == 200
    url = get(fake_server, task_id).json()["data"]["task_result"]["videos"][0]["url"]
    assert requests.get(url, timeout=5).content == b""
    requests.get(url, headers={"Range": "bytes=10-"}, timeout=5)

    # Nothing outside the lists: no other method, no other attribute (the key stays)
    for body in ({"call": "stop"}, {"call": "_create"}, {"set": {"key": "attacker"}}, {"set": {"_tasks": {}}},
                 {"call": "break_next_files", "args": ["bogus"]}, ["not", "an", "object"]):
        assert control(body).status_code in (400, 404), body
    assert fake_server.key == "test-key-123" and fake_server.base_url

    state = requests.get(fake_server.base_url + "/_fake/state", timeout=5).json()
    assert state["created"] == 1 and state["tasks"][0] == {"task_id": task_id, "status": "succeed", "prompt": "x",
                                                           "external_task_id": "e-1", "model_name": "kling-video-o1"}
    assert (state["creation_requests"], state["refused_creates"], state["status_queries"]) == (2, 1, 1)
    assert state["file_requests"] == [{"task_id": task_id, "range": None, "authorization": False},
                                      {"task_id": task_id, "range": "bytes=10-", "authorization": False}]
    assert not any("/_fake/" in r.path for r in fake_server.requests)  # the control is no API traffic


def test_standalone_server_keeps_an_account_limit():
    proc = subprocess.Popen([sys.executable, "-m", "fake_cometapi", "--port", "0", "--key", "k-standalone",
                             "--processing-seconds", "60", "--max-in-flight", "2", "--retry-after", "3",
                             "--log-creations"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "at most 2 tasks in flight" in line
        base = re.search(r" at (http://127\.0\.0\.1:\d+)", line).group(1)
        while proc.stdout.readline().strip() != "Ctrl-C to stop.":  # the rest of the start-up lines
            pass
        answers = [requests.post(base + API_PATH, json={"prompt": "x"}, timeout=5,
                                 headers={"Authorization": "Bearer k-standalone"}) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].json()["code"] == 1303 and answers[2].headers["Retry-After"] == "3"
        logged = [proc.stdout.readline() for _ in range(3)]
        assert logged[0].startswith("creation answered 200: task ") and logged[1].startswith("creation answered 200")
        assert logged[2].strip() == "creation answered 429 (code 1303)"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
