"""uvicorn's server, woken once a second instead of ten times, and at once when told to stop.

uvicorn's main loop sleeps 0.1 s between looks at its exit flag (and its Date header, refreshed
once a second): ten wake-ups a second of a service that idles most of its life. Here the loop
waits on an event that a signal or exit() sets, and looks unprompted once a second for what
uvicorn checks itself (the Date header, its request limit, a flag set elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

TICK_S = 1.0


class QuietServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._woken = asyncio.Event()
        # A tick counter of 0 each time: uvicorn refreshes its Date header on multiples of 10.
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), TICK_S)
            self._woken.clear()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._wake()

    def exit(self) -> None:
        """Begin the graceful shutdown now (from any thread)."""
        self.should_exit = True
        self._wake()

    def _wake(self) -> None:
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(woken.set)
