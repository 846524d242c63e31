"""Holding the emulator's clock: paused, advanced, and everything that reads it held with it."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

from aliasync.sim import PROFILES, Clock, FaultRule, Simulator
from tests.clients import ecs_client, fc_client
from tests.sim.test_ecs import IMPORT_S, REGION, describe, fails, imported
from tests.sim.test_fc import REGION as FC_REGION
from tests.sim.test_fc import create, invoke
from tests.virtualtime import VirtualTimeLoop

pytestmark = pytest.mark.anyio


class FakeSource:
    """A real-time source the test moves by hand, to watch the clock follow it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pause_resume_and_advance_move_virtual_time_exactly() -> None:
    """Held, the clock reads the same; advanced, it moves by exactly that; resumed, it runs on."""
    real = FakeSource()
    clock = Clock(10.0, source=real)
    real.now += 1.0
    assert clock.now() == 10.0 and not clock.paused
    clock.pause()
    real.now += 5.0
    assert clock.now() == 10.0 and clock.paused
    clock.advance(2.5)
    assert clock.now() == 12.5
    clock.resume()
    real.now += 1.0
    assert clock.now() == 22.5
    clock.advance(100.0)  # running: a jump on top of the flow
    assert clock.now() == 122.5
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1.0)


def test_frozen_holds_for_the_block_and_keeps_an_earlier_pause() -> None:
    """frozen() resumes afterwards only if the clock was running before it."""
    real = FakeSource()
    clock = Clock(1.0, source=real)
    with clock.frozen():
        real.now += 3.0
        assert clock.now() == 0.0
    real.now += 1.0
    assert clock.now() == 1.0
    clock.pause()
    with clock.frozen():
        pass
    assert clock.paused


async def test_a_sleeper_wakes_only_when_the_held_clock_is_advanced_past_its_deadline() -> None:
    """sleep() on a held clock waits for advance(); sleepers and wait_for_sleepers show it."""
    clock = Clock(1000.0)
    clock.pause()
    start = clock.now()
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(30.0)
        woke.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await clock.wait_for_sleepers()
        assert clock.sleepers == [start + 30.0]
        clock.advance(29.0)
        await anyio.wait_all_tasks_blocked()
        assert woke == [] and clock.sleepers == [start + 30.0]
        clock.advance(1.0)
    assert woke == [start + 30.0] and clock.sleepers == []


async def test_a_running_clock_wakes_a_sleeper_early_when_advanced() -> None:
    """advance() on a running clock ends a long sleep at once instead of at its real time."""
    clock = Clock(1.0)  # an hour of sleep would be an hour of real time
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.sleep, 3600.0)
        await clock.wait_for_sleepers()
        clock.advance(3600.0)
    assert clock.sleepers == []


async def test_calls_are_answered_while_the_clock_is_held(sim: Simulator) -> None:
    """A held clock still answers calls (their latency takes no virtual time); a state holds."""
    client = ecs_client(sim, REGION)
    sim.clock.pause()
    held = sim.clock.now()
    image_id = await imported(sim, client, REGION, "held", wait=False)
    for _ in range(20):
        (image,) = await describe(client, REGION, image_id=image_id)
        assert image.status == "Creating"
    assert sim.clock.now() == held
    assert sim.introspect("time") == {"now": held, "time_scale": 1000.0, "paused": True}
    sim.clock.advance(IMPORT_S)
    (image,) = await describe(client, REGION, image_id=image_id)
    assert image.status == "Available"


async def test_a_temporary_key_expires_when_the_clock_gets_there(sim: Simulator) -> None:
    """An STS key valid for 100 virtual seconds works at 99.9 and is refused from 100 on."""
    sim.clock.pause()
    key = sim.ctx.keys.issue_temporary("role/test", expires_at=sim.clock.now() + 100.0)
    client = ecs_client(
        sim,
        REGION,
        access_key_id=key.access_key_id,
        access_key_secret=key.secret,
        security_token=key.security_token,
        type="sts",
    )
    sim.clock.advance(99.9)
    await client.describe_regions_async(m.DescribeRegionsRequest())
    sim.clock.advance(0.1)
    error = await fails(client.describe_regions_async(m.DescribeRegionsRequest()))
    assert (error.code, error.status_code) == ("InvalidSecurityToken.Expired", 400)


async def test_a_throttling_storm_lasts_its_virtual_seconds() -> None:
    """A storm started by one call throttles the action until 60 virtual seconds have passed."""
    storming = PROFILES["none"].with_(
        rules=(FaultRule("ecs:DescribeRegions:*", throttle_burst_rate=1.0),)
    )
    async with Simulator(seed=0, profile=storming) as sim:
        sim.clock.pause()
        client = ecs_client(sim, REGION)
        error = await fails(client.describe_regions_async(m.DescribeRegionsRequest()))
        assert error.code == "Throttling"
        sim.ctx.faults.profile = PROFILES["none"]  # no new storm: only the one begun goes on
        sim.clock.advance(59.0)
        for _ in range(5):
            error = await fails(client.describe_regions_async(m.DescribeRegionsRequest()))
            assert error.code == "Throttling"
        sim.clock.advance(1.0)
        await client.describe_regions_async(m.DescribeRegionsRequest())
        assert [f.kind for f in sim.ctx.faults.injected] == ["throttle"] * 6


@pytest.mark.parametrize("anyio_backend", [("asyncio", {"loop_factory": VirtualTimeLoop})])
async def test_virtual_seconds_are_slept_as_real_ones_divided_by_the_scale() -> None:
    """At time scale 1000, sleeping 5 virtual seconds takes 5 ms of the event loop's time."""
    loop = asyncio.get_running_loop()
    clock = Clock(1000.0, source=loop.time)
    before = (loop.time(), clock.now())
    await clock.sleep(5.0)
    assert loop.time() - before[0] == pytest.approx(0.005)
    assert clock.now() - before[1] == pytest.approx(5.0)


async def test_stopping_the_emulator_ends_what_sleeps_on_a_held_clock() -> None:
    """A call asleep on the held clock (a cold start) gets 503 when the emulator stops."""
    slow_start = PROFILES["none"].with_(cold_start_seconds=3600.0)
    sim = await Simulator(seed=0, profile=slow_start).start()
    try:
        client = fc_client(sim, FC_REGION)
        await create(client, "sleepy")
        sim.clock.pause()
        errors: list[AlibabaCloudException] = []

        async def call() -> None:
            with pytest.raises(AlibabaCloudException) as info:
                await invoke(client, "sleepy")
            errors.append(info.value)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await sim.clock.wait_for_sleepers()
            await sim.stop()
    finally:
        await sim.stop()
    (error,) = errors
    assert (error.status_code, error.code) == (503, "ServiceUnavailable")
    assert sim.ctx.models["fc"].functions()[0]["invocations"] == 1
