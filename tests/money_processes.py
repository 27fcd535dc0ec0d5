"""What separate processes do in tests/test_money_guards.py: each is a ComfyUI of its own on one
user folder (spawned with multiprocessing, so each has its own interpreter, locks and memory).

`together` starts them (tests/test_studio.py's machines too). Every other function here runs in
the child: it loads the pack as ComfyUI would, waits at the test's barrier so the processes race
for real, and reports what it got on its queue.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter each: nothing shared but the disk


def together(target, argument_lists, timeout=120, errors_allowed=False):
    """Run target(*args, barrier, queue) in one process per argument list; what each reported, in their order."""
    barrier, results = SPAWN.Barrier(len(argument_lists)), SPAWN.Queue()
    processes = [SPAWN.Process(target=target, args=(*args, barrier, results)) for args in argument_lists]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=timeout) for _ in processes]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    if not errors_allowed:
        for report in reports:
            assert "error" not in report, report.get("trace", report)
    order = {process.pid: n for n, process in enumerate(processes)}
    return sorted(reports, key=lambda report: order[report["pid"]])  # as the argument lists, not as they ended


def _pack(env: dict):
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from scripts.load_pack import load_pack

    return load_pack()


def chain(env: dict, prompt: str, seed: int, variations: int, barrier, results) -> None:
    """Prompt → Submit (variations) → Poll, as ComfyUI runs them (tests/comfy_exec.py); reports
    {"ids", "paths"} or {"error"}."""
    try:
        nodes = _pack(env).NODE_CLASS_MAPPINGS
        from tests.comfy_exec import run

        request = run(nodes["CometOmniPrompt"], prompt=[prompt], mode=["pro"], aspect_ratio=["16:9"], duration=[5],
                      model=["kling-video-o1"])[0]
        barrier.wait()
        tasks, ids = run(nodes["CometOmniSubmit"], request=request, seed=[seed], variations=[variations],
                         unique_id=["4"], timeout_minutes=[2])
        outputs = run(nodes["CometOmniPoll"], task=tasks, unique_id=["5"])
        results.put({"pid": os.getpid(), "ids": ids, "paths": [v.get_stream_source() for v in outputs[2]]})
    except BaseException as exc:  # reported, not lost in the child
        results.put({"pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def budget_rounds(env: dict, base_url: str, key: str, folders: list, seeds: list, limit: float, barrier,
                  results) -> None:
    """For each folder (a fresh journal each round): wait for the other process, then submit a batch of
    one 5 s pro O1 task per seed (moved by 1000 each round: new intents) against `limit`; reports the
    list of what each round came to."""
    try:
        _pack(env)
        from kling_omni.client import OmniClient
        from kling_omni.errors import SpendLimitReached
        from kling_omni.journal import Journal
        from kling_omni.request import OmniRequest
        from kling_omni.settings import PackSettings
        from kling_omni.submission import Intent, submit_all

        request = OmniRequest(prompt="a fox runs through snow", mode="pro", duration=5)
        settings = PackSettings(daily_limit_usd=limit)
        outcomes = []
        for number, folder in enumerate(folders):
            barrier.wait()
            try:
                submit_all([Intent(request, seed + 1000 * number) for seed in seeds],
                           Journal(Path(folder) / "journal.sqlite3"),
                           lambda: OmniClient(key, base_url), settings=settings, interval=0.05)
                outcomes.append("passed")
            except SpendLimitReached:
                outcomes.append("refused")
        results.put({"pid": os.getpid(), "outcomes": outcomes})
    except BaseException as exc:
        results.put({"pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def reserve_and_hold(env: dict, journal_path: str, base_url: str, seeds: list, held) -> None:
    """Journal these intents as waiting under a run of this process, say so, and hold them until the
    test kills this process (a minute at most)."""
    _pack(env)
    from kling_omni.request import OmniRequest
    from kling_omni.journal import Journal
    from kling_omni.owners import owners_of
    from kling_omni.settings import PackSettings
    from kling_omni.submission import Intent, _Run, _SlotWait

    class Offline:  # what a run needs of a client to reserve: nothing is sent
        base_url, key_id = "", "k"

    Offline.base_url = base_url
    journal = Journal(Path(journal_path))
    request = OmniRequest(prompt="a fox runs through snow", mode="pro", duration=5)
    run = _Run(journal, Offline(), _SlotWait(60, None, None), PackSettings(), 0.05, owners_of(journal.path),
               node="CometOmniSubmit", node_id="9")
    run.reserve([Intent(request, seed) for seed in seeds])
    held.set()
    threading.Event().wait(60)  # idle, as a process stuck elsewhere would be
