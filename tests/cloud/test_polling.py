"""How EcsApi.wait_available polls: the pure schedule, then real waits against the emulator."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from itertools import pairwise

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aliasync.cloud._credentials import CredentialSource
from aliasync.cloud._ecs import EcsApi, ImageInfo, ImageTimeoutError, _remain_time
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._polling import CEILING, MIN_INTERVAL, PollSchedule, Sighting
from aliasync.sim import PROFILES, Clock, FaultProfile, Simulator
from tests.clients import aio_s3, inside_proxy
from tests.virtualtime import VirtualTimeLoop

POLLS = 10  # the criterion: at most this many polls per wait, however long the wait
LAG = 10.0  # cloud seconds from Available to the importer knowing it

# What the cloud reports at cloud time t about an image ready at ``ready``: a Sighting.
Report = Callable[[float], Sighting]


def drive(report: Report, ready: float, latency: float = 0.3) -> tuple[list[float], float]:
    """Run one wait against a modelled image: (the times of the polls, the lag at the end).

    The first poll is at 0; each answer arrives ``latency`` after its poll was sent.
    """
    schedule, polls, t = PollSchedule(), [], 0.0
    while True:
        polls.append(t)
        t += latency
        if t >= ready:
            return polls, t - ready
        t += schedule.next_delay(report(t))
        assert len(polls) < 1000, "the wait never ends"


def exact(ready: float, start: float = 0.0) -> Report:
    """ECS's own numbers: RemainTime rounded up, progress truncated, linear from ``start``."""

    def report(t: float) -> Sighting:
        progress = 0 if t <= start else int(100 * (t - start) / (ready - start))
        return Sighting(t, min(progress, 99), math.ceil(ready - t))

    return report


def progress_only(ready: float, start: float = 0.0) -> Report:
    """Progress but no RemainTime; nothing moves before ``start`` (a queued copy)."""

    def report(t: float) -> Sighting:
        return Sighting(t, exact(ready, start)(t).progress)

    return report


@pytest.mark.parametrize("seconds", [180.0, 900.0, 4 * 3600.0, 12 * 3600.0])
def test_an_accurate_remain_time_takes_few_polls_and_little_lag(seconds: float) -> None:
    """With accurate RemainTime, a wait of 3 min to 12 h takes ≤ 6 polls and ≤ MIN_INTERVAL lag."""
    polls, lag = drive(exact(seconds), seconds)
    assert len(polls) <= 6
    assert lag <= MIN_INTERVAL


@pytest.mark.parametrize("seconds", [180.0, 900.0])
def test_progress_alone_is_enough(seconds: float) -> None:
    """Without RemainTime, the rate of progress gives the estimate: ≤ 10 polls, ≤ 10 s late."""
    polls, lag = drive(progress_only(seconds), seconds)
    assert len(polls) <= POLLS
    assert lag <= LAG


def test_progress_alone_on_a_long_wait_costs_polls_not_lag() -> None:
    """4 h with Progress only: its first and last percent (144 s each) say nothing; ≤ 20 polls."""
    seconds = 4 * 3600.0
    polls, lag = drive(progress_only(seconds), seconds)
    assert len(polls) <= 2 * POLLS
    assert lag <= LAG


def test_time_spent_queued_does_not_slow_the_estimate() -> None:
    """The rate is taken from sightings with progress only, so a long queue is not averaged in."""
    schedule = PollSchedule()
    for t in (0.0, 300.0, 600.0, 900.0):  # queued: nothing moves
        schedule.next_delay(Sighting(t))
    schedule.next_delay(Sighting(1000.0, 10))  # began at 900; 10% per 100 s
    left = schedule.remaining(Sighting(1100.0, 20))
    # 800 s are left; counting the queue as work would make it 1100 * 80 / 20 = 4400.
    assert left is not None and 0.8 * 800 <= left <= 800


def test_a_queued_copy_reporting_nothing_is_polled_at_most_every_ceiling() -> None:
    """Queued 1 h with Progress 0 and no RemainTime: intervals grow to CEILING, never beyond."""
    queued, ready = 3600.0, 3600.0 + 900.0
    polls, lag = drive(progress_only(ready, start=queued), ready)
    gaps = [b - a for a, b in pairwise(polls)]
    waiting = [g for p, g in zip(polls, gaps, strict=False) if p < queued]
    assert max(waiting) <= CEILING + 1
    assert all(b >= a - 1e-6 for a, b in pairwise(waiting))  # backing off, not hammering
    # While queued: the ramp from MIN_INTERVAL to CEILING (8 polls), then one per CEILING.
    assert len(waiting) <= queued / CEILING + 8
    assert len(polls) - len(waiting) <= POLLS  # once the copy runs, progress tells
    assert lag <= LAG


def test_a_remain_time_that_ignores_the_queue_still_takes_few_polls() -> None:
    """RemainTime that counts the copy but not its queue (900 s for 900 s): ≤ 10 polls, no lag."""
    queued, ready = 900.0, 1800.0

    def report(t: float) -> Sighting:
        if t < queued:
            return Sighting(t, 0, 900.0)
        return exact(ready, start=queued)(t)

    polls, lag = drive(report, ready)
    assert len(polls) <= POLLS
    assert lag <= MIN_INTERVAL


def test_an_estimate_stuck_near_the_end_backs_off_to_the_ceiling() -> None:
    """RemainTime stuck at 10 s for an hour: the intervals grow to CEILING instead of hammering."""
    ready = 3600.0
    polls, lag = drive(lambda t: Sighting(t, 99, 10.0), ready)
    gaps = [b - a for a, b in pairwise(polls)]
    assert max(gaps) >= CEILING and max(gaps) <= CEILING + 1
    assert len(polls) <= ready / CEILING + POLLS
    assert lag <= CEILING + 1


def test_an_overestimate_within_the_margin_costs_no_lag() -> None:
    """RemainTime 10% too long still lands the last poll within MIN_INTERVAL of the end."""
    ready = 900.0
    polls, lag = drive(lambda t: Sighting(t, 0, 1.1 * (ready - t)), ready)
    assert len(polls) <= POLLS
    assert lag <= MIN_INTERVAL + 1


def test_an_underestimate_costs_polls_not_lag() -> None:
    """RemainTime half the truth: no lag; each poll leaves 55% of the wait, so log-many polls."""
    for ready in (900.0, 4 * 3600.0):
        polls, lag = drive(lambda t, ready=ready: Sighting(t, 0, 0.5 * (ready - t)), ready)
        assert len(polls) <= 3 + math.log(ready / MIN_INTERVAL) / math.log(1 / 0.55)
        assert lag <= MIN_INTERVAL + 1


sightings = st.lists(
    st.tuples(
        st.floats(0.0, 3600.0),
        st.integers(0, 100),
        st.none() | st.floats(-10.0, 1e6),
    ),
    min_size=1,
    max_size=40,
)


@given(sightings)
def test_never_more_often_than_the_minimum_interval(
    seen: list[tuple[float, int, float | None]],
) -> None:
    """Whatever the answers say, the next poll is at least MIN_INTERVAL away and finite."""
    schedule, at = PollSchedule(), 0.0
    for step, progress, remain in seen:
        at += step
        delay = schedule.next_delay(Sighting(at, progress, remain))
        assert MIN_INTERVAL <= delay < math.inf


def test_remain_time_is_read_from_the_slowest_disk() -> None:
    """RemainTime comes from DiskDeviceMappings, the longest positive one; 0 or none is None."""

    def image(*remains: object) -> dict[str, object]:
        disks = [{"Device": "/dev/xvda", "RemainTime": r} for r in remains]
        return {"ImageId": "m-1", "DiskDeviceMappings": {"DiskDeviceMapping": disks}}

    assert _remain_time(image(120, 300)) == 300.0
    assert _remain_time(image(0)) is None
    assert _remain_time(image(None, "soon")) is None
    assert _remain_time({"ImageId": "m-1"}) is None


# -- against the emulator ------------------------------------------------------------------------

# The event loop runs on virtual time and the emulator's clock reads it: aliasync's sleeps and the
# cloud's minutes pass without real waiting, and every call takes the same cloud time however
# fast the machine is. So the numbers below are what the polling chose, not what the machine did.
REGION, OTHER, THIRD = "ap-southeast-1", "eu-central-1", "us-west-1"
BUCKET = "aliasync-polling"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "asyncio", {"loop_factory": VirtualTimeLoop}


@asynccontextmanager
async def _emulator(faults: FaultProfile = PROFILES["none"]) -> AsyncIterator[Simulator]:
    """An emulator whose cloud seconds are the virtual event loop's seconds (time scale 1)."""
    loop_clock = Clock(1.0, source=asyncio.get_running_loop().time)
    async with Simulator(seed=0, profile=faults, clock=loop_clock) as sim:
        # The source image's bytes, by an asyncio client: no worker thread runs beside the clock.
        async with aio_s3(sim, REGION, internal=True, proxy=inside_proxy(sim, REGION)) as s3:
            await s3.create_bucket(Bucket=BUCKET)
            await s3.put_object(Bucket=BUCKET, Key="disk.raw", Body=b"\0" * 4096 + b"polling")
        yield sim


def _api(sim: Simulator, region: str) -> EcsApi:
    endpoints = Endpoints.from_dict(sim.endpoints)
    return EcsApi(endpoints, CredentialSource(endpoints), region)


async def _start_import(sim: Simulator, name: str) -> tuple[EcsApi, str, str]:
    ecs = _api(sim, REGION)
    image_id, task_id = await ecs.import_image(
        name=name, bucket=BUCKET, key="disk.raw", disk_image_size_gib=1,
        boot_mode="BIOS", architecture="x86_64", client_token=f"tok-{name}",
    )  # fmt: skip
    return ecs, image_id, task_id


async def _wait(sim: Simulator, ecs: EcsApi, image_id: str, **kw: object) -> tuple[int, float]:
    """Wait for the image; return (DescribeImages calls it made, cloud seconds of lag)."""
    before = sim.calls.count("DescribeImages", ecs.region)
    info = await ecs.wait_available(image_id, timeout=36000.0, **kw)  # type: ignore[arg-type]
    noticed = sim.clock.now()
    assert isinstance(info, ImageInfo) and info.status == "Available"
    ready = sim.ctx.models["ecs"].image(ecs.region, image_id).ready_at
    return sim.calls.count("DescribeImages", ecs.region) - before, noticed - ready


async def _copy(sim: Simulator, source: EcsApi, source_id: str, dest: str) -> str:
    return await source.copy_image(
        image_id=source_id, destination_region=dest, destination_name=f"copy-{dest}",
        client_token=f"tok-copy-{dest}",
    )  # fmt: skip


@pytest.mark.anyio
async def test_an_import_wait_polls_few_times_and_notices_at_once() -> None:
    """A 3-minute ImportImage wait: ≤ 10 DescribeImages calls, Available noticed ≤ 10 s late."""
    async with _emulator() as sim:
        ecs, image_id, task_id = await _start_import(sim, "poll-import")
        polls, lag = await _wait(sim, ecs, image_id, task_id=task_id)
    assert 2 <= polls <= POLLS
    assert 0 <= lag <= LAG


@pytest.mark.anyio
async def test_a_copy_wait_polls_few_times_and_notices_at_once() -> None:
    """A 15-minute CopyImage wait: ≤ 10 DescribeImages calls, Available noticed ≤ 10 s late."""
    async with _emulator() as sim:
        ecs, image_id, _ = await _start_import(sim, "poll-source")
        await ecs.wait_available(image_id, timeout=3600.0)
        copy_id = await _copy(sim, ecs, image_id, OTHER)
        polls, lag = await _wait(sim, _api(sim, OTHER), copy_id)
    assert 2 <= polls <= POLLS
    assert 0 <= lag <= LAG


@pytest.mark.anyio
async def test_a_queued_copy_polls_few_times_and_notices_at_once() -> None:
    """Two copies for one source slot: the second waits 15 min queued, 30 in all; ≤ 10 polls."""
    async with _emulator(PROFILES["none"].with_(copy_concurrency=1)) as sim:
        # Two source images: one image is copied once at a time (ImageCopyConflict).
        ecs, image_id, _ = await _start_import(sim, "poll-queued")
        _, other_id, _ = await _start_import(sim, "poll-queued-2")
        await ecs.wait_available(image_id, timeout=3600.0)
        await ecs.wait_available(other_id, timeout=3600.0)
        first = await _copy(sim, ecs, image_id, OTHER)
        second = await _copy(sim, ecs, other_id, THIRD)
        outcomes: dict[str, tuple[int, float]] = {}

        async def wait(region: str, copy_id: str) -> None:
            outcomes[region] = await _wait(sim, _api(sim, region), copy_id)

        async with anyio.create_task_group() as group:
            group.start_soon(wait, OTHER, first)
            group.start_soon(wait, THIRD, second)
        model = sim.ctx.models["ecs"]
        queued = model.image(THIRD, second).ready_at - model.image(OTHER, first).ready_at
    assert queued >= 850  # the second copy really waited for the first
    for polls, lag in outcomes.values():
        assert 2 <= polls <= POLLS
        assert 0 <= lag <= LAG


@pytest.mark.anyio
async def test_the_timeout_still_ends_the_wait_on_time() -> None:
    """A 60 s timeout on a 3-minute import raises ImageTimeoutError at ~60 s after ≤ 3 polls."""
    async with _emulator() as sim:
        ecs, image_id, task_id = await _start_import(sim, "poll-timeout")
        before, began = sim.calls.count("DescribeImages", REGION), sim.clock.now()
        with pytest.raises(ImageTimeoutError):
            await ecs.wait_available(image_id, timeout=60.0, task_id=task_id)
        waited = sim.clock.now() - began
        polls = sim.calls.count("DescribeImages", REGION) - before
    assert 60.0 <= waited <= 60.0 + MIN_INTERVAL + LAG
    assert polls <= 3
