"""wait_for_task: polling, backoff, cancel, timeout, concurrency; against the fake server.

Ordering is asserted with the fake server's request log and events, not with sleeps.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from fake_cometapi.server import FakeCometAPI
from kling_omni import errors
from kling_omni.client import OmniClient
from kling_omni.task import SUCCEEDED
from kling_omni.waiting import Backoff, wait_for_task
from tests.fakeserver_fixtures import fast_backoff, fake_server, omni_client  # noqa: F401


@pytest.fixture
def slow_server():
    """Tasks never end on their own: the test ends them with finish()."""
    with FakeCometAPI(processing_seconds=3600) as server:
        yield server


@pytest.fixture
def slow_client(slow_server):
    with OmniClient(slow_server.key, slow_server.base_url, timeout=(2, 5)) as client:
        yield client


def in_thread(fn):
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


class RecordingBackoff(Backoff):
    def __init__(self):
        super().__init__(base=0.01, cap=0.04, jitter=0.0)
        object.__setattr__(self, "attempts", [])

    def delay(self, attempt, retry_after=None):
        self.attempts.append(attempt)
        return super().delay(attempt, retry_after)


def test_backoff_grows_exponentially_to_the_cap():
    backoff = Backoff(base=1.0, cap=30.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    jittered = Backoff(base=1.0, cap=30.0, jitter=1.0)
    assert all(4 <= jittered.delay(2) <= 5 for _ in range(50))


def test_waits_until_success_and_reports_progress(slow_server, slow_client):
    task_id = slow_client.create_task({"prompt": "x"}).task_id
    in_thread(lambda: slow_server.wait_until(lambda: slow_server.queries_of(task_id) >= 3)
              and slow_server.finish(task_id))
    updates = []
    state = asyncio.run(wait_for_task(slow_client, task_id, interval=0.3, timeout=10,
                                      on_update=lambda s, t: updates.append((s.raw_status, t, time.monotonic()))))
    assert state.status == SUCCEEDED and state.video.url.startswith(slow_server.files_base_url)
    assert slow_server.queries_of(task_id) in (3, 4)  # the 3rd answer may already say succeed
    statuses = [u[0] for u in updates]
    assert statuses[0] == "" and "processing" in statuses and statuses[-1] == "succeed"
    gaps = [b[2] - a[2] for a, b in zip(updates, updates[1:])]
    assert max(gaps) < 1.0  # at least once a second, also between polls
    assert updates[-1][1] >= updates[0][1]


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_every_shape_and_vocabulary_completes(variant):
    with FakeCometAPI(variant=variant, processing_seconds=3600) as server, \
            OmniClient(server.key, server.base_url) as client:
        task_id = client.create_task({"prompt": "x"}).task_id
        in_thread(lambda: server.wait_until(lambda: server.queries_of(task_id) >= 2) and server.finish(task_id))
        state = asyncio.run(wait_for_task(client, task_id, interval=0.05, timeout=10))
        assert state.status == SUCCEEDED and state.video.url


def test_failed_task_raises_with_the_servers_reason(omni_client):
    task_id = omni_client.create_task({"prompt": "a [moderation] case"}).task_id
    with pytest.raises(errors.TaskFailed) as info:
        asyncio.run(wait_for_task(omni_client, task_id, interval=0.05, timeout=5))
    assert info.value.task_id == task_id and "risk control" in info.value.reason
    assert task_id in str(info.value)


def test_success_without_a_video_is_unexpected(fake_server, omni_client):
    fake_server.succeed_without_video = True
    task_id = omni_client.create_task({"prompt": "x"}).task_id
    with pytest.raises(errors.UnexpectedResponse) as info:
        asyncio.run(wait_for_task(omni_client, task_id, interval=0.05, timeout=5))
    assert task_id in str(info.value)


def test_status_storm_is_survived_with_backoff(fake_server, omni_client):
    task_id = omni_client.create_task({"prompt": "x"}).task_id
    fake_server.status_storm([429, 503, 503, 429, 500])
    backoff = RecordingBackoff()
    state = asyncio.run(wait_for_task(omni_client, task_id, interval=0.05, timeout=10, backoff=backoff))
    assert state.status == SUCCEEDED
    assert backoff.attempts == [0, 1, 2, 3, 4]  # growing delays, reset only by a good answer
    assert fake_server.queries_of(task_id) == 6
    assert fake_server.created_count == 1


def test_status_timeouts_are_retried(fake_server, fast_backoff):
    client = OmniClient(fake_server.key, fake_server.base_url, timeout=(2, 0.1))
    task_id = client.create_task({"prompt": "x"}).task_id
    fake_server.status_delay = 0.4

    def recover():
        if fake_server.wait_until(lambda: fake_server.queries_of(task_id) >= 2):
            fake_server.status_delay = 0
    in_thread(recover)
    state = asyncio.run(wait_for_task(client, task_id, interval=0.05, timeout=10, backoff=fast_backoff))
    assert state.status == SUCCEEDED and fake_server.queries_of(task_id) >= 3


def test_non_retryable_error_stops_at_once(fake_server, omni_client, fast_backoff):
    with pytest.raises(errors.NotFound):
        asyncio.run(wait_for_task(omni_client, "4242", interval=0.05, timeout=5, backoff=fast_backoff))
    assert fake_server.queries_of("4242") == 1


def cancel_after_first_query(server, task_id):
    """Press Cancel once the server has seen a status query; returns (the flag, when it was set)."""
    stop = threading.Event()
    stopped_at = []

    def cancel():
        server.wait_until(lambda: server.queries_of(task_id) >= 1)
        stopped_at.append(time.monotonic())
        stop.set()
    in_thread(cancel)
    return stop, stopped_at


def test_cancel_between_polls_within_a_second(slow_server, slow_client):
    task_id = slow_client.create_task({"prompt": "x"}).task_id
    stop, stopped_at = cancel_after_first_query(slow_server, task_id)
    with pytest.raises(errors.WaitCancelled) as info:
        asyncio.run(wait_for_task(slow_client, task_id, interval=30, timeout=60, should_stop=stop.is_set))
    assert time.monotonic() - stopped_at[0] < 1.0
    assert info.value.task_id == task_id and task_id in str(info.value)
    assert slow_server.queries_of(task_id) == 1


async def _cancelled_during_query(server, client, task_id, stop):
    try:
        await wait_for_task(client, task_id, interval=30, timeout=60, should_stop=stop.is_set)
    except errors.WaitCancelled as exc:
        return exc, time.monotonic()
    finally:
        server.release_delays()  # let the abandoned query end now rather than in 30 s


def test_cancel_while_a_query_is_in_flight(slow_server, slow_client):
    task_id = slow_client.create_task({"prompt": "x"}).task_id
    slow_server.status_delay = 30  # the query hangs
    stop, stopped_at = cancel_after_first_query(slow_server, task_id)
    exc, raised_at = asyncio.run(_cancelled_during_query(slow_server, slow_client, task_id, stop))
    assert isinstance(exc, errors.WaitCancelled) and raised_at - stopped_at[0] < 1.0


def test_timeout_says_how_to_collect_later(slow_server, slow_client):
    task_id = slow_client.create_task({"prompt": "x"}).task_id
    with pytest.raises(errors.WaitTimeout) as info:
        asyncio.run(wait_for_task(slow_client, task_id, interval=0.1, timeout=0.5))
    assert info.value.task_id == task_id and "task_id" in str(info.value)
    assert slow_server.queries_of(task_id) >= 2


async def _timed_out_during_query(server, client, task_id):
    started = time.monotonic()
    try:
        await wait_for_task(client, task_id, interval=0.1, timeout=0.5)
    except errors.WaitTimeout:
        return time.monotonic() - started
    finally:
        server.release_delays()


def test_timeout_while_a_query_hangs(slow_server, slow_client):
    task_id = slow_client.create_task({"prompt": "x"}).task_id
    slow_server.status_delay = 30
    elapsed = asyncio.run(_timed_out_during_query(slow_server, slow_client, task_id))
    assert elapsed < 1.5  # the 0.5 s timeout wins over a request that would take 30 s


def test_two_waits_run_concurrently_in_one_loop(slow_server, slow_client):
    a = slow_client.create_task({"prompt": "a"}).task_id
    b = slow_client.create_task({"prompt": "b"}).task_id
    seen_both = []

    def finisher():
        # Neither task ends until both are being polled: a sequential wait would time out here.
        if slow_server.wait_until(lambda: slow_server.queries_of(a) >= 2 and slow_server.queries_of(b) >= 2):
            seen_both.append(True)
            slow_server.finish(b)
            slow_server.finish(a)
    in_thread(finisher)

    async def both():
        return await asyncio.gather(wait_for_task(slow_client, a, interval=0.05, timeout=4),
                                    wait_for_task(slow_client, b, interval=0.05, timeout=4))
    first, second = asyncio.run(both())
    assert seen_both == [True]
    assert (first.task_id, second.task_id) == (a, b)
    assert first.status == second.status == SUCCEEDED


def test_endless_storm_times_out_and_keeps_the_cause(fake_server, omni_client, fast_backoff):
    task_id = omni_client.create_task({"prompt": "x"}).task_id
    fake_server.status_storm([503] * 10000)
    with pytest.raises(errors.WaitTimeout) as info:
        asyncio.run(wait_for_task(omni_client, task_id, interval=0.05, timeout=0.4, backoff=fast_backoff))
    assert isinstance(info.value.__cause__, errors.ServerError)
    assert fake_server.queries_of(task_id) >= 3  # kept trying until the timeout
