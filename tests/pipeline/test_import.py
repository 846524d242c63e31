"""Full imports against the emulator, default fault profile on: outcomes in the cloud's state."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from alibabacloud_ecs20140526 import models as m

from aliasync import ConfigurationError, ImportReport
from aliasync.pipeline._state import state_dir
from aliasync.sim import FaultRule, Simulator, profile
from tests.clients import ecs_client, put_object
from tests.importing import (
    ARM64,
    BIOS,
    UEFI,
    assert_no_leaks,
    assert_published,
    images_named,
    rebuilt,
    run_import,
)

pytestmark = pytest.mark.anyio


def strategies(report: ImportReport) -> set[str]:
    return {image.strategy or "" for r in report.regions for image in r.images}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_full_run_publishes_every_image_everywhere(seed: int) -> None:
    """Every region ends with each image Available, correct, unique; nothing is leaked."""
    async with Simulator(seed=seed, profile="default") as sim:
        report = await run_import(sim, [BIOS, UEFI, ARM64], name="ipxe-test", public=True)
        assert_published(sim, report, [BIOS, UEFI, ARM64], name="ipxe-test", public=True)
        assert strategies(report) == {"direct", "relay", "copy"}
        assert_no_leaks(sim)


async def test_strategies_follow_region_behaviour() -> None:
    """Uncensored regions upload, censored ones with FC relay, the rest copy."""
    async with Simulator(seed=4, profile="none") as sim:
        regions = ("ap-southeast-1", "eu-central-1", "cn-beijing", "cn-guangzhou", "cn-zhangjiakou")
        report = await run_import(sim, [BIOS], name="ipxe-map", regions=regions)
        assert_published(sim, report, [BIOS], name="ipxe-map", regions=regions)
        by_region = {r.region: r.strategy for r in report.regions}
        assert by_region == {
            "ap-southeast-1": "direct",
            "eu-central-1": "direct",
            "cn-beijing": "relay",
            "cn-guangzhou": "copy",
            "cn-zhangjiakou": "copy",
        }
        assert_no_leaks(sim)


async def test_overwrite_replaces_images_and_leaves_no_orphan_snapshot(tmp_path: Path) -> None:
    """A second run of new builds with overwrite retires the old (public) images, deleting
    their snapshots; the same content again would be left alone (tests/pipeline/test_rerun.py)."""
    regions = ("ap-southeast-1", "cn-hangzhou", "cn-heyuan")
    new = rebuilt([BIOS, UEFI], tmp_path)
    async with Simulator(seed=5, profile="default") as sim:
        first = await run_import(sim, [BIOS, UEFI], name="ipxe-ow", regions=regions, public=True)
        assert first.status == "success", first.to_json()
        old = {r: images_named(sim, r, "ipxe-ow")[0]["id"] for r in regions}
        second = await run_import(sim, new, name="ipxe-ow", regions=regions, overwrite=True)
        assert_published(sim, second, new, name="ipxe-ow", regions=regions)
        for region in regions:
            assert images_named(sim, region, "ipxe-ow")[0]["id"] != old[region]
        assert_no_leaks(sim)


async def test_a_name_taken_by_another_tools_image_is_a_per_region_error() -> None:
    """An image of that name not made by aliasync (no digest tag): that region fails before
    any upload, saying so; the other region publishes; --overwrite would replace it."""
    regions = ("ap-southeast-1", "eu-west-1")
    async with Simulator(seed=6, profile="none") as sim:
        await put_object(sim, "ap-southeast-1", "theirs", "disk.raw", b"\0" * 4096)
        mapping = m.ImportImageRequestDiskDeviceMapping(
            ossbucket="theirs", ossobject="disk.raw", format="RAW", disk_image_size=1
        )
        await ecs_client(sim, "ap-southeast-1").import_image_async(
            m.ImportImageRequest(
                region_id="ap-southeast-1", image_name="ipxe-dup", disk_device_mapping=[mapping]
            )
        )
        uploads_before = sim.calls.count("PutObject") + sim.calls.count("UploadPart")
        report = await run_import(sim, [BIOS], name="ipxe-dup", regions=regions)
        results = {r.region: r for r in report.regions}
        assert results["ap-southeast-1"].status == "error"
        error = results["ap-southeast-1"].images[0].error or ""
        assert "already exists with other content" in error and "not made by aliasync" in error
        assert results["eu-west-1"].status == "success"
        assert report.exit_code == 1
        assert len(images_named(sim, "ap-southeast-1", "ipxe-dup")) == 1
        # Only eu-west-1 uploaded anything.
        uploads_after = sim.calls.count("PutObject") + sim.calls.count("UploadPart")
        assert uploads_after - uploads_before == 1
        leaks = sim.leaks()
        assert [b["name"] for b in leaks.pop("buckets")] == ["theirs"]  # the other tool's
        assert all(not v for v in leaks.values()), leaks


async def test_region_whose_imports_always_fail_gets_a_copy_instead() -> None:
    """Import tasks that always fail in one region: the image is copied there instead."""
    faults = profile("default").with_(
        rules=(FaultRule("model:import:ap-southeast-1", import_failure_rate=1.0),)
    )
    regions = ("ap-southeast-1", "ap-northeast-1", "cn-shanghai", "cn-nanjing")
    async with Simulator(seed=7, profile=faults) as sim:
        report = await run_import(sim, [BIOS], name="ipxe-fail", regions=regions)
        assert_published(sim, report, [BIOS], name="ipxe-fail", regions=regions)
        (failing,) = [r for r in report.regions if r.region == "ap-southeast-1"]
        assert failing.images[0].strategy == "copy"
        assert failing.images[0].source_region in regions
        assert sim.faults_injected()["counts"]["import_failed"] >= 3
        assert_no_leaks(sim)


async def test_region_that_always_fails_does_not_stop_the_others() -> None:
    """A region whose ECS API always fails: exit 1, the others done, temporaries removed."""
    faults = profile("default").with_(
        rules=(FaultRule("ecs:*:ap-southeast-1", transient_rate=1.0),)
    )
    regions = ("ap-southeast-1", "ap-northeast-1", "cn-shanghai", "cn-nanjing")
    async with Simulator(seed=7, profile=faults) as sim:
        report = await run_import(sim, [BIOS], name="ipxe-fail", regions=regions)
        results = {r.region: r for r in report.regions}
        assert results["ap-southeast-1"].status == "error"
        assert report.exit_code == 1
        others = [r for r in regions if r != "ap-southeast-1"]
        assert_published(
            sim,
            ImportReport(report.run_id, [results[r] for r in others]),
            [BIOS],
            name="ipxe-fail",
            regions=others,
        )
        assert images_named(sim, "ap-southeast-1", "ipxe-fail") == []
        assert_no_leaks(sim)


async def test_cancelling_a_run_removes_temporary_resources() -> None:
    """Cancelled mid-run (as Ctrl-C does) while its temporary buckets and a relay function
    exist, the importer still removes them all."""
    async with Simulator(seed=8, profile="default", time_scale=50.0) as sim:
        oss, fc = sim.ctx.models["oss"], sim.ctx.models["fc"]
        finished: list[ImportReport] = []

        async def run() -> None:
            finished.append(await run_import(sim, [BIOS, UEFI], name="ipxe-cancel"))

        async with anyio.create_task_group() as group:
            group.start_soon(run)
            with anyio.fail_after(120):  # waits on the emulator's state, not on a duration
                while not (oss.buckets() and fc.functions()):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            existing = (oss.buckets(), fc.functions())
            group.cancel_scope.cancel()
        assert not finished  # cancelled, not completed
        assert all(existing)  # there was something to remove
        leaks = sim.leaks()
        assert leaks["buckets"] == [] and leaks["functions"] == []
        assert leaks["multipart_uploads"] == []


async def test_no_uncensored_region_is_refused_before_anything_is_created() -> None:
    """Only censored regions selected: a clear error and no bucket or image left."""
    async with Simulator(seed=9, profile="none") as sim:
        with pytest.raises(ConfigurationError, match="uncensored"):
            await run_import(sim, [BIOS], name="ipxe-nope", regions=("cn-beijing", "cn-heyuan"))
        assert_no_leaks(sim)
        assert sim.ctx.models["ecs"].snapshot()["regions"] == {}


async def test_unknown_region_is_a_usage_error() -> None:
    """A region DescribeRegions does not know is refused before anything is created."""
    async with Simulator(seed=10, profile="none") as sim:
        with pytest.raises(ConfigurationError, match="unknown region"):
            await run_import(sim, [BIOS], regions=("xx-nowhere-1",))
        assert sim.calls.count("CreateBucket") == 0


LOSSY_ACTIONS = (
    *("ecs:ImportImage", "ecs:CopyImage", "ecs:DeleteImage", "ecs:ModifyImageAttribute"),
    *("ecs:ModifyImageSharePermission", "ecs:TagResources", "ecs:DeleteSnapshot"),
    *("oss:CreateBucket", "oss:DeleteBucket", "oss:PutObject", "oss:CreateMultipartUpload"),
    *("oss:UploadPart", "oss:CompleteMultipartUpload", "oss:DeleteObjects"),
    *("fc:CreateFunction", "fc:DeleteFunction", "fc:InvokeFunction"),
)
CAMPAIGN = {
    "harsh": profile("harsh"),
    "lost-responses": profile("none").with_(
        rules=tuple(FaultRule(f"{a}:*", lost_response_rate=0.3) for a in LOSSY_ACTIONS)
    ),
    "failed-imports-and-timeouts": profile("none").with_(
        import_failure_rate=0.3, function_timeout_rate=0.3, download_failure_rate=0.3
    ),
}


@pytest.mark.parametrize("scenario", sorted(CAMPAIGN))
async def test_fault_campaign_subset_loses_nothing(scenario: str) -> None:
    """Under harsh faults every image still lands once, correct, with nothing leaked."""
    regions = ("ap-southeast-1", "eu-central-1", "cn-beijing", "cn-shanghai", "cn-heyuan")
    async with Simulator(seed=21, profile=CAMPAIGN[scenario]) as sim:
        report = await run_import(sim, [BIOS, UEFI], name="ipxe-campaign", regions=regions)
        assert_published(sim, report, [BIOS, UEFI], name="ipxe-campaign", regions=regions)
        assert_no_leaks(sim)
        assert sim.ctx.faults.injected, "the scenario injected no fault"


async def test_a_region_without_oss_is_given_up_on_quickly_and_not_remembered() -> None:
    """No OSS endpoint: three quick CreateBucket tries, then copy; the guess is not cached."""
    async with Simulator(seed=12, profile="none") as sim:
        report = await run_import(
            sim,
            [BIOS],
            name="ipxe-probe",
            regions=("ap-southeast-1", "ap-southeast-8", "cn-heyuan"),
        )
        assert report.status == "success", report.to_dict()
        strategies = {r.region: r.strategy for r in report.regions}
        assert strategies == {
            "ap-southeast-1": "direct",
            "ap-southeast-8": "copy",
            "cn-heyuan": "copy",
        }
        knocks = sum(n for host, n in sim.unresolved_hosts.items() if "ap-southeast-8" in host)
        # Three tries; aiohttp sends each twice (it repeats an idempotent request once when
        # the connection drops). The full retry policy makes twenty.
        assert 1 <= knocks <= 6, sim.unresolved_hosts
        assert_no_leaks(sim)
    cache = json.loads((state_dir() / "capabilities.json").read_text())
    (remembered,) = cache.values()
    assert remembered == {"ap-southeast-1": "direct", "cn-heyuan": "copy"}
