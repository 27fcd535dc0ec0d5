"""What separate processes do in tests/test_studio.py: each is a ComfyUI of its own, a machine of a studio,
with its own data and output folders, all on one PostgreSQL database (COMETAPI_OMNI_DATABASE_URL) and one
fake CometAPI account. Spawned with multiprocessing: nothing is shared but the database and the fake.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

from tests.money_processes import _pack


def collector(env: dict, seconds: float, results) -> None:
    """Run the background collector of this machine for `seconds` (or until the test kills this process)."""
    try:
        _pack(env)
        from kling_omni import store
        from kling_omni.client import OmniClient
        from kling_omni.collector import Collector

        home, out = Path(env["COMETAPI_OMNI_HOME"]), Path(env["COMETAPI_OMNI_OUTPUT"])
        key, base_url = env["COMETAPI_KEY"], env["COMETAPI_BASE_URL"]
        running = Collector(journal=lambda: store.open_journal(home), client_factory=lambda: OmniClient(key, base_url),
                            out_dir=lambda: out, settings=lambda: store.load_settings(home), key=lambda: key,
                            base_url=lambda: base_url, interval=0.2)
        threading.Timer(seconds, running.stop).start()
        running.run()
        results.put({"pid": os.getpid(), "done": True})
    except BaseException as exc:
        results.put({"pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def budget_rounds(env: dict, rounds: int, seeds: list, batch_usd: float, barrier, results) -> None:
    """Each round, at the same moment as the other machine: a batch of one 5 s pro O1 task per seed (new intents
    each round) against a daily limit that fits the spend so far and one more such batch; reports what each
    round came to."""
    try:
        _pack(env)
        from kling_omni import store
        from kling_omni.client import OmniClient
        from kling_omni.errors import SpendLimitReached
        from kling_omni.request import OmniRequest
        from kling_omni.settings import PackSettings
        from kling_omni.submission import Intent, submit_all

        journal = store.open_journal(Path(env["COMETAPI_OMNI_HOME"]))
        request = OmniRequest(prompt="a fox runs through snow", mode="pro", duration=5)
        outcomes = []
        for number in range(rounds):
            settings = PackSettings(daily_limit_usd=batch_usd * (number + 1) + batch_usd / 2)
            barrier.wait()
            try:
                submit_all([Intent(request, seed + 1000 * number) for seed in seeds], journal,
                           lambda: OmniClient(env["COMETAPI_KEY"], env["COMETAPI_BASE_URL"]), settings=settings,
                           interval=0.05)
                outcomes.append("passed")
            except SpendLimitReached:
                outcomes.append("refused")
        results.put({"pid": os.getpid(), "outcomes": outcomes})
    except BaseException as exc:
        results.put({"pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def submit_and_wait(env: dict, prompt: str, seeds: list, barrier, results) -> None:
    """Submit these intents as one batch, at the same moment as the others, and report the ids and how long it took."""
    try:
        _pack(env)
        from kling_omni import store
        from kling_omni.client import OmniClient
        from kling_omni.request import OmniRequest
        from kling_omni.settings import PackSettings
        from kling_omni.submission import Intent, submit_all

        journal = store.open_journal(Path(env["COMETAPI_OMNI_HOME"]))
        request = OmniRequest(prompt=prompt, mode="std", duration=5)
        journal.count()  # connected before the start, as a running ComfyUI is
        barrier.wait()
        started = time.monotonic()
        tasks = submit_all([Intent(request, seed) for seed in seeds], journal,
                           lambda: OmniClient(env["COMETAPI_KEY"], env["COMETAPI_BASE_URL"]),
                           settings=PackSettings(daily_limit_usd=0, max_in_flight=int(env.get("MAX_IN_FLIGHT", "0"))),
                           interval=0.05, timeout=300)
        results.put({"pid": os.getpid(), "ids": [t.task_id for t in tasks], "seconds": time.monotonic() - started})
    except BaseException as exc:
        results.put({"pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
