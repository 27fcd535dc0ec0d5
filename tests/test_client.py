"""OmniClient and response parsing against the fake CometAPI over real loopback HTTP."""

from __future__ import annotations

import socket

import pytest

from fake_cometapi.server import API_PATH, FakeCometAPI
from kling_omni import errors, responses
from kling_omni.client import DEFAULT_BASE_URL, OmniClient, base_url_from_env
from kling_omni.task import FAILED, PROCESSING, QUEUED, SUCCEEDED
from tests.fakeserver_fixtures import fake_server, omni_client  # noqa: F401

KEY = "test-key-123"


def assert_key_hidden(exc: BaseException, key: str = KEY):
    assert key not in str(exc) and key not in repr(exc)
    for value in vars(exc).values():
        assert key not in str(value)


# --- happy paths ------------------------------------------------------------------------------

def test_create_sends_one_bearer_post_and_returns_the_task(fake_server, omni_client):
    state = omni_client.create_task({"prompt": "a fox", "duration": "5", "external_task_id": "e-1"})
    assert state.task_id == next(iter(fake_server.tasks))
    assert state.status == QUEUED and state.raw_status == "submitted"
    assert state.external_task_id == "e-1" and state.created_at > 1e9
    (req,) = fake_server.requests
    assert (req.method, req.path) == ("POST", API_PATH)
    assert req.header("Authorization") == f"Bearer {KEY}"
    assert req.body == {"prompt": "a fox", "duration": "5", "external_task_id": "e-1"}


@pytest.mark.parametrize("shape", ["kling", "task_id", "id"])
def test_create_finds_the_task_id_in_every_documented_place(shape):
    with FakeCometAPI(create_shape=shape) as server, OmniClient(server.key, server.base_url) as client:
        assert client.create_task({"prompt": "x"}).task_id == next(iter(server.tasks))


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_every_response_shape_parses_to_the_same_states(variant):
    with FakeCometAPI(variant=variant, submitted_seconds=1, processing_seconds=10) as server, \
            OmniClient(server.key, server.base_url) as client:
        task_id = client.create_task({"prompt": "x", "external_task_id": "ext"}).task_id
        queued = client.get_task(task_id)
        assert (queued.task_id, queued.status) == (task_id, QUEUED)
        server.advance(2)
        assert client.get_task(task_id).status == PROCESSING
        server.advance(10)
        done = client.get_task(task_id)
        assert done.status == SUCCEEDED and done.raw_status in ("succeed", "SUCCESS")
        assert done.video.url.startswith(server.files_base_url) and done.video.duration == 1.0
        assert done.unit_deduction == "0.8" and done.external_task_id == "ext"
        if variant != "A":
            assert done.progress == 100.0
        failing = client.create_task({"prompt": "x [moderation]"}).task_id
        server.advance(20)
        failed = client.get_task(failing)
        assert failed.status == FAILED and failed.message == server.moderation_message


# --- errors -------------------------------------------------------------------------------------

def test_bad_key_is_auth_error_with_advice_and_no_key(fake_server):
    client = OmniClient("wrong-key-999", fake_server.base_url)
    with pytest.raises(errors.AuthError) as info:
        client.create_task({"prompt": "x"})
    assert "COMETAPI_KEY" in str(info.value) and info.value.status == 401
    assert_key_hidden(info.value, "wrong-key-999")
    with pytest.raises(errors.AuthError):
        client.get_task("1")


def test_no_quota_key_is_quota_error(fake_server):
    client = OmniClient(fake_server.no_quota_key, fake_server.base_url)
    with pytest.raises(errors.QuotaError) as info:
        client.create_task({"prompt": "x"})
    assert info.value.status == 403 and "quota" in str(info.value)
    assert fake_server.created_count == 0


def test_validation_failure_is_bad_request_with_klings_message(fake_server, omni_client):
    with pytest.raises(errors.BadRequest) as info:
        omni_client.create_task({"prompt": "x", "duration": "7"})
    assert info.value.code == 1201 and info.value.status == 400
    assert "duration must be 5 or 10" in str(info.value) and info.value.request_id
    assert fake_server.created_count == 0


def test_unknown_task_is_not_found(omni_client):
    with pytest.raises(errors.NotFound) as info:
        omni_client.get_task("424242")
    assert info.value.code == 1203


def test_create_rejected_with_1303_is_rate_limited_and_not_retried(fake_server, omni_client):
    fake_server.reject_next_create(429, 1303)
    with pytest.raises(errors.RateLimited) as info:
        omni_client.create_task({"prompt": "x"})
    assert "too many tasks at once" in str(info.value) and info.value.retryable
    assert fake_server.created_count == 0 and len(fake_server.requests) == 1


def test_500_after_create_is_creation_uncertain_and_never_retried(fake_server, omni_client):
    fake_server.fail_next_create_after_commit(500)
    with pytest.raises(errors.CreationUncertain) as info:
        omni_client.create_task({"prompt": "x", "external_task_id": "fp-1"})
    message = str(info.value)
    assert "may exist" in message and "NOT resubmitted" in message and "fp-1" in message
    assert info.value.external_task_id == "fp-1" and info.value.status == 500
    assert fake_server.created_count == 1 and len(fake_server.requests) == 1
    assert_key_hidden(info.value)


def test_read_timeout_on_create_is_creation_uncertain(fake_server):
    fake_server.create_delay = 5  # the task exists; its answer comes too late
    client = OmniClient(fake_server.key, fake_server.base_url, timeout=(2, 0.3))
    try:
        with pytest.raises(errors.CreationUncertain) as info:
            client.create_task({"prompt": "x"})
    finally:
        fake_server.release_delays()
    assert "time limit" in str(info.value)
    assert fake_server.created_count == 1 and len(fake_server.requests) == 1


def test_connection_refused_is_network_error_not_uncertain():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OmniClient(KEY, f"http://127.0.0.1:{port}", timeout=(1, 1))
    with pytest.raises(errors.NetworkError) as info:
        client.create_task({"prompt": "x"})
    assert "Nothing was created" in str(info.value)
    assert_key_hidden(info.value)
    with pytest.raises(errors.NetworkError):
        client.get_task("1")


def test_html_answer_points_at_the_base_url(fake_server):
    client = OmniClient(fake_server.key, fake_server.base_url + "/wrong")
    with pytest.raises(errors.UnexpectedResponse) as info:
        client.create_task({"prompt": "x"})
    assert "not JSON" in str(info.value) and "COMETAPI_BASE_URL" in str(info.value)
    with pytest.raises(errors.UnexpectedResponse):
        client.get_task("1")
    assert fake_server.created_count == 0


def test_redirect_is_not_followed(fake_server):
    client = OmniClient(fake_server.key, fake_server.base_url + "/moved")
    with pytest.raises(errors.UnexpectedResponse) as info:
        client.create_task({"prompt": "x"})
    assert "redirect" in str(info.value) and "COMETAPI_BASE_URL" in str(info.value)
    assert len(fake_server.requests) == 1  # the key was not carried to the Location
    assert fake_server.created_count == 0


@pytest.mark.parametrize("status,cls", [(429, errors.RateLimited), (503, errors.ServerError),
                                        (500, errors.ServerError), (504, errors.ServerError)])
def test_status_query_errors_are_retryable_types(fake_server, omni_client, status, cls):
    task_id = omni_client.create_task({"prompt": "x"}).task_id
    fake_server.status_storm([status])
    with pytest.raises(cls) as info:
        omni_client.get_task(task_id)
    assert info.value.retryable and info.value.status == status
    assert omni_client.get_task(task_id).status == SUCCEEDED


def test_status_query_timeout_is_network_error(fake_server):
    client = OmniClient(fake_server.key, fake_server.base_url, timeout=(2, 0.2))
    task_id = client.create_task({"prompt": "x"}).task_id
    fake_server.status_delay = 5
    try:
        with pytest.raises(errors.NetworkError) as info:
            client.get_task(task_id)
    finally:
        fake_server.release_delays()
    assert task_id in str(info.value)


def test_missing_key_is_key_missing():
    with pytest.raises(errors.KeyMissing):
        OmniClient("  ", "http://127.0.0.1:1")


def test_key_absent_from_repr():
    client = OmniClient(KEY, "http://127.0.0.1:1")
    assert KEY not in repr(client) and KEY not in repr(vars(client).get("_auth"))


def test_base_url_from_env():
    assert base_url_from_env({}) == DEFAULT_BASE_URL
    assert base_url_from_env({"COMETAPI_BASE_URL": " http://127.0.0.1:8765/ "}) == "http://127.0.0.1:8765"


# --- response parsing, pure -------------------------------------------------------------------

@pytest.mark.parametrize("body,cls,words", [
    ({"code": 1102, "message": "resource pack exhausted"}, errors.QuotaError, "resource pack is used up"),
    ({"code": 1101, "message": "arrears"}, errors.QuotaError, "arrears"),
    ({"code": 1301, "message": "risk"}, errors.ContentRejected, "content policy"),
    ({"code": 1300, "message": "policy"}, errors.ContentRejected, "platform policy"),
    ({"code": 1303, "message": "parallel task over resource pack limit"}, errors.RateLimited, "too many tasks"),
    ({"code": 1103, "message": "no"}, errors.ForbiddenError, "permission"),
    ({"code": 5001, "message": "maintenance"}, errors.ServerError, "temporarily"),
    ({"code": "insufficient_user_quota", "message": "quota", "data": None}, errors.QuotaError, "quota"),
    ({"code": "task_not_exist", "message": "gone", "data": None}, errors.BadRequest, "gone"),
    ({"error": {"message": "bad", "type": "comet_api_error", "code": "invalid_request"}}, errors.BadRequest,
     "malformed"),
])
def test_error_bodies_map_to_plain_errors(body, cls, words):
    error = responses.error_from_body(400 if cls is errors.BadRequest else 200, body)
    assert type(error) is cls and words in str(error)


def test_business_error_in_a_200_answer():
    error = responses.business_error({"code": 1301, "message": "nope", "request_id": "r-1"}, 200)
    assert isinstance(error, errors.ContentRejected) and error.request_id == "r-1" and error.status is None
    assert responses.business_error({"code": 0, "data": {}}, 200) is None
    assert responses.business_error({"code": "success", "data": {}}, 200) is None


def test_server_text_echoing_the_key_is_redacted():
    body = {"error": {"message": f"invalid token Bearer {KEY} (request id: 1)", "type": "comet_api_error"}}
    error = responses.error_from_response(401, __import__("json").dumps(body), secrets=(KEY,))
    assert isinstance(error, errors.AuthError)
    assert_key_hidden(error)
    html = responses.error_from_response(200, f"<html>{KEY}</html>", content_type="text/html", secrets=(KEY,))
    assert_key_hidden(html)


def test_parse_task_contract_examples():
    processing = {"code": 0, "message": "success", "data": {"task_id": "8", "task_info": {}, "task_result": {},
                                                            "task_status": "processing", "created_at": 1777385419126}}
    state = responses.parse_task(processing)
    assert (state.status, state.video, state.created_at) == (PROCESSING, None, 1777385419.126)
    nulls = {"code": 0, "data": {"task_id": "8", "task_status": "submitted", "task_status_msg": None,
                                 "task_result": None}}
    assert responses.parse_task(nulls).status == QUEUED
    no_videos = {"code": 0, "data": {"task_id": "8", "task_status": "succeed", "task_result": {"videos": []}}}
    assert responses.parse_task(no_videos).video is None
    wrapper_only = {"code": "success", "data": {"task_id": "9", "status": "FAILURE", "fail_reason": "bad",
                                                "progress": "100%", "submit_time": 1773300000}}
    failed = responses.parse_task(wrapper_only)
    assert (failed.status, failed.message, failed.progress, failed.created_at) == (FAILED, "bad", 100.0, 1773300000)
    assert responses.parse_task({"data": {"task_status": "NEW_WORD"}}, task_id="7").status == PROCESSING
    with pytest.raises(errors.UnexpectedResponse):
        responses.parse_task({"code": 0, "data": {}}, task_id="7")


def test_parse_created_order():
    assert responses.parse_created({"data": {"task_id": "1"}, "task_id": "2", "id": "3"}) == "1"
    assert responses.parse_created({"task_id": "2", "id": "3"}) == "2"
    assert responses.parse_created({"id": 3}) == "3"
    assert responses.parse_created({"data": {}}) == ""


def test_proxy_error_pages_count_as_temporary():
    error = responses.error_from_response(502, "<html>Bad gateway</html>", content_type="text/html")
    assert isinstance(error, errors.ServerError) and error.retryable
    error = responses.error_from_response(200, "<html>welcome</html>", content_type="text/html")
    assert isinstance(error, errors.UnexpectedResponse) and "COMETAPI_BASE_URL" in str(error)


def test_base_url_without_scheme_is_refused_before_sending():
    with pytest.raises(errors.OmniError, match="COMETAPI_BASE_URL"):
        OmniClient(KEY, "api.cometapi.com")
