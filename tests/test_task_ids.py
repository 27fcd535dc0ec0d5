"""Task ids go into URLs and file names: each is checked first, whoever typed or sent it.

A task id typed into Poll's task_id or given to `python -m kling_omni collect` is refused
before any request unless it is 1 to 128 letters, digits, '-' or '_'; one that CometAPI
itself hands out is not trusted either, and never leads to a second paid task.
"""

import asyncio
from pathlib import Path

import pytest

from kling_omni import errors

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from tests.test_download_world import cli, environment, poll

# The odd ids ("ab" and "task" are fine, below), and two more of the same kind
ODD_IDS = ["a/b", "..", "...", "7" * 300, "../kling/v1/x", "a b"]


# --- task ids and result URLs that must not be trusted ---------------------------------------------

@pytest.mark.parametrize("odd", ODD_IDS)
def test_an_unsafe_task_id_is_refused_before_any_request(env, fake_server, odd):
    with pytest.raises(errors.InputError) as err:
        poll(task_id=odd)
    message = str(err.value)
    assert "CometOmniPoll" in message and "task_id" in message and "128" in message and "letters" in message
    assert len(message) < 400  # the value is shortened
    assert fake_server.requests == [] and fake_server.file_requests == []


def test_ids_that_differ_get_their_own_query_and_file(env, fake_server):
    # "ab" and "task" are fine ids; before, "a/b" and "ab" (and "..." and "task") shared a file
    from kling_omni.collect import video_path

    for tid in ("ab", "task"):
        with pytest.raises(errors.NotFound):
            poll(task_id=tid)
        assert fake_server.queries_of(tid) == 1
    assert video_path(Path("out"), "ab") != video_path(Path("out"), "a-b") != video_path(Path("out"), "a_b")
    for odd in ("a/b", "..."):
        with pytest.raises(errors.InputError):
            video_path(Path("out"), odd)


@pytest.mark.parametrize("odd", ["../../x", "9" * 300])
def test_a_server_handing_out_an_unsafe_id_is_not_trusted_and_not_paid_twice(env, fake_server, odd):
    fake_server.next_task_ids(odd)

    def submit():
        (request,) = asyncio.run(NODES["CometOmniPrompt"]().build(prompt="A fox", mode="pro",
                                                                   aspect_ratio="16:9", duration=5))
        return asyncio.run(NODES["CometOmniSubmit"]().submit(request=request, seed=0, unique_id="4"))

    with pytest.raises(errors.OmniError) as first:
        submit()
    assert not isinstance(first.value, errors.InputError)
    assert "128" in str(first.value)
    with pytest.raises(errors.OmniError) as second:  # queued again: the task is looked up, not re-made
        submit()
    causes = []
    cause = second.value
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__
    assert any(isinstance(c, errors.UnexpectedResponse) for c in causes)
    assert fake_server.created_count == 1 and fake_server.file_requests == []
    assert not any(Path(env["COMETAPI_OMNI_OUTPUT"]).rglob("*.mp4"))


@pytest.mark.parametrize("odd", ["..", "a/b", "7" * 300])
def test_cli_refuses_an_unsafe_task_id_in_one_line(fake_server, tmp_path, odd):
    done = cli("collect", odd, env=environment(fake_server, tmp_path / "home"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "TASK_ID" in done.stderr and "128" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert fake_server.requests == []
