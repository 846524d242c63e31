"""CopyImage, its per-source-region queue, CancelCopyImage and DeleteImage in the emulated ECS."""

from __future__ import annotations

import math

import pytest
from alibabacloud_ecs20140526 import models as m

from aliasync.sim import Simulator, profile
from tests.clients import ecs_client
from tests.sim.test_ecs import (
    DATA,
    OTHER,
    REGION,
    THIRD,
    describe,
    ecs_state,
    fails,
    imported,
    region_images,
    sha,
)

pytestmark = pytest.mark.anyio

COPY_S = 900.0  # a small image copies in 900 virtual seconds once it runs


def copy_request(image_id: str, dest: str, **kw: object) -> m.CopyImageRequest:
    return m.CopyImageRequest(region_id=REGION, image_id=image_id, destination_region_id=dest, **kw)


def queue(sim: Simulator, region: str) -> dict[str, dict[str, object]]:
    jobs = ecs_state(sim)["copy_queues"].get(region, [])
    return {j["image_id"]: j for j in jobs}


async def test_copy_image_lifecycle(sim: Simulator) -> None:
    """A copy is Creating (IsCopied, progress, RemainTime) then Available with its own snapshot."""
    sim.clock.pause()
    client = ecs_client(sim, REGION)
    source = await imported(sim, client, REGION, "golden", boot_mode="UEFI")
    copy = await client.copy_image_async(
        copy_request(source, OTHER, tag=[m.CopyImageRequestTag(key="k", value="v")])
    )
    copy_id = copy.body.image_id
    assert copy_id.startswith("m-") and copy_id != source
    (image,) = await describe(ecs_client(sim, OTHER), OTHER)
    assert (image.image_id, image.status, image.is_copied) == (copy_id, "Creating", True)
    assert image.image_name == "golden"  # DestinationImageName defaults to the source's name
    mapping = image.disk_device_mappings.disk_device_mapping[0]
    job = queue(sim, REGION)[copy_id]
    duration = float(job["end"]) - float(job["start"])  # type: ignore[arg-type]
    assert COPY_S <= duration < COPY_S + 1
    assert (mapping.remain_time, mapping.progress) == (math.ceil(duration), "0%")
    # 60.5 % of the way (not a round number: float sums must not decide which percent it is)
    sim.clock.advance(duration * 0.605)
    (image,) = await describe(ecs_client(sim, OTHER), OTHER)
    mapping = image.disk_device_mappings.disk_device_mapping[0]
    assert (image.status, mapping.progress) == ("Creating", "60%")
    assert mapping.remain_time == math.ceil(duration * 0.395)
    sim.clock.advance(duration * 0.395 + 1)
    (image,) = await describe(ecs_client(sim, OTHER), OTHER, status="Available")
    assert (image.boot_mode, image.is_copied, image.progress) == ("UEFI", True, "100%")
    assert [(t.tag_key, t.tag_value) for t in image.tags.tag] == [("k", "v")]
    view = region_images(sim, OTHER)[copy_id]
    assert view["content_digest"] == sha(DATA)
    assert view["copy_of"] == [REGION, source]
    (snap_id,) = view["snapshot_ids"]
    assert snap_id not in region_images(sim, REGION)[source]["snapshot_ids"]


async def test_copies_queue_per_source_region_with_one_slot() -> None:
    """With one slot (the 2021 documentation), copies from one region run one after another;
    other regions do not wait."""
    async with Simulator(seed=0, profile=profile("none").with_(copy_concurrency=1)) as sim:
        sim.clock.pause()
        client = ecs_client(sim, REGION)
        source = await imported(sim, client, REGION, "src-a")
        source_b = await imported(sim, client, REGION, "src-b")
        other_source = await imported(sim, ecs_client(sim, OTHER), OTHER, "src-c")
        first = (
            await client.copy_image_async(copy_request(source, OTHER, destination_image_name="c1"))
        ).body.image_id
        second = (await client.copy_image_async(copy_request(source_b, THIRD))).body.image_id
        parallel = (
            await ecs_client(sim, OTHER).copy_image_async(
                m.CopyImageRequest(
                    region_id=OTHER,
                    image_id=other_source,
                    destination_region_id=THIRD,
                    destination_image_name="c3",
                )
            )
        ).body.image_id
        jobs = queue(sim, REGION)
        assert jobs[second]["start"] == jobs[first]["end"]
        assert queue(sim, OTHER)[parallel]["start"] < jobs[first]["end"]
        # The second copy makes no progress while it waits for the slot.
        (waiting,) = await describe(ecs_client(sim, THIRD), THIRD, image_id=second)
        assert waiting.disk_device_mappings.disk_device_mapping[0].progress == "0%"


async def test_five_copies_run_at_once_per_source_region_and_the_sixth_queues(
    sim: Simulator,
) -> None:
    """The current CopyImage documentation: five concurrent copies per region, then a queue."""
    assert sim.ctx.faults.profile.copy_concurrency == 5
    sim.clock.pause()  # the first five still run when the sixth is asked for
    client = ecs_client(sim, REGION)
    sources = [await imported(sim, client, REGION, f"five-{n}", wait=False) for n in range(6)]
    sim.clock.advance(200)
    copies = [
        (await client.copy_image_async(copy_request(s, OTHER))).body.image_id for s in sources
    ]
    jobs = queue(sim, REGION)
    first_free = min(float(jobs[c]["end"]) for c in copies[:5])
    # The first five started as they came, the sixth waits for the first slot to free.
    assert all(float(jobs[c]["start"]) < first_free for c in copies[:5])
    assert jobs[copies[5]]["start"] == first_free


async def test_one_source_image_is_copied_once_at_a_time(sim: Simulator) -> None:
    """A second copy of an image still being copied is OperationDenied.ImageCopyConflict."""
    sim.clock.pause()
    client = ecs_client(sim, REGION)
    source = await imported(sim, client, REGION, "busy")
    await client.copy_image_async(copy_request(source, OTHER))
    error = await fails(client.copy_image_async(copy_request(source, THIRD)))
    assert (error.code, error.status_code) == ("OperationDenied.ImageCopyConflict", 400)
    sim.clock.advance(COPY_S + 100)
    await client.copy_image_async(copy_request(source, THIRD))


async def test_copy_refuses_images_that_are_not_available(sim: Simulator) -> None:
    """CopyImage needs an Available source: Creating or Deprecated is IncorrectImageStatus."""
    sim.clock.pause()
    client = ecs_client(sim, REGION)
    creating = await imported(sim, client, REGION, "still-importing", wait=False)
    error = await fails(client.copy_image_async(copy_request(creating, OTHER)))
    assert (error.code, error.status_code) == ("IncorrectImageStatus", 400)
    sim.clock.advance(200)
    await client.modify_image_attribute_async(
        m.ModifyImageAttributeRequest(region_id=REGION, image_id=creating, status="Deprecated")
    )
    error = await fails(client.copy_image_async(copy_request(creating, OTHER)))
    assert error.code == "IncorrectImageStatus"
    error = await fails(client.copy_image_async(copy_request("m-doesnotexist000000", OTHER)))
    assert (error.code, error.status_code) == ("InvalidImageId.NotFound", 404)
    error = await fails(client.copy_image_async(copy_request(creating, "xx-nowhere-1")))
    assert error.code == "DestinationRegion.NotFound"


async def test_copy_client_token_and_duplicate_names(sim: Simulator) -> None:
    """A repeated ClientToken returns the same copy; a mismatch or a taken name is refused."""
    sim.clock.pause()
    client = ecs_client(sim, REGION)
    source = await imported(sim, client, REGION, "tokened")
    first = await client.copy_image_async(copy_request(source, OTHER, client_token="c-1"))
    again = await client.copy_image_async(copy_request(source, OTHER, client_token="c-1"))
    assert again.body.image_id == first.body.image_id
    assert len(region_images(sim, OTHER)) == 1
    error = await fails(client.copy_image_async(copy_request(source, THIRD, client_token="c-1")))
    assert (error.code, error.status_code) == ("IdempotentParameterMismatch", 400)
    sim.clock.advance(COPY_S + 100)
    error = await fails(client.copy_image_async(copy_request(source, OTHER)))
    assert (error.code, error.status_code) == ("InvalidImageName.Duplicated", 400)
    error = await fails(
        client.copy_image_async(copy_request(source, THIRD, destination_image_name="acs:x"))
    )
    assert error.code == "InvalidImageName.Malformed"


async def test_cancel_copy_image(sim: Simulator) -> None:
    """CancelCopyImage deletes a copy in progress and lets the next queued copy start at once."""
    sim.clock.pause()
    client = ecs_client(sim, REGION)
    sources = [await imported(sim, client, REGION, f"cancel-{n}", wait=False) for n in range(6)]
    sim.clock.advance(200)
    for other in sources[1:5]:  # the five slots busy: the next copy queues
        await client.copy_image_async(copy_request(other, THIRD))
    source = sources[0]
    first = (await client.copy_image_async(copy_request(source, OTHER))).body.image_id
    second = (await client.copy_image_async(copy_request(sources[5], THIRD))).body.image_id
    before = queue(sim, REGION)[second]["start"]
    await ecs_client(sim, OTHER).cancel_copy_image_async(
        m.CancelCopyImageRequest(region_id=OTHER, image_id=first)
    )
    assert first not in region_images(sim, OTHER)
    assert queue(sim, REGION)[second]["start"] == sim.clock.now() < before  # at once
    error = await fails(
        client.cancel_copy_image_async(m.CancelCopyImageRequest(region_id=REGION, image_id=source))
    )
    assert error.code == "ImageCreatedNotFromCopy"
    sim.clock.advance(COPY_S + 50)
    error = await fails(
        ecs_client(sim, THIRD).cancel_copy_image_async(
            m.CancelCopyImageRequest(region_id=THIRD, image_id=second)
        )
    )
    assert (error.code, error.status_code) == ("IncorrectImageStatus", 400)


async def test_delete_image_rules_and_leftover_snapshots(sim: Simulator) -> None:
    """DeleteImage refuses importing/copying images, 404s unknown ones, and leaves snapshots."""
    sim.clock.pause()
    client = ecs_client(sim, REGION)
    importing = await imported(sim, client, REGION, "importing", wait=False)
    error = await fails(
        client.delete_image_async(m.DeleteImageRequest(region_id=REGION, image_id=importing))
    )
    assert (error.code, error.status_code) == ("ImageIsImporting", 403)
    sim.clock.advance(200)
    copy = (await client.copy_image_async(copy_request(importing, OTHER))).body.image_id
    for region, image_id in ((OTHER, copy), (REGION, importing)):
        error = await fails(
            ecs_client(sim, region).delete_image_async(
                m.DeleteImageRequest(region_id=region, image_id=image_id)
            )
        )
        assert (error.code, error.status_code) == ("OperationDenied.ImageCopying", 403)
    sim.clock.advance(COPY_S + 50)
    (snap,) = region_images(sim, REGION)[importing]["snapshot_ids"]
    await client.delete_image_async(m.DeleteImageRequest(region_id=REGION, image_id=importing))
    assert importing not in region_images(sim, REGION)
    orphans = sim.ctx.models["ecs"].orphan_snapshots()
    assert [(o["id"], o["region"]) for o in orphans] == [(snap, REGION)]
    assert sim.leaks()["orphan_snapshots"] == orphans
    error = await fails(
        client.delete_image_async(m.DeleteImageRequest(region_id=REGION, image_id=importing))
    )
    assert (error.code, error.status_code) == ("InvalidImageId.NotFound", 404)
    await client.delete_snapshot_async(m.DeleteSnapshotRequest(snapshot_id=snap))
    assert sim.ctx.models["ecs"].orphan_snapshots() == []
