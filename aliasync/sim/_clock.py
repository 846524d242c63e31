"""Virtual time: the cloud's latencies are modelled in virtual seconds and replayed faster.

Everything in the emulator that changes with time reads :meth:`Clock.now` (an import's or a
copy's end, the copy queues, STS keys' expiry, throttling storms) or sleeps on
:meth:`Clock.sleep` (a function's cold start, an injected function timeout). A test can hold
the clock, so that a state lasts for as long as the test looks at it, and move it on by exactly
the virtual seconds it wants; see :class:`Clock`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio

from aliasync.sim._errors import SimError


class Clock:
    """Virtual cloud seconds, running ``time_scale`` times faster than real time, or held.

    ``time_scale=1000`` makes a three-minute ImportImage take 0.18 real seconds. That is fast,
    and it is also a race: whatever a test wants to see in the middle of a task must be seen
    within that time. Holding the clock takes the machine's speed out of it:

    * :meth:`pause` stops virtual time, now or once it reaches a given virtual instant
      (:meth:`resume` lets it run on from where it stood); ``with clock.frozen():`` holds it
      for a block. While it is held, nothing that depends on virtual time changes: an import
      stays ``Creating``, a copy keeps its place in the queue, a temporary key stays valid, a
      throttling storm goes on, and a task sleeping on the clock (a cold start, an injected
      function timeout) stays asleep.
    * :meth:`advance` moves virtual time on by exactly that many seconds, held or not, and
      wakes the sleepers whose time has come.
    * :attr:`sleepers` are the deadlines of the tasks asleep on the clock, and
      :meth:`wait_for_sleepers` waits (on an event, not by polling) until a task has got there,
      so a test knows when the emulator is holding, e.g., an invocation in its cold start.

    API calls are still answered while the clock is held: their latency (:meth:`delay`) is then
    spent in real time, ``latency / time_scale``, and takes no virtual time. ``pause(...,
    hold_calls=True)`` holds the calls too: each waits in its latency until :meth:`resume`, so
    a client stands still at the step where the cloud was stopped (the crash matrix kills it
    there). Things that run on real time are not held: a deployed function's handler and its
    timeout (a real process), and request signatures and presigned URLs, which carry the
    client's wall-clock time.

    ``source`` is where real time comes from: :func:`time.monotonic`, or the event loop's clock
    (``asyncio.get_running_loop().time``) for a test whose event loop runs on virtual time
    itself. Hold and move the clock from the emulator's event loop only.
    """

    def __init__(
        self, time_scale: float = 1.0, *, source: Callable[[], float] = time.monotonic
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = float(time_scale)
        self._source = source
        self._origin = source()  # the real time at which virtual time read _base
        self._base = 0.0
        self._held: float | None = None  # the virtual time it is held at
        self._stop_at: float | None = None  # a virtual instant to hold at once it is reached
        self._hold_calls = False
        self._deadlines: list[float] = []  # of the tasks asleep on this clock
        # Woken when time is held, moved or closed (the sleepers), and also when a sleep begins
        # or ends (wait_for_sleepers): a sleep beginning does not wake every other sleeper.
        self._on_time: set[anyio.Event] = set()
        self._on_sleepers: set[anyio.Event] = set()
        self._closed = False

    def now(self) -> float:
        """Virtual seconds since the emulator started."""
        if self._held is not None:
            return self._held
        running = self._base + (self._source() - self._origin) * self.time_scale
        if self._stop_at is not None and running >= self._stop_at:
            self._held, self._stop_at = self._stop_at, None
            self._time_changed()
            return self._held
        return running

    @property
    def paused(self) -> bool:
        """True while virtual time is held (a :meth:`pause` ``at`` an instant: once there)."""
        self.now()
        return self._held is not None

    def pause(self, at: float | None = None, *, hold_calls: bool = False) -> None:
        """Stop virtual time now, or once it reaches ``at`` (virtual seconds); the earliest
        stop asked for wins. With ``hold_calls``, API calls wait in their latency meanwhile."""
        self._hold_calls = self._hold_calls or hold_calls
        now = self.now()
        if self._held is not None:
            return
        if at is None or at <= now:
            self._held, self._stop_at = now, None
            self._time_changed()
        elif self._stop_at is None or at < self._stop_at:
            self._stop_at = at
            self._time_changed()  # sleepers due after ``at`` must wake there

    def resume(self) -> None:
        """Let virtual time run on from where it was held."""
        self._stop_at, self._hold_calls = None, False
        if self._held is not None:
            self._base, self._origin, self._held = self._held, self._source(), None
        self._time_changed()

    @contextmanager
    def frozen(self) -> Iterator[Clock]:
        """Hold virtual time for the block; it runs on afterwards unless it was held before."""
        was_paused = self.paused
        self.pause()
        try:
            yield self
        finally:
            if not was_paused:
                self.resume()

    def advance(self, virtual_seconds: float) -> None:
        """Move virtual time on by ``virtual_seconds``, held or running; wake due sleepers."""
        if virtual_seconds < 0:
            raise ValueError("virtual time only moves forward")
        if self._held is not None:
            self._held += virtual_seconds
        else:
            self._base += virtual_seconds
        self._time_changed()

    @property
    def sleepers(self) -> list[float]:
        """The virtual deadlines of the tasks asleep on this clock, soonest first.

        Only deadlines still ahead: a task whose time has come is waking up, not waiting.
        """
        now = self.now()
        return sorted(d for d in self._deadlines if d > now)

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Return once at least ``count`` tasks are asleep on this clock (see :attr:`sleepers`)."""
        while len(self.sleepers) < count:
            await _next(self._on_sleepers)

    def close(self) -> None:
        """The emulator is stopping: every sleep, now or later, ends in a 503 at once.

        Otherwise a request asleep on a held (or slow) clock would keep the server's shutdown
        waiting for it.
        """
        self._closed = True
        self._time_changed()

    async def sleep(self, virtual_seconds: float) -> None:
        """Sleep until the clock has moved ``virtual_seconds`` on (never, while it is held)."""
        if virtual_seconds <= 0:
            return
        deadline = self.now() + virtual_seconds
        self._deadlines.append(deadline)
        _wake(self._on_sleepers)
        try:
            while deadline - self.now() > 0:
                if self._closed:
                    raise SimError("ServiceUnavailable", "the emulator is shutting down", 503)
                if self._held is not None:
                    await _next(self._on_time)
                else:
                    # A stop set before the deadline: wake there, to find the clock held.
                    stop = self._stop_at
                    until = deadline if stop is None else min(deadline, stop)
                    wait = max(until - self.now(), 0.0) / self.time_scale
                    with anyio.move_on_after(wait) as slept:
                        await _next(self._on_time)
                    if slept.cancelled_caught and until == deadline:
                        break  # the whole time passed (now() may round a hair short of it)
        finally:
            self._deadlines.remove(deadline)
            _wake(self._on_sleepers)

    async def delay(self, virtual_seconds: float) -> None:
        """Take this long to answer a call: on the clock, or in real time while it is held.

        An API call's latency must not stop the call while a test holds the clock, or nothing
        could look at a held state; it then takes no virtual time at all.
        """
        if self._held is not None and not self._hold_calls:
            if virtual_seconds > 0:
                await anyio.sleep(virtual_seconds / self.time_scale)
        else:
            await self.sleep(virtual_seconds)

    def to_real(self, virtual_seconds: float) -> float:
        return virtual_seconds / self.time_scale

    def _time_changed(self) -> None:
        _wake(self._on_time)
        _wake(self._on_sleepers)


async def _next(waiters: set[anyio.Event]) -> None:
    """Wait until ``waiters`` are woken. An event per waiter, made in its own task: nothing
    here outlives one event loop."""
    event = anyio.Event()
    waiters.add(event)
    try:
        await event.wait()
    finally:
        waiters.discard(event)


def _wake(waiters: set[anyio.Event]) -> None:
    woken = list(waiters)
    waiters.clear()
    for event in woken:
        event.set()
