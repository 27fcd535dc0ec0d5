"""Turns: at most `size` holders at once in this process, for work that takes cores and memory.

Poll decodes in turns so that N variations never decode at once: memory stays at the output
tensors plus one decoder's buffers per turn, and the cores are not oversubscribed. The waiters
are coroutines of any event loop (ComfyUI runs each prompt in a loop of its own) and the turn
is handed back from the thread that did the work, so the count is a threading semaphore that a
waiter tries every TICK seconds while it watches should_stop().
"""

from __future__ import annotations

import asyncio
import threading
from typing import Callable, Optional

TICK = 0.05  # seconds between tries; a freed turn is taken within this


class Turns:
    def __init__(self, size: int):
        self.size = max(1, int(size))
        self._free = threading.Semaphore(self.size)

    def try_take(self) -> bool:
        return self._free.acquire(blocking=False)

    async def take(self, should_stop: Optional[Callable[[], bool]] = None,
                   on_wait: Optional[Callable[[], None]] = None) -> bool:
        """Wait for a turn (True), or return False as soon as should_stop() is true.

        on_wait() is called once, when the turn is not free at once."""
        told = False
        while not self.try_take():
            if should_stop is not None and should_stop():
                return False
            if on_wait is not None and not told:
                told = True
                on_wait()
            await asyncio.sleep(TICK)
        return True

    def give(self) -> None:
        self._free.release()
