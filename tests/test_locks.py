"""One collection of a task at a time, across threads, event loops and processes."""

import asyncio
import os
import subprocess
import sys
import textwrap
import time

from kling_omni import locks
from kling_omni.locks import TaskLock


def test_second_holder_is_refused_until_the_first_lets_go(tmp_path):
    first, second = TaskLock(tmp_path, "123"), TaskLock(tmp_path, "123")
    assert first.try_acquire()
    assert not second.try_acquire()
    assert TaskLock(tmp_path, "456").try_acquire()  # other tasks are not held up
    first.release()
    assert second.try_acquire()
    second.release(remove=True)
    assert not (tmp_path / "123.lock").exists()


def test_a_lock_held_by_another_process_is_respected(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import importlib.util, sys  # the module alone: it imports nothing of the pack
        spec = importlib.util.spec_from_file_location("locks", {locks.__file__!r})
        module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
        TaskLock = module.TaskLock
        lock = TaskLock({str(tmp_path)!r}, "789"); assert lock.try_acquire()
        print("held", flush=True); sys.stdin.readline(); lock.release()
        print("released", flush=True)
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        mine = TaskLock(tmp_path, "789")
        assert not mine.try_acquire()
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        assert mine.try_acquire()
        mine.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_waiter_on_a_removed_lock_file_does_not_share_the_lock(tmp_path):
    first = TaskLock(tmp_path, "42")
    assert first.try_acquire()
    stale = os.open(tmp_path / "42.lock", os.O_RDWR)  # a waiter that opened the file, not yet locked
    first.release(remove=True)
    assert locks._lock(stale) and not locks._same_file(stale, tmp_path / "42.lock")
    os.close(stale)
    newcomer = TaskLock(tmp_path, "42")
    assert newcomer.try_acquire()  # a fresh file: the stale one locks nothing that counts
    newcomer.release()


def test_acquire_waits_and_gives_up_on_stop(tmp_path):
    holder = TaskLock(tmp_path, "7")
    assert holder.try_acquire()

    async def wait_then_stop():
        waits = []
        stop_at = time.monotonic() + 0.3
        ok = await TaskLock(tmp_path, "7").acquire(should_stop=lambda: time.monotonic() > stop_at,
                                                   on_wait=lambda: waits.append(1))
        return ok, len(waits)

    ok, waits = asyncio.run(wait_then_stop())
    assert not ok and waits >= 2

    async def wait_for_release():
        waiter = TaskLock(tmp_path, "7")
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, holder.release)
        assert await waiter.acquire()
        waiter.release()

    asyncio.run(wait_for_release())
