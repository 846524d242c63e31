"""Re-running a release: a run that finds its images already published changes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aliasync.sim import Simulator
from tests import diskimages as d
from tests.importing import BIOS, UEFI, assert_no_leaks, assert_published, images_named, run_import

pytestmark = pytest.mark.anyio

REGIONS = ("ap-southeast-1", "eu-central-1", "cn-beijing", "cn-heyuan")
MORE = ("ap-northeast-1", "cn-shanghai", "cn-zhangjiakou")
ACCOUNT = "1234567890123456"


def mutating(sim: Simulator) -> list[str]:
    return [f"{c.service}:{c.action}" for c in sim.calls.records if c.mutating]


async def test_the_same_run_twice_makes_no_mutating_call_the_second_time() -> None:
    """A CI job retried after an unrelated failure: exit 0, every image "already published",
    and not one bucket, upload, function, import, copy or attribute change."""
    async with Simulator(seed=51, profile="default") as sim:
        first = await run_import(sim, [BIOS, UEFI], name="ipxe-r", regions=REGIONS, public=True)
        assert_published(sim, first, [BIOS, UEFI], name="ipxe-r", public=True, regions=REGIONS)
        before = len(mutating(sim))
        second = await run_import(sim, [BIOS, UEFI], name="ipxe-r", regions=REGIONS, public=True)
        assert second.exit_code == 0, second.to_json()
        assert mutating(sim)[before:] == []
        results = [i for r in second.regions for i in r.images]
        assert all(i.existing and i.strategy == "existing" for i in results)
        assert {i.image_id for i in results} == {
            i.image_id for r in first.regions for i in r.images
        }
        assert_no_leaks(sim)


async def test_every_image_is_tagged_with_its_content_digest_and_run() -> None:
    """Imports and copies alike carry aliasync:sha256 and aliasync:run."""
    async with Simulator(seed=52, profile="none") as sim:
        report = await run_import(sim, [BIOS], name="ipxe-tag", regions=REGIONS)
        digest = hashlib.sha256(BIOS.read_bytes()).hexdigest()
        for region in REGIONS:
            (image,) = images_named(sim, region, "ipxe-tag")
            assert image["tags"] == {"aliasync:sha256": digest, "aliasync:run": report.run_id}


async def test_a_rerun_only_adds_what_was_asked_publicity_and_shares() -> None:
    """Re-run with --public: only publishing calls; with a share: only sharing calls."""
    async with Simulator(seed=53, profile="none") as sim:
        await run_import(sim, [BIOS], name="ipxe-p", regions=REGIONS)
        before = len(mutating(sim))
        report = await run_import(sim, [BIOS], name="ipxe-p", regions=REGIONS, public=True)
        assert report.exit_code == 0, report.to_json()
        assert mutating(sim)[before:] == ["ecs:ModifyImageSharePermission"] * len(REGIONS)
        assert all(images_named(sim, r, "ipxe-p")[0]["public"] for r in REGIONS)
        await run_import(sim, [UEFI], name="ipxe-s", regions=REGIONS)
        before = len(mutating(sim))
        await run_import(sim, [UEFI], name="ipxe-s", regions=REGIONS, share_accounts=(ACCOUNT,))
        assert mutating(sim)[before:] == ["ecs:ModifyImageSharePermission"] * len(REGIONS)
        for region in REGIONS:
            assert images_named(sim, region, "ipxe-s-uefi-x86-64")[0]["shared_accounts"] == [
                ACCOUNT
            ]


async def test_extending_a_release_copies_from_the_regions_that_have_it() -> None:
    """More regions later: those reachable only by copy (or by relay, with nothing uploaded
    this time) copy from the earlier regions; nothing already there is touched."""
    async with Simulator(seed=54, profile="default") as sim:
        first = await run_import(sim, [BIOS], name="ipxe-x", regions=REGIONS)
        assert first.status == "success", first.to_json()
        old = {r: images_named(sim, r, "ipxe-x")[0]["id"] for r in REGIONS}
        report = await run_import(sim, [BIOS], name="ipxe-x", regions=REGIONS + MORE)
        assert_published(sim, report, [BIOS], name="ipxe-x", regions=REGIONS + MORE)
        strategies = {r.region: r.images[0].strategy for r in report.regions}
        assert {strategies[r] for r in REGIONS} == {"existing"}
        assert strategies["ap-northeast-1"] == "direct"  # an upload beats a copy there
        assert strategies["cn-zhangjiakou"] == "copy"
        sources = {r.images[0].source_region for r in report.regions if r.images[0].source_region}
        assert sources <= set(REGIONS + MORE)
        assert {r: images_named(sim, r, "ipxe-x")[0]["id"] for r in REGIONS} == old
        assert_no_leaks(sim)


async def test_same_name_other_content_fails_that_region_naming_both_digests(
    tmp_path: Path,
) -> None:
    """Another file under a published name: each region fails, saying both digests, and
    creates nothing; with --overwrite the new content replaces the old."""
    other = tmp_path / "other.usb"
    d.ipxe_bios_usb(other)
    with other.open("r+b") as f:
        f.seek(20000)
        f.write(b"a different build")
    new = hashlib.sha256(other.read_bytes()).hexdigest()
    old = hashlib.sha256(BIOS.read_bytes()).hexdigest()
    async with Simulator(seed=55, profile="none") as sim:
        await run_import(sim, [BIOS], name="ipxe-c", regions=REGIONS)
        before = len(mutating(sim))
        report = await run_import(sim, [other], name="ipxe-c", regions=REGIONS)
        assert report.exit_code == 1
        for result in report.regions:
            error = result.images[0].error or ""
            assert old in error and new in error and "--overwrite" in error
        assert mutating(sim)[before:] == []
        report = await run_import(sim, [other], name="ipxe-c", regions=REGIONS, overwrite=True)
        assert report.exit_code == 0, report.to_json()
        for region in REGIONS:
            (image,) = images_named(sim, region, "ipxe-c")
            assert image["tags"]["aliasync:sha256"] == new
        assert_no_leaks(sim)
