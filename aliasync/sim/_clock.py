"""Virtual time: the cloud's latencies are modelled in virtual seconds and replayed faster."""

from __future__ import annotations

import time

import anyio


class Clock:
    """Maps real monotonic time to virtual cloud seconds at ``time_scale`` (virtual s per real s).

    ``time_scale=1000`` makes a three-minute ImportImage take 0.18 real seconds.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = float(time_scale)
        self._origin = time.monotonic()

    def now(self) -> float:
        """Virtual seconds since the emulator started."""
        return (time.monotonic() - self._origin) * self.time_scale

    async def sleep(self, virtual_seconds: float) -> None:
        """Sleep for a virtual duration."""
        if virtual_seconds > 0:
            await anyio.sleep(virtual_seconds / self.time_scale)

    def to_real(self, virtual_seconds: float) -> float:
        return virtual_seconds / self.time_scale
