"""When to look again at an image the cloud is still creating (ImportImage, CopyImage).

Pure, without clock or I/O, so that it can be tested on its own: ``EcsApi.wait_available`` hands
each DescribeImages answer to :class:`PollSchedule` with the time it arrived and sleeps for what
comes back. Durations are cloud seconds, like the retry layer's.

Every poll costs an API call and counts against the account's rate limits, but a finished image
noticed late holds up whatever waits for it (a copy's source slot, the next copies). So the
schedule sleeps through most of the time the cloud says is left and then closes in; when there
is no estimate (a copy queued behind another shows Progress 0 and no RemainTime) or the estimate
keeps slipping, it backs off geometrically to a ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CEILING", "GROWTH", "MARGIN", "MIN_INTERVAL", "PollSchedule", "Sighting"]

# Never poll more often than this: it is also the pace at the very end of a wait, so it bounds
# the lag when the estimate is right.
MIN_INTERVAL = 5.0
# Sleep this fraction short of the estimate, so that an estimate up to 10% too long costs no
# lag; closing in from R seconds then takes about log10(R / MIN_INTERVAL) more polls.
MARGIN = 0.1
# Without a trustworthy estimate, intervals grow by GROWTH up to CEILING: an image that is
# stuck costs a poll every two minutes, and when it ends it is noticed at most that late.
GROWTH = 1.5
CEILING = 120.0


@dataclass(frozen=True)
class Sighting:
    """What one DescribeImages answer said about an image that is not yet Available."""

    at: float  # cloud seconds since the wait began, when the answer arrived
    progress: int = 0  # percent, as reported (truncated)
    remain: float | None = None  # RemainTime, when the answer carried a positive one


class PollSchedule:
    """The delays between the polls of one wait; feed it every sighting, in order."""

    def __init__(self) -> None:
        self._anchor: Sighting | None = None  # the first sighting with partial progress
        self._last: tuple[float, float | None] = (0.0, None)  # last sighting's time and due
        self._strikes = 0  # sightings in a row without an estimate, or with a slipped one

    def remaining(self, seen: Sighting) -> float | None:
        """Cloud seconds the image probably still needs, or None if nothing tells."""
        if seen.remain is not None and seen.remain > 0:
            return seen.remain
        anchor = self._anchor
        if anchor is None or seen.progress <= anchor.progress or seen.at <= anchor.at:
            return None
        # Only from sightings with progress: time spent queued before the work began would
        # make the rate look slow. Percentages are truncated, so assume the fastest rate they
        # allow: an estimate that errs short costs a poll, one that errs long costs lag.
        rate = (seen.progress + 1 - anchor.progress) / (seen.at - anchor.at)
        left = (100 - (seen.progress + 1)) / rate
        return left if left > 0 else None

    def next_delay(self, seen: Sighting) -> float:
        """How long to sleep after ``seen`` before polling again (at least MIN_INTERVAL)."""
        if self._anchor is None and 0 < seen.progress < 100:
            self._anchor = seen
        left = self.remaining(seen)
        due = None if left is None else seen.at + left
        then, before = self._last
        # An estimate that shrinks by less than a quarter of the time that passed does not
        # follow the work (stuck, or blind to a queue): trust it less each time. One that
        # shrinks more slowly than the clock, but does shrink, merely errs short: no strike.
        if due is None or (before is not None and due - before > 0.75 * (seen.at - then)):
            self._strikes += 1
        else:
            self._strikes = 0
        self._last = (seen.at, due)
        backoff = min(CEILING, MIN_INTERVAL * GROWTH ** max(0, self._strikes - 1))
        planned = 0.0 if left is None else left * (1 - MARGIN)
        return max(backoff, planned)
