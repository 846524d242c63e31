"""Virtual time: the cloud's latencies are modelled in virtual seconds and replayed faster."""

from __future__ import annotations

import time

import anyio


class Clock:
    """Maps real monotonic time to virtual cloud seconds at ``time_scale`` (virtual s per real s).

    ``time_scale=1000`` makes a three-minute ImportImage take 0.18 real seconds.

    The clock can be stopped (:meth:`pause`), now or when it reaches a given virtual instant,
    and started again (:meth:`resume`) where it stopped: while it stands, every task and copy
    keeps its status and every API call waits in its latency, so a test can hold the cloud at
    one step whatever the machine's speed.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = float(time_scale)
        self._origin = time.monotonic()
        self._stop: float | None = None  # the virtual instant the clock stands still at
        self._resumed: anyio.Event | None = None

    def _running(self) -> float:
        return (time.monotonic() - self._origin) * self.time_scale

    def now(self) -> float:
        """Virtual seconds since the emulator started."""
        running = self._running()
        return running if self._stop is None else min(running, self._stop)

    @property
    def paused(self) -> bool:
        """True while the clock stands still (it reached the instant :meth:`pause` set)."""
        return self._stop is not None and self._running() >= self._stop

    def pause(self, at: float | None = None) -> None:
        """Stop virtual time now, or once it reaches ``at`` (virtual seconds), until resumed."""
        now = self.now()
        stop = now if at is None else max(now, at)
        self._stop = stop if self._stop is None else min(self._stop, stop)
        if self._resumed is None:
            self._resumed = anyio.Event()

    def resume(self) -> None:
        """Let virtual time run again from where it stood."""
        if self._stop is None:
            return
        stood = self.now()
        self._origin = time.monotonic() - stood / self.time_scale
        self._stop = None
        resumed, self._resumed = self._resumed, None
        if resumed is not None:
            resumed.set()

    async def sleep(self, virtual_seconds: float) -> None:
        """Sleep for a virtual duration (longer if the clock is paused meanwhile)."""
        if virtual_seconds <= 0:
            return
        deadline = self.now() + virtual_seconds
        while (left := deadline - self.now()) > 0:
            if self._stop is not None and self.paused and self._resumed is not None:
                await self._resumed.wait()
            elif self._stop is not None and self._stop < deadline:
                await anyio.sleep((self._stop - self._running()) / self.time_scale)
            else:
                await anyio.sleep(left / self.time_scale)

    def to_real(self, virtual_seconds: float) -> float:
        return virtual_seconds / self.time_scale
