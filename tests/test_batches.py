"""Variations, prompt lists and the daily spend guard, through the nodes as ComfyUI runs them
(tests/comfy_exec.py: list inputs, one Poll call per task, concurrently) against the fake
server over real HTTP, at the pace its account allows.
"""

import asyncio
import threading
import time

import pytest

from kling_omni import submission
from kling_omni.errors import JournalError, QuotaError, SlotWaitCancelled, SpendLimitReached
from kling_omni.settings import PackSettings, save_settings
from kling_omni.waiting import Backoff

from cometapi_kling_omni import NODE_CLASS_MAPPINGS as NODES
from cometapi_kling_omni.nodes import bridge, runtime
from tests.comfy_exec import execute, run

PROMPT = "A fox runs through snow"


@pytest.fixture
def env(env, tmp_path, monkeypatch):
    monkeypatch.setattr(submission, "SLOT_BACKOFF", Backoff(base=0.02, cap=0.05, jitter=0.01))
    return tmp_path / "home"


def requests_for(*prompts, mode="pro"):
    return run(NODES["CometOmniPrompt"], prompt=list(prompts), mode=[mode], aspect_ratio=["16:9"], duration=[5])[0]


def submit(requests, seed=0, variations=1, **widgets):
    tasks, ids = run(NODES["CometOmniSubmit"], request=requests, seed=[seed], variations=[variations],
                     unique_id=["4"], **{k: [v] for k, v in widgets.items()})
    return tasks, ids


def posts(server):
    return [r for r in server.requests if r.method == "POST"]


def test_variations_make_one_task_each_once(env, fake_server):
    tasks, ids = submit(requests_for(PROMPT), seed=7, variations=4)
    assert len(set(ids)) == 4 and fake_server.created_count == 4
    assert [t.task_id for t in tasks] == ids
    fake_server.clear_records()
    assert submit(requests_for(PROMPT), seed=7, variations=4)[1] == ids  # re-queued: nothing sent
    assert posts(fake_server) == []
    more = submit(requests_for(PROMPT), seed=7, variations=6)[1]
    assert more[:4] == ids and len(posts(fake_server)) == 2 and fake_server.created_count == 6
    # seed 7..12: the same as one Submit per seed would make
    assert submit(requests_for(PROMPT), seed=9, variations=1)[1] == [ids[2]]


def test_each_variation_is_polled_and_decoded(env, fake_server):
    tasks, _ = submit(requests_for(PROMPT), variations=3)
    frames, audio, video, fps, task_ids, urls = run(NODES["CometOmniPoll"], task=tasks, unique_id=["5"])
    assert task_ids == [t.task_id for t in tasks]
    assert len(frames) == 3 and all(f.dim() == 4 and f.shape[0] >= 1 for f in frames)
    assert len({v.get_stream_source() for v in video}) == 3 and len(audio) == 3 and len(fps) == 3


def test_a_prompt_list_is_one_request_per_item(env, fake_server):
    requests = requests_for("a fox in snow", "a cat on a roof")
    assert [r.prompt for r in requests] == ["a fox in snow", "a cat on a roof"]
    tasks, ids = submit(requests, variations=2)
    sent = [r.body["prompt"] for r in posts(fake_server)]
    assert sent == ["a fox in snow", "a fox in snow", "a cat on a roof", "a cat on a roof"] and len(set(ids)) == 4


def test_the_daily_limit_refuses_a_whole_batch_before_anything_is_sent(env, fake_server):
    save_settings(env, {"daily_limit_usd": 2.0})
    submit(requests_for(PROMPT), seed=0, variations=2)  # 2 x 5 s pro ≈ $1.12 of $2.00
    fake_server.clear_records()
    with pytest.raises(SpendLimitReached) as refused:
        submit(requests_for(PROMPT), seed=100, variations=2)  # ≈ $1.12 more: over
    text = str(refused.value)
    assert "CometOmniSubmit #4" in text and "≈ $1.12" in text and "$2.00" in text and "2 tasks" in text
    assert "Settings › CometAPI › Spending" in text and fake_server.requests == []
    assert all(job.state != "waiting" for job in runtime.journal().jobs())  # nothing reserved
    # what is journalled costs nothing again, even past the limit
    assert len(submit(requests_for(PROMPT), seed=0, variations=2)[1]) == 2 and fake_server.requests == []
    save_settings(env, {"daily_limit_usd": 0})  # 0 = off
    assert len(submit(requests_for(PROMPT), seed=100, variations=2)[1]) == 2


def test_two_submits_at_once_cannot_both_spend_the_last_of_the_budget(env, fake_server):
    save_settings(env, {"daily_limit_usd": 0.6})  # room for one 5 s pro task
    fake_server.create_delay = 0.3  # both are in the guard's window at the same time
    outcomes = []

    def one(seed):
        try:
            outcomes.append(submit(requests_for(PROMPT), seed=seed)[1])
        except SpendLimitReached as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake_server.created_count == 1 and sum(isinstance(o, SpendLimitReached) for o in outcomes) == 1


def test_a_batch_runs_at_the_accounts_pace(env, fake_server, texts):
    fake_server.max_in_flight = 2
    fake_server.processing_seconds = 0.4  # each task holds its slot for 0.4 s of real time
    tasks, ids = submit(requests_for(PROMPT), variations=5)
    assert len(set(ids)) == 5 and fake_server.created_count == 5
    # one 429 taught the pack the limit; after that it waited for slots instead of asking again
    assert len(fake_server.refused_creates) == 1
    waiting = [text for node, text in texts if node == "4" and text.startswith("waiting for a free slot (2 running")]
    assert waiting, texts
    starts = sorted(task.created_mono for task in fake_server.tasks.values())
    assert starts[2] - starts[0] >= 0.35 and starts[4] - starts[2] >= 0.35  # ceil(5/2) rounds
    assert [job.state for job in runtime.journal().jobs()].count("waiting") == 0


def test_a_set_limit_is_kept_without_asking_the_account(env, fake_server):
    save_settings(env, {"max_in_flight": 1})
    fake_server.processing_seconds = 0.2
    submit(requests_for(PROMPT), variations=3)
    assert fake_server.created_count == 3 and fake_server.refused_creates == []
    starts = sorted(task.created_mono for task in fake_server.tasks.values())
    assert starts[1] - starts[0] >= 0.15 and starts[2] - starts[1] >= 0.15


def test_a_learned_limit_is_tried_again_after_a_while(env, fake_server, monkeypatch):
    fake_server.max_in_flight = 1
    fake_server.processing_seconds = 3600
    submit(requests_for(PROMPT), seed=0)
    monkeypatch.setattr(submission.Pace, "LEARNED_FOR", 0.2)
    submission.PACE.refused(runtime.make_client().key_id, 1, "429")  # as if it had been refused before
    fake_server.max_in_flight = 2  # the plan grew
    started = time.monotonic()
    submit(requests_for(PROMPT), seed=1)
    assert fake_server.created_count == 2 and time.monotonic() - started < 2


def cancel_batch_when(fake_server, stop, requests, variations, moment):
    """Run Submit over `variations`, press Cancel once `moment()` holds: (seconds it took to end, its error)."""
    async def go():
        job = asyncio.ensure_future(execute(NODES["CometOmniSubmit"], {
            "request": requests, "seed": [0], "variations": [variations], "unique_id": ["4"]}))
        assert await asyncio.to_thread(fake_server.wait_until, moment)
        stop.set()
        started = time.monotonic()
        with pytest.raises(Exception) as caught:
            await job
        return time.monotonic() - started, caught.value

    return asyncio.run(go())


def test_cancel_in_the_middle_of_a_batch_says_what_was_made(env, fake_server, monkeypatch):
    fake_server.max_in_flight = 2
    fake_server.processing_seconds = 3600
    stop = threading.Event()
    monkeypatch.setattr(bridge, "interrupted", stop.is_set)
    requests = requests_for(PROMPT)
    elapsed, error = cancel_batch_when(fake_server, stop, requests, 4, lambda: len(fake_server.refused_creates) >= 1)
    assert elapsed < 1.0
    cause = error if isinstance(error, SlotWaitCancelled) else error.__cause__
    assert isinstance(cause, SlotWaitCancelled)
    made = list(fake_server.tasks)
    assert len(made) == 2 and all(task_id in str(error) for task_id in made)
    assert "2 of 4 tasks were created" in str(error) and "The other 2 were not created" in str(error)
    states = [job.state for job in runtime.journal().jobs()]
    assert sorted(states) == ["queued", "queued", "rejected", "rejected"]  # the reserved two are given up
    fake_server.max_in_flight = None
    stop.clear()
    submission.PACE.forget()
    _, ids = submit(requests, variations=4)  # queue again: the 2 are reused, 2 are made
    assert ids[:2] == made and fake_server.created_count == 4


def test_the_same_prompt_twice_in_a_list_is_one_task(env, fake_server):
    # Two identical items with the same seed are one intent: one task, handed out twice. (It was
    # journalled twice under one external id: a "journal cannot be written" error; a host that
    # drops external ids would have been paid twice, and the journal would have lost one task.)
    fake_server.drops_external_id = True
    tasks, ids = submit(requests_for("a fox in snow", "a cat on a roof", "a fox in snow"), variations=2)
    assert ids[0] == ids[4] and ids[1] == ids[5] and len(set(ids)) == 4
    assert fake_server.created_count == 4 and len(posts(fake_server)) == 4
    frames, _, _, _, polled, _ = run(NODES["CometOmniPoll"], task=tasks, unique_id=["5"])  # one Poll per item
    assert polled == ids and len(frames) == 6 and len(fake_server.file_requests) == 4  # each video fetched once


def crashed_while_sending(seed, key_id):
    """The journal row a crash leaves behind while a creation request was out: 'sending', no task id."""
    request = requests_for(PROMPT)[0]
    fingerprint = submission.intent_fingerprint(request, seed)
    runtime.journal().begin(fingerprint, 1, submission.external_id(fingerprint, 1), prompt=request.summary(),
                            base_url="", node_id="4", mode="pro", seconds=5, key_id=key_id)
    return request


def test_a_creation_a_crash_left_unanswered_holds_no_slot(env, fake_server):
    save_settings(env, {"max_in_flight": 1})
    submission.PACE.forget()
    crashed_while_sending(seed=50, key_id=runtime.make_client().key_id)
    started = time.monotonic()
    _, ids = submit(requests_for(PROMPT), seed=1, timeout_minutes=1)  # another intent: a slot is free
    assert fake_server.created_count == 1 and time.monotonic() - started < 5


def test_an_unanswered_creation_proven_absent_is_resent_under_a_set_limit(env, fake_server):
    save_settings(env, {"max_in_flight": 1})
    submit(requests_for(PROMPT), seed=0)  # the host showed it passes external ids on (and frees its slot)
    fake_server.finish(next(iter(fake_server.tasks)))
    request = crashed_while_sending(seed=51, key_id=runtime.make_client().key_id)
    started = time.monotonic()
    # Proven absent, so resent: its own unanswered row must not count as the one slot taken.
    _, ids = submit([request], seed=51, timeout_minutes=1)
    assert fake_server.created_count == 2 and time.monotonic() - started < 5
    assert runtime.journal().latest(submission.intent_fingerprint(request, 51)).task_id == ids[0]


def test_max_side_and_max_frames_apply_to_each_variation(env, fake_server):
    fake_server.video_size, fake_server.video_seconds = (160, 120), 1.0  # 12 frames each
    tasks, _ = submit(requests_for(PROMPT), variations=3)
    frames = run(NODES["CometOmniPoll"], task=tasks, max_frames=[5], max_side=[64], unique_id=["5"])[0]
    assert [tuple(f.shape) for f in frames] == [(5, 48, 64, 3)] * 3


def test_decodes_take_turns_downloads_do_not(env, fake_server, monkeypatch):
    from cometapi_kling_omni.nodes import poll
    from kling_omni import waiting
    from kling_omni.turns import Turns

    monkeypatch.setattr(poll, "DECODES", Turns(1))
    fake_server.video_seconds = 2.0
    guard = threading.Lock()
    at_once = {"decode": [0, 0], "download": [0, 0]}  # [now, most]

    def counted(kind, real):  # the real function, counting how many run at the same time
        def wrapper(*args, **kwargs):
            with guard:
                at_once[kind][0] += 1
                at_once[kind][1] = max(at_once[kind])
            try:
                return real(*args, **kwargs)
            finally:
                with guard:
                    at_once[kind][0] -= 1
        return wrapper

    monkeypatch.setattr(poll, "decode_video", counted("decode", poll.decode_video))
    monkeypatch.setattr(waiting, "download_file", counted("download", waiting.download_file))
    fake_server.file_stall = 0.3  # every download stalls halfway, so that they overlap if they run together
    tasks, _ = submit(requests_for(PROMPT), variations=4)
    frames = run(NODES["CometOmniPoll"], task=tasks, unique_id=["5"])[0]
    assert len(frames) == 4
    assert at_once["decode"][1] == 1 and at_once["download"][1] > 1


def test_cancel_ends_polls_waiting_for_their_turn_to_decode(env, fake_server, monkeypatch, texts):
    from cometapi_kling_omni.nodes import poll
    from kling_omni.turns import Turns

    turns = Turns(1)
    monkeypatch.setattr(poll, "DECODES", turns)
    stop = threading.Event()
    monkeypatch.setattr(bridge, "interrupted", stop.is_set)
    tasks, _ = submit(requests_for(PROMPT), variations=3)
    assert turns.try_take()  # someone else decodes for as long as the test likes

    async def go():
        job = asyncio.ensure_future(execute(NODES["CometOmniPoll"], {"task": tasks, "unique_id": ["5"]}))
        await asyncio.to_thread(fake_server.wait_until, lambda: len(fake_server.file_requests) >= 3)
        deadline = time.monotonic() + 10
        while sum("waiting for its turn to decode" in text for _, text in texts) < 3:
            assert time.monotonic() < deadline, texts
            await asyncio.sleep(0.02)
        stop.set()
        started = time.monotonic()
        with pytest.raises(Exception) as caught:
            await job  # ends when every one of its Polls has ended
        return time.monotonic() - started, caught.value

    elapsed, error = asyncio.run(go())
    turns.give()
    assert elapsed < 1.0
    assert "is finished and paid" in str(error) and any(t.task_id in str(error) for t in tasks)


def test_a_slot_freed_by_another_chain_is_taken_within_a_second(env, fake_server, monkeypatch, texts):
    save_settings(env, {"max_in_flight": 1})
    fake_server.processing_seconds = 3600
    first_tasks, (first,) = submit(requests_for(PROMPT), seed=0)
    monkeypatch.setenv("COMETAPI_OMNI_POLL_SECONDS", "30")  # Submit's own status queries are far apart
    done = {}

    def second_batch():
        done["ids"] = submit(requests_for(PROMPT), seed=1)[1]
        done["at"] = time.monotonic()

    worker = threading.Thread(target=second_batch)
    worker.start()
    deadline = time.monotonic() + 10
    while not any("waiting for a free slot" in text for _, text in texts):
        assert time.monotonic() < deadline, texts
        time.sleep(0.02)
    fake_server.finish(first)
    run(NODES["CometOmniPoll"], task=first_tasks, unique_id=["5"])  # another chain's Poll sees it end
    freed = time.monotonic()
    worker.join(10)
    assert "at" in done, "the second batch is still waiting"
    assert done["at"] - freed < 1.5 and fake_server.created_count == 2


def test_requests_too_fast_teaches_no_limit(env, fake_server):
    # 429 code 1302 says "slow down", not "too many tasks at once": waiting for one of the two running
    # tasks to end (an hour) would be wrong. The creation is tried again after the backoff.
    fake_server.processing_seconds = 3600
    request = requests_for(PROMPT)[0]
    submission.submit_all([submission.Intent(request, seed) for seed in range(2)], runtime.journal(),
                          runtime.make_client, timeout=3, interval=0.02)
    fake_server.reject_next_create(429, 1302)
    submission.submit_all([submission.Intent(request, seed) for seed in range(4)], runtime.journal(),
                          runtime.make_client, timeout=3, interval=0.02)
    assert fake_server.created_count == 4 and len(fake_server.refused_creates) == 1


def test_a_batch_holding_an_unanswered_creation_is_not_held_up_by_it(env, fake_server):
    save_settings(env, {"max_in_flight": 1})
    fake_server.processing_seconds = 0.3
    submit(requests_for(PROMPT), seed=0)  # the host showed it passes external ids on
    request = crashed_while_sending(seed=61, key_id=runtime.make_client().key_id)
    # Seed 60 is created first, while this batch holds seed 61's lock: 61's row must not count as running.
    _, ids = submit([request], seed=60, variations=2, timeout_minutes=1)
    assert fake_server.created_count == 3 and len(set(ids)) == 2


def test_any_failure_in_the_middle_of_a_batch_says_what_was_made(env, fake_server):
    submit(requests_for(PROMPT), seed=0, variations=2)  # made before: reused, part of what the batch has
    fake_server.clear_records()
    original = fake_server._create
    answers = iter([None, (429, {"code": 1102, "message": "resource pack exhausted"})])

    def third_refused(rec):  # the account runs dry after one more task
        answer = next(answers, None)
        return original(rec) if answer is None else answer

    fake_server._create = third_refused
    with pytest.raises(QuotaError) as refused:
        submit(requests_for(PROMPT), seed=0, variations=4)
    made = list(fake_server.tasks)
    assert len(made) == 3
    text = str(refused.value)
    assert "top up" in text and "3 of 4 tasks of the batch were created" in text
    assert all(task_id in text for task_id in made)


def free_turns(turns) -> int:
    taken = 0
    while turns.try_take():
        taken += 1
    for _ in range(taken):
        turns.give()
    return taken


def test_a_poll_cancelled_before_its_decode_started_gives_its_turn_back():
    """asyncio.run cancels what is left of a prompt: a decode still queued behind another node's
    thread never runs, and its turn must not be lost with it."""
    from concurrent.futures import ThreadPoolExecutor

    from cometapi_kling_omni.nodes import poll
    from kling_omni.video import FrameSelection

    class Quiet:
        def say(self, *args, **kwargs):
            pass

        def decoding(self, *args):
            pass

    before = free_turns(poll.DECODES)

    async def go():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(1))
        busy = loop.run_in_executor(None, time.sleep, 0.5)  # the only worker is taken
        decoding = asyncio.create_task(poll._decode_in_turn("/nowhere.mp4", FrameSelection(), Quiet(),
                                                            want_frames=True, want_audio=False))
        await asyncio.sleep(0.1)
        decoding.cancel()
        await asyncio.gather(decoding, busy, return_exceptions=True)

    asyncio.run(go())
    assert free_turns(poll.DECODES) == before


def test_cancel_stops_a_batch_between_two_creations(env, fake_server, monkeypatch):
    """No limit known, so no slot wait: Cancel is still noticed before the next creation."""
    fake_server.processing_seconds = 3600
    fake_server.create_delay = 0.5
    stop = threading.Event()
    monkeypatch.setattr(bridge, "interrupted", stop.is_set)
    elapsed, error = cancel_batch_when(fake_server, stop, requests_for(PROMPT), 8,
                                       lambda: fake_server.created_count >= 1)
    made = fake_server.created_count
    assert made <= 2 and elapsed < 1.0  # at most the one in flight when Cancel came
    assert f"{made} of 8 tasks were created" in str(error)
    assert str(error).startswith("Cancelled before the next creation of the batch.") and "free slot" not in str(error)
    assert [job.state for job in runtime.journal().jobs()].count("rejected") == 8 - made


def test_cancel_during_a_slot_wait_does_not_wait_for_slow_status_answers(env, fake_server):
    fake_server.processing_seconds = 3600
    limit_one = PackSettings(max_in_flight=1)
    request = requests_for(PROMPT)[0]
    submission.submit(request, 1, runtime.journal(), runtime.make_client, settings=limit_one)
    fake_server.status_delay = 20  # each status query of the running task hangs
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(SlotWaitCancelled):
            submission.submit(request, 2, runtime.journal(), runtime.make_client, settings=limit_one,
                              interval=0.3, should_stop=stop.is_set)
    finally:
        fake_server.release_delays()
    assert time.monotonic() - started < 2.0


def test_a_journal_deleted_while_a_batch_waits_loses_no_paid_task(env, fake_server):
    fake_server.max_in_flight = 1
    fake_server.processing_seconds = 1.0
    journal = runtime.journal()

    def delete_after_the_first():
        fake_server.wait_until(lambda: fake_server.created_count == 1, 10)
        journal.path.unlink()

    deleter = threading.Thread(target=delete_after_the_first)
    deleter.start()
    intents = [submission.Intent(requests_for(PROMPT)[0], seed) for seed in range(3)]
    with pytest.raises(JournalError) as stopped:
        submission.submit_all(intents, journal, runtime.make_client, settings=PackSettings(max_in_flight=1),
                              interval=0.1)
    deleter.join()
    made = set(fake_server.tasks)
    assert made and made <= {job.task_id for job in journal.jobs()}  # what was paid is known again
    assert all(task_id in str(stopped.value) for task_id in made)
