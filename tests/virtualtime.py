"""An asyncio event loop on virtual time: when it has nothing to do, its clock jumps to the next
timer instead of waiting for it.

For tests of code that sleeps on the event loop (aliasync's waits for an image) against an
emulator in the same loop whose clock reads the loop's (``Clock(1.0, source=loop.time)``): an
hour of waiting takes no real time, and what the test measures in cloud seconds is what the
code chose to do, not how fast the machine ran it. Sockets stay real: the loop waits for I/O
as any loop does, and jumps only once nothing has been ready for :data:`IDLE` of real time.

Use it only where every wait is on a timer or on the loop's own sockets: the clock does not
wait for a worker thread or a subprocess, whose work would seem to take no time while the
timers around it fire. Select it per module with::

    @pytest.fixture
    def anyio_backend() -> tuple[str, dict[str, object]]:
        return "asyncio", {"loop_factory": VirtualTimeLoop}
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

# Real seconds without any I/O before the clock jumps: loopback data is readable as soon as it
# is sent, so this only absorbs a scheduler's hiccup.
IDLE = 0.005


class _JumpingSelector(selectors.DefaultSelector):
    """The platform's selector, except that an idle wait for a timer moves the clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready: list[tuple[Any, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only I/O can wake us
            return list(super().select(None))
        ready = super().select(min(timeout, IDLE))
        if not ready:
            self.now += timeout  # to the next timer, which the loop now runs
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` only moves when the loop is idle."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now
