"""The one retry policy for cloud calls, built on stamina.

Alibaba Cloud APIs fail transiently around 1% of the time, so every call is retried: on
:class:`~aliasync._exceptions.TransientCloudError` only (permanent errors and bugs go straight
through), with exponential backoff and jitter, a bounded number of attempts and a bounded total
time. A :class:`~aliasync._exceptions.ThrottledError` that carries the server's hint waits
exactly that long instead. A host that cannot be reached at all
(:class:`~aliasync._exceptions.UnreachableError`) is tried again only if a retry can help (not
for a name that does not exist), and at most ``unreachable_attempts`` times when the policy sets
it (:meth:`RetryPolicy.first_contact`): the first calls of a run say "no network" within
seconds, not after minutes.

Waits are cloud time: against an emulator replaying time ``time_scale`` times faster, every
backoff is divided by ``time_scale`` so tests stay fast while exercising the same schedule.
The total-time cap is wall-clock time and is *not* scaled: the calls themselves take real time.

Retrying a non-idempotent call may fail on the retry if the first attempt committed and only its
answer was lost; callers handle that where it matters (client tokens, "already exists" answers).

stamina's test mode (``stamina.set_testing``) and global switch (``stamina.set_active``) are
honoured as stamina documents them; aliasync never calls either itself.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import ParamSpec, TypeVar

import stamina

from aliasync._exceptions import ThrottledError, TransientCloudError, UnreachableError

__all__ = ["DEFAULT", "RetryPolicy", "call"]

log = logging.getLogger("aliasync.retry")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry; durations are cloud seconds (see module doc)."""

    attempts: int = 10
    timeout: float = 600.0  # wall-clock cap on all attempts together
    wait_initial: float = 0.5
    wait_max: float = 30.0
    wait_jitter: float = 1.0
    time_scale: float = 1.0
    # Attempts while the host cannot be reached at all (None: ``attempts``).
    unreachable_attempts: int | None = None

    def scaled(self, time_scale: float) -> RetryPolicy:
        """This policy for a cloud whose clock runs ``time_scale`` times faster."""
        return replace(self, time_scale=time_scale)

    def first_contact(self) -> RetryPolicy:
        """This policy for a run's first calls (who we are, which regions there are): a host
        that cannot be reached is tried three times at most, so that a missing network or a
        wrong endpoint is said within seconds."""
        return replace(self, unreachable_attempts=3)

    def _backoff_hook(self, exc: Exception) -> bool | float:
        """stamina's ``on``: whether to retry, or exactly how long to wait first."""
        if isinstance(exc, ThrottledError) and exc.retry_after is not None:
            # The server's hint, plus a little jitter so that parallel callers spread out.
            wait = exc.retry_after + random.uniform(0, self.wait_jitter)
            return min(wait, self.wait_max * 4) / self.time_scale
        return isinstance(exc, TransientCloudError)

    async def call(
        self,
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``await fn(*args, **kwargs)``, retried under this policy."""
        return await self.call_as("call", fn, *args, **kwargs)

    async def call_as(
        self,
        what: str,
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like :meth:`call`; ``what`` names the operation in debug logs."""
        scale = self.time_scale
        unreachable = 0

        def on(exc: Exception) -> bool | float:
            nonlocal unreachable
            if isinstance(exc, UnreachableError):
                unreachable += 1
                if not exc.can_recover:
                    return False
                limit = self.unreachable_attempts
                if limit is not None and unreachable >= limit:
                    return False
            return self._backoff_hook(exc)

        async for attempt in stamina.retry_context(
            on=on,
            attempts=self.attempts,
            timeout=self.timeout,
            wait_initial=self.wait_initial / scale,
            wait_max=self.wait_max / scale,
            wait_jitter=self.wait_jitter / scale,
        ):
            if attempt.num > 1:
                log.debug("retrying %s (attempt %d)", what, attempt.num)
            with attempt:
                return await fn(*args, **kwargs)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover


DEFAULT = RetryPolicy()


async def call(
    fn: Callable[..., Awaitable[T]],
    *args: object,
    what: str,
    policy: RetryPolicy = DEFAULT,
    **kwargs: object,
) -> T:
    """``await fn(*args, **kwargs)`` retried under ``policy``; ``what`` names it in logs."""
    return await policy.call_as(what, fn, *args, **kwargs)
