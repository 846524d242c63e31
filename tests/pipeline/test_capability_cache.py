"""The capability cache: reused by the next run, and an entry gone stale (the region changed)
corrected by the run that meets it."""

from __future__ import annotations

from collections import Counter

import pytest

from aliasync.cloud._cloud import Cloud
from aliasync.cloud._endpoints import Endpoints
from aliasync.pipeline._state import CapabilityCache
from aliasync.sim import Simulator
from tests.importing import BIOS, assert_no_leaks, assert_published, run_import

pytestmark = pytest.mark.anyio

REGIONS = ("ap-southeast-1", "cn-beijing", "cn-heyuan", "cn-zhangjiakou")
DETECTED = {"ap-southeast-1": "direct", "cn-beijing": "relay", "cn-heyuan": "copy",
            "cn-zhangjiakou": "copy"}  # fmt: skip


async def cache(sim: Simulator) -> CapabilityCache:
    cloud = await Cloud.open(Endpoints.from_dict(sim.endpoints))
    try:
        return CapabilityCache.for_scope(cloud.cache_scope)
    finally:
        await cloud.aclose()


# What detecting a region's strategy calls: a probe bucket, its data access, FC.
DETECTING = ("CreateBucket", "PutBucketLifecycle", "ListObjectsV2", "DeleteBucket", "ListFunctions")


def calls(sim: Simulator, records: slice) -> Counter[tuple[str | None, str]]:
    """The importer's detecting calls (not its functions') per (region, action)."""
    return Counter(
        (c.region, c.action)
        for c in sim.calls.records[records]
        if c.origin is None and c.action in DETECTING
    )


async def test_the_next_run_reuses_the_detected_strategies() -> None:
    """The first run detects and saves every region's strategy; the second makes no probe
    bucket in the copy regions and no data-access probe in the relay region, and otherwise the
    same calls, with the same strategies."""
    async with Simulator(seed=81, profile="none") as sim:
        first = await run_import(sim, [BIOS], name="ipxe-c1", regions=REGIONS)
        assert_published(sim, first, [BIOS], name="ipxe-c1", regions=REGIONS)
        assert (await cache(sim)).load() == DETECTED
        before = len(sim.calls.records)
        second = await run_import(sim, [BIOS], name="ipxe-c2", regions=REGIONS)
        assert_published(sim, second, [BIOS], name="ipxe-c2", regions=REGIONS)
        assert {r.region: r.strategy for r in second.regions} == DETECTED
        saved = calls(sim, slice(before)) - calls(sim, slice(before, None))
        assert saved == Counter({
            ("cn-beijing", "ListObjectsV2"): 1,
            ("cn-heyuan", "CreateBucket"): 1, ("cn-heyuan", "PutBucketLifecycle"): 1,
            ("cn-heyuan", "ListObjectsV2"): 1, ("cn-heyuan", "DeleteBucket"): 1,
            ("cn-zhangjiakou", "CreateBucket"): 1,
        })  # fmt: skip
        assert not calls(sim, slice(before, None)) - calls(sim, slice(before))
        assert_no_leaks(sim)


async def test_stale_entries_are_corrected_by_the_run_that_meets_them() -> None:
    """Cached strategies no longer true: direct where no bucket may be created now, direct
    where public access is now refused, relay where FC is gone. The run still publishes
    everywhere, and the cache holds what the regions do now."""
    async with Simulator(seed=82, profile="none") as sim:
        stale = {"ap-southeast-1": "direct", "cn-zhangjiakou": "direct", "cn-beijing": "direct",
                 "cn-heyuan": "relay"}  # fmt: skip
        (await cache(sim)).save(stale)
        report = await run_import(sim, [BIOS], name="ipxe-st", regions=REGIONS)
        assert_published(sim, report, [BIOS], name="ipxe-st", regions=REGIONS)
        got = {r.region: {i.strategy for i in r.images} for r in report.regions}
        assert got == {"ap-southeast-1": {"direct"}, "cn-beijing": {"relay"},
                       "cn-heyuan": {"copy"}, "cn-zhangjiakou": {"copy"}}  # fmt: skip
        assert_no_leaks(sim)
        again = await run_import(sim, [BIOS], name="ipxe-st2", regions=REGIONS)
        assert_published(sim, again, [BIOS], name="ipxe-st2", regions=REGIONS)
        assert (await cache(sim)).load() == DETECTED
        assert_no_leaks(sim)
