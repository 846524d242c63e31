"""What the emulator's own model says an import run can at best take (for benchmarks).

Given the region map, the latency model of a :class:`~aliasync.sim.FaultProfile` and, per
image, its size and how long an upload and a relay take on their own (those run at real
speed against the emulator, so they are measured, not modelled), this computes:

* :func:`lower_bound`: for every (region, image) the earliest completion over every feasible
  path, ignoring all contention — ``direct``: upload + import; ``relay``: the first upload +
  cold start + relay + import; ``copy``: the earliest image anywhere + copy. The run's bound
  is the latest of those;
* :func:`copy_queue_bound`: a still valid, tighter bound on the makespan that counts only one
  kind of contention, the per-source-region copy queue (``copy_concurrency`` slots): every copy
  needs a slot for a whole copy duration, and a region offers slots only once it holds an image;
* :func:`phase_barrier`: what a schedule in global phases takes on the same model — every
  phase waits for every region; copies start after all imports, sources round-robin, each
  source region's copies queued FIFO on its ``copy_concurrency`` slots.

Times are virtual seconds from the start of the run. API latencies are left out (a bound).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from aliasync.sim._faults import FaultProfile
from aliasync.sim._regions import Region, RegionMap

Strategy = Literal["direct", "relay", "copy"]
Pair = tuple[str, str]  # (region, image name)


def strategy(region: Region) -> Strategy:
    """How an image can get into ``region`` at all, from the region's capabilities."""
    if region.oss and region.new_buckets and not region.mainland:
        return "direct"
    if region.oss and region.new_buckets and region.fc:
        return "relay"
    return "copy"


@dataclass(frozen=True)
class ImageCost:
    """One image: its size, and its upload and relay durations measured alone (virtual s)."""

    name: str
    size: int  # bytes
    upload: float
    relay: float


@dataclass
class Schedule:
    """When each (region, image) is Available, and the strategy of each region."""

    finish: dict[Pair, float] = field(default_factory=dict)
    strategies: dict[str, Strategy] = field(default_factory=dict)

    @property
    def makespan(self) -> float:
        return max(self.finish.values(), default=0.0)

    def latest(self, kind: Strategy) -> float:
        """The latest completion among regions of one strategy (0 when there are none)."""
        return max(
            (t for (r, _), t in self.finish.items() if self.strategies[r] == kind), default=0.0
        )


def _import_seconds(profile: FaultProfile, size: int) -> float:
    return profile.import_base_seconds + profile.import_seconds_per_gib * size / 2**30


def _copy_seconds(profile: FaultProfile, size: int) -> float:
    return profile.copy_base_seconds + profile.copy_seconds_per_gib * size / 2**30


def lower_bound(regions: RegionMap, profile: FaultProfile, images: Sequence[ImageCost]) -> Schedule:
    """Earliest completion of every (region, image), each on its own fastest path."""
    kinds = {r.id: strategy(r) for r in regions}
    schedule = Schedule(strategies=kinds)
    has_direct = "direct" in kinds.values()
    for image in images:
        imported = image.upload + _import_seconds(profile, image.size)
        relayed = image.upload + profile.cold_start_seconds + image.relay
        relayed += _import_seconds(profile, image.size)
        for region, kind in kinds.items():
            if not has_direct:
                done = math.inf
            elif kind == "direct":
                done = imported
            elif kind == "relay":
                done = relayed
            else:
                # Relays start from an upload, so a direct import is always the first image.
                done = imported + _copy_seconds(profile, image.size)
            schedule.finish[(region, image.name)] = done
    return schedule


def copy_queue_bound(
    regions: RegionMap, profile: FaultProfile, images: Sequence[ImageCost]
) -> float:
    """A makespan bound that also respects the copy queues (slots per source region).

    A relaxation: any slot may copy any image, every copy takes the shortest copy duration,
    and a region offers its slots from its earliest completion of any image on (a copy
    destination: from the earliest possible end of a first copy into it). The bound is the
    earliest time by which the slots can have run every copy the map needs.
    """
    alone = lower_bound(regions, profile, images)
    kinds = alone.strategies
    copies = sum(1 for kind in kinds.values() if kind == "copy") * len(images)
    if copies == 0 or math.isinf(alone.makespan):
        return alone.makespan
    shortest = min(_copy_seconds(profile, i.size) for i in images)
    slots = max(1, profile.copy_concurrency)
    first = {r: min(alone.finish[(r, i.name)] for i in images) for r in kinds}
    earliest = min(first[r] for r in kinds if kinds[r] != "copy")
    offered = [
        first[r] if kinds[r] != "copy" else earliest + shortest for r in kinds
    ]  # when each region's slots can start a first copy

    def capacity(until: float) -> int:
        return sum(slots * max(0, math.floor((until - t) / shortest + 1e-9)) for t in offered)

    candidates = sorted({t + n * shortest for t in offered for n in range(1, copies + 1)})
    for until in candidates:
        if until >= alone.makespan and capacity(until) >= copies:
            return until
    return math.inf  # pragma: no cover - the last candidate always has room


def phase_barrier(
    regions: RegionMap, profile: FaultProfile, images: Sequence[ImageCost]
) -> Schedule:
    """Global phases: upload everywhere, import everywhere, relay everywhere (and import the
    relayed copies), then every copy, sources round-robin on FIFO copy queues."""
    kinds = {r.id: strategy(r) for r in regions}
    schedule = Schedule(strategies=kinds)
    direct = [r for r, k in kinds.items() if k == "direct"]
    relay = [r for r, k in kinds.items() if k == "relay"]
    copy = [r for r, k in kinds.items() if k == "copy"]
    if not direct:
        schedule.finish = {(r, i.name): math.inf for r in kinds for i in images}
        return schedule
    now = max(i.upload for i in images)  # phase 1: every upload
    for region in direct:  # phase 2: every import where the bytes are
        for image in images:
            schedule.finish[(region, image.name)] = now + _import_seconds(profile, image.size)
    now = max(schedule.finish.values())
    if relay:  # phase 3: every relay, then the relayed copies' imports
        now += profile.cold_start_seconds + max(i.relay for i in images)
        for region in relay:
            for image in images:
                schedule.finish[(region, image.name)] = now + _import_seconds(profile, image.size)
        now = max(schedule.finish.values())
    sources = direct + relay  # phase 4: every copy, submitted at once, round-robin sources
    queues: dict[str, list[float]] = {s: [now] * max(1, profile.copy_concurrency) for s in sources}
    turn = 0
    for region in copy:
        for image in images:
            slots = queues[sources[turn % len(sources)]]
            turn += 1
            start = heapq.heappop(slots)
            end = start + _copy_seconds(profile, image.size)
            heapq.heappush(slots, end)
            schedule.finish[(region, image.name)] = end
    return schedule
