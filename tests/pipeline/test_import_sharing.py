"""Publishing and sharing as ECS really allows them, and copies that fail, end to end."""

from __future__ import annotations

import pytest

from aliasync import UsageError
from aliasync.cloud._cloud import Cloud
from aliasync.cloud._endpoints import Endpoints
from aliasync.lifecycle._images import share_images
from aliasync.sim import CallRecord, Simulator, profile
from tests.importing import (
    ARM64,
    BIOS,
    UEFI,
    assert_no_leaks,
    assert_published,
    images_named,
    run_import,
)

pytestmark = pytest.mark.anyio

REGIONS = ("ap-southeast-1", "eu-central-1", "cn-beijing", "cn-heyuan", "cn-zhangjiakou")
ACCOUNT = "1234567890123456"


def share_calls(sim: Simulator) -> int:
    return sim.calls.count("ModifyImageSharePermission")


async def test_a_run_shared_with_an_account_shares_every_image_and_publishes_none() -> None:
    """--share-account, whole map: each image is shared with the account in every region and
    public nowhere; copies still reach the copy-only regions."""
    async with Simulator(seed=31, profile="default") as sim:
        report = await run_import(sim, [BIOS, UEFI], name="ipxe-s", share_accounts=(ACCOUNT,))
        assert_published(sim, report, [BIOS, UEFI], name="ipxe-s")
        for region in sim.ctx.regions.ids():
            for name in ("ipxe-s", "ipxe-s-uefi-x86-64"):
                (image,) = images_named(sim, region, name)
                assert (image["shared_accounts"], image["public"]) == ([ACCOUNT], False)
        assert {i.strategy for r in report.regions for i in r.images} == {"direct", "relay", "copy"}
        assert_no_leaks(sim)


async def test_public_with_share_account_is_refused_before_anything_is_created() -> None:
    """A community image cannot be shared: the combination is a usage error, nothing made."""
    async with Simulator(seed=32, profile="none") as sim:
        with pytest.raises(UsageError, match="--public and --share-account"):
            await run_import(sim, [BIOS], public=True, share_accounts=(ACCOUNT,))
        assert sim.calls.count() == 0


async def test_copies_failing_at_thirty_percent_still_publish_every_region() -> None:
    """A failed copy is deleted and retried from another source; every region ends published,
    with no leftover image or orphan snapshot."""
    faults = profile("default").with_(copy_failure_rate=0.3)
    async with Simulator(seed=33, profile=faults) as sim:
        report = await run_import(sim, [BIOS, UEFI, ARM64], name="ipxe-cf", public=True)
        assert_published(sim, report, [BIOS, UEFI, ARM64], name="ipxe-cf", public=True)
        # Which copies fail depends on the order calls arrive in, so only the bookkeeping is
        # exact: every failed copy was followed by one more CopyImage (about 24 copies at 30 %:
        # none failing at all has a chance of 2e-4).
        failed = sim.faults_injected()["counts"].get("copy_failed", 0)
        copies = sum(1 for r in report.regions for i in r.images if i.strategy == "copy")
        assert failed >= 1
        assert sim.calls.count("CopyImage") >= copies + failed
        assert not sim.ctx.models["ecs"].duplicate_images()
        assert_no_leaks(sim)


async def test_without_community_terms_images_stay_private_and_publish_finishes_later() -> None:
    """Terms not accepted: one refusal stops all publishing, every image Available and private,
    the report names the console step (exit 1); after accepting, `publish` finishes the job."""
    async with Simulator(seed=34, profile="default", community_terms=False) as sim:
        report = await run_import(sim, [BIOS], name="ipxe-t", regions=REGIONS, public=True)
        assert report.exit_code == 1
        for result in report.regions:
            (image_result,) = result.images
            assert image_result.status == "error" and image_result.image_id
            assert "Community Image Terms of Service" in (image_result.error or "")
            assert "aliasync publish ipxe-t" in (image_result.error or "")
        for region in REGIONS:
            (image,) = images_named(sim, region, "ipxe-t")
            assert (image["status"], image["public"]) == ("Available", False)
        refusals = [f for f in sim.calls.records if f.error == "PublicImageAgreement.NotSigned"]
        assert len(refusals) == 1
        assert_no_leaks(sim)
        sim.ctx.community_terms = True  # accepted in the console
        cloud = await Cloud.open(Endpoints.from_dict(sim.endpoints))
        try:
            outcome = await share_images(cloud, REGIONS, "ipxe-t", publish=True)
        finally:
            await cloud.aclose()
        assert not outcome.errors
        assert all(images_named(sim, r, "ipxe-t")[0]["public"] for r in REGIONS)


async def test_publishing_waits_until_no_region_needs_the_image_as_a_copy_source() -> None:
    """With --public, no image is public while any copy of it is still to be made."""
    async with Simulator(seed=35, profile="none") as sim:
        report = await run_import(sim, [BIOS], name="ipxe-p", regions=REGIONS, public=True)
        assert_published(sim, report, [BIOS], name="ipxe-p", public=True, regions=REGIONS)
        copies = [i for r in report.regions for i in r.images if i.strategy == "copy"]
        assert copies  # the copy-only regions copied from private images
        assert sim.calls.count("CopyImage") == len(copies)
        # Every copy had finished before the first image was published.
        model = sim.ctx.models["ecs"]
        copied = [model.image(r.region, i.image_id) for r in report.regions for i in r.images
                  if i.strategy == "copy" and i.image_id]  # fmt: skip
        first_publish = min(
            c.at for c in sim.calls.records if c.action == "ModifyImageSharePermission"
        )
        assert max(image.ready_at for image in copied) <= first_publish


async def test_a_source_busy_copying_for_someone_else_is_waited_for_not_given_up() -> None:
    """The only source image is being copied by another client (ImageCopyConflict): the copy
    region waits for that copy to end and then copies, instead of spending its attempts."""
    async with Simulator(seed=34, profile="none") as sim:
        ecs = sim.ctx.models["ecs"]
        others: list[str] = []

        def copy_elsewhere(call: CallRecord) -> None:
            # The moment the run makes the image a source (its family is set), another client
            # starts copying it.
            if call.action == "ModifyImageAttribute" and call.region == REGIONS[0] and not others:
                (image,) = images_named(sim, REGIONS[0], "ipxe-busy")
                others.append(ecs.copy_image(REGIONS[0], image["id"], "eu-west-1")["ImageId"])

        sim.calls.watchers.append(copy_elsewhere)
        report = await run_import(sim, [BIOS], name="ipxe-busy", regions=(REGIONS[0], "cn-heyuan"))
        assert_published(sim, report, [BIOS], name="ipxe-busy", regions=(REGIONS[0], "cn-heyuan"))
        conflicts = [r for r in sim.calls.records if r.error == "OperationDenied.ImageCopyConflict"]
        assert others and conflicts, "the source was never busy"
        (copied,) = images_named(sim, "cn-heyuan", "ipxe-busy")
        (other,) = ecs.snapshot()["regions"]["eu-west-1"]["images"]
        assert copied["creation_time"] >= other["ready_time"]  # sent once the other copy ended
        assert_no_leaks(sim)
