"""Holding the emulator at one step: a paused clock, calls in flight, call-log watchers."""

from __future__ import annotations

import anyio
import pytest
from alibabacloud_ecs20140526 import models as m

from aliasync.sim import Clock, Simulator
from tests.clients import ecs_client
from tests.sim.test_ecs import IMPORT_S, REGION, import_request, upload

pytestmark = pytest.mark.anyio


async def test_a_paused_clock_stands_still_and_resumes_where_it_stood() -> None:
    """pause() freezes now(); a sleep across the pause lasts until resume; time goes on after."""
    clock = Clock(1000.0)
    clock.pause()
    assert clock.paused
    stood = clock.now()
    woke = anyio.Event()

    async def sleeper() -> None:
        await clock.sleep(10.0)
        woke.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.sleep(0.05)  # 50 virtual seconds if the clock ran: the sleeper must not wake
        assert clock.now() == stood and not woke.is_set()
        clock.resume()
        assert not clock.paused
        with anyio.fail_after(10):
            await woke.wait()
    assert clock.now() >= stood + 10.0


async def test_a_clock_paused_at_an_instant_stops_there() -> None:
    """pause(at=T) lets time run up to T exactly, never past it, until resumed."""
    clock = Clock(1000.0)
    target = clock.now() + 20.0
    clock.pause(at=target)
    await clock.sleep(5.0)  # before the stop: an ordinary sleep
    assert clock.now() < target
    with anyio.fail_after(10):
        while not clock.paused:  # noqa: ASYNC110 (the clock itself is the state waited on)
            await anyio.sleep(0.01)
    await anyio.sleep(0.05)
    assert clock.now() == target
    clock.resume()
    await clock.sleep(1.0)
    assert clock.now() > target


async def test_while_paused_an_import_stays_creating_and_calls_wait_in_flight() -> None:
    """Paused at the ImportImage answer (a watcher), the image stays Creating however long the
    test waits; a DescribeImages sent meanwhile is in flight, unanswered, until resume."""
    async with Simulator(seed=0, profile="none") as sim:
        client = ecs_client(sim, REGION)
        bucket, key = await upload(sim, REGION)
        sim.calls.watchers.append(
            lambda r: r.action == "ImportImage" and sim.clock.pause(hold_calls=True)
        )
        answer = await client.import_image_async(import_request(REGION, bucket, key, "held"))
        image_id = answer.body.image_id
        assert sim.clock.paused
        answered: list[str] = []

        async def describe() -> None:
            request = m.DescribeImagesRequest(
                region_id=REGION, image_id=image_id, status="Creating,Available"
            )
            body = (await client.describe_images_async(request)).body
            answered.append(body.images.image[0].status)

        async with anyio.create_task_group() as tg:
            tg.start_soon(describe)
            with anyio.fail_after(10):
                while not sim.calls.in_flight.get(("ecs", "DescribeImages", None)):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            await anyio.sleep(IMPORT_S / sim.clock.time_scale)  # the import's whole duration
            assert not answered
            (image,) = sim.ctx.models["ecs"].snapshot()["regions"][REGION]["images"]
            assert image["status"] == "Creating"
            sim.clock.resume()
        assert answered == ["Creating"]
        assert not sim.calls.in_flight
        outside = [r for r in sim.calls.records if r.origin is None]
        assert sim.calls.arrivals[None] == len(outside) == 2  # ImportImage, DescribeImages
