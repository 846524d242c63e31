"""The lifecycle commands on shared and public images: unshare first, then act; and when a
step fails, the outcome says what state the image was left in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aliasync.cloud._cloud import Cloud
from aliasync.cloud._endpoints import Endpoints
from aliasync.lifecycle._images import delete_images, deprecate_images, prune_images
from aliasync.sim import FaultRule, Simulator, profile
from tests.importing import BIOS, images_named, run_import

pytestmark = pytest.mark.anyio

REGION = "ap-southeast-1"
ACCOUNT = "1234567890123456"


async def _cloud(sim: Simulator) -> AsyncIterator[Cloud]:
    handle = await Cloud.open(Endpoints.from_dict(sim.endpoints))
    try:
        yield handle
    finally:
        await handle.aclose()


@pytest.mark.parametrize("sharing", [{"public": True}, {"share_accounts": (ACCOUNT,)}])
async def test_delete_unshares_then_deletes(sim: Simulator, sharing: dict[str, object]) -> None:
    """A public or shared image is unshared first (ECS refuses otherwise), then deleted."""
    await run_import(sim, [BIOS], name="ipxe-d", regions=(REGION,), **sharing)
    async for cloud in _cloud(sim):
        outcome = await delete_images(cloud, (REGION,), name="ipxe-d")
    assert not outcome.errors and [a.action for a in outcome.actions] == ["deleted"]
    assert images_named(sim, REGION, "ipxe-d") == []
    assert sim.ctx.models["ecs"].orphan_snapshots() == []


async def test_deprecate_unshares_and_unpublishes_first(sim: Simulator) -> None:
    """Deprecating a published image: unpublished, then Deprecated."""
    await run_import(sim, [BIOS], name="ipxe-dep", regions=(REGION,), public=True)
    async for cloud in _cloud(sim):
        outcome = await deprecate_images(cloud, (REGION,), "ipxe-dep", replacement="ipxe-new")
    assert not outcome.errors
    (image,) = images_named(sim, REGION, "ipxe-dep")
    assert (image["status"], image["public"], image["shared_accounts"]) == (
        "Deprecated", False, [],
    )  # fmt: skip


async def test_a_failed_delete_says_the_image_was_left_unshared_not_deleted() -> None:
    """DeleteImage always failing after the unshare: the region's error names the state."""
    faults = profile("none").with_(rules=(FaultRule("ecs:DeleteImage:*", transient_rate=1.0),))
    async with Simulator(seed=41, profile=faults, time_scale=1000.0) as sim:
        await run_import(sim, [BIOS], name="ipxe-f", regions=(REGION,), public=True)
        async for cloud in _cloud(sim):
            outcome = await prune_images(cloud, (REGION,), family="ipxe", retain=0, everything=True)
        (error,) = outcome.errors.values()
        assert "deleting it failed" in error
        assert "the image is left unshared (private), not deleted" in error
        (image,) = images_named(sim, REGION, "ipxe-f")
        assert (image["status"], image["public"]) == ("Available", False)
