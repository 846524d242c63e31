"""Temporary buckets as a real release needs them: expiring, swept by age, emptied inside.

The client is outside the cloud: internal endpoints never answer it, and mainland buckets
refuse its data calls; a relay function empties those from inside their region.
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
import pytest

from aliasync.cloud._cloud import Cloud
from aliasync.cloud._endpoints import Endpoints
from aliasync.pipeline._cleanup import STALE_BUCKET_AGE
from aliasync.pipeline._options import ImportOptions
from aliasync.pipeline._regionplan import detect_strategy
from aliasync.pipeline._relaying import relay_limits, remove_bucket
from aliasync.pipeline._run import Run
from aliasync.sim import CallRecord, Simulator, profile
from aliasync.sim.oss._storage import assemble
from tests.clients import boto3_s3, fc_client, inside_proxy, put_object
from tests.importing import BIOS, assert_no_leaks, assert_published, run_import
from tests.sim.test_fc import create as create_function

pytestmark = pytest.mark.anyio

MiB = 2**20


async def _fill_from_inside(sim: Simulator, region: str, bucket: str) -> None:
    """An object and an unfinished multipart upload, written as a dead run's relay left them."""
    await put_object(sim, region, bucket, "aliasync/dead/disk.raw", b"x" * 1000)
    s3 = boto3_s3(sim, region, internal=True, proxy=inside_proxy(sim, region))
    await anyio.to_thread.run_sync(
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="aliasync/dead/half.raw")
    )


async def test_temporary_buckets_expire_objects_and_uploads_after_a_day(sim: Simulator) -> None:
    """Every bucket detection creates carries a one-day expiry and abort rule from the start."""
    cloud = await Cloud.open(Endpoints.from_dict(sim.endpoints))
    try:
        run = Run("rulescheck01", ImportOptions(), [], sim.account_id)
        for region in ("ap-southeast-1", "cn-hangzhou"):
            strategy, bucket, _ = await detect_strategy(cloud, run, region, None)
            assert bucket is not None and strategy in ("direct", "relay")
            (rule,) = sim.ctx.models["oss"].lifecycle(region, bucket)
            assert rule.enabled and rule.prefix == ""
            assert (rule.expiration_days, rule.abort_days) == (1, 1)
            await remove_bucket(cloud, run, region, bucket)
    finally:
        await cloud.aclose()
    assert_no_leaks(sim)


async def test_relay_run_from_outside_the_cloud_leaves_nothing(sim: Simulator) -> None:
    """A run with relay regions never knocks on an internal endpoint, and cleans up fully."""
    regions = ("ap-southeast-1", "cn-hangzhou", "cn-beijing")
    report = await run_import(sim, [BIOS], name="ipxe-inside", regions=regions)
    assert_published(sim, report, [BIOS], name="ipxe-inside", regions=regions)
    assert {r.strategy for r in report.regions} == {"direct", "relay"}
    assert not [h for h in sim.unresolved_hosts if "-internal" in h]
    internal = [r for r in sim.calls.records if r.service == "oss" and r.status == 0]
    assert internal == []  # no connection was dropped on the client
    cleanups = [r for r in sim.calls.records if r.action == "InvokeFunction"]
    assert len(cleanups) >= 4  # per relay region: one copy, one emptying
    assert_no_leaks(sim)


async def test_next_run_removes_a_crashed_runs_mainland_bucket() -> None:
    """A dead run's filled mainland bucket is emptied inside and deleted; a live run's is kept."""
    # Bucket ages are wall-clock time times the scale. At 100x a bucket made now stays
    # younger than STALE_BUCKET_AGE for 29 minutes of real time, longer than any test may run,
    # so the live one is young however slow the machine (at 1000x, an hour short of stale
    # was 3.6 real seconds).
    async with Simulator(seed=0, profile="none", time_scale=100.0) as sim:
        oss = sim.ctx.models["oss"]
        dead, live = "aliasync-tmp-deadbeef-cn-hangzhou", "aliasync-tmp-livebeef-cn-shanghai"
        await _fill_from_inside(sim, "cn-hangzhou", dead)
        await _fill_from_inside(sim, "cn-shanghai", live)  # just made: a run still going
        oss.backdate_bucket(dead, STALE_BUCKET_AGE + 3600)
        report = await run_import(sim, [BIOS], name="ipxe-sweep", regions=("ap-southeast-1",))
        assert report.status == "success"
        names = {b["name"] for b in oss.buckets()}
        assert dead not in names and live in names
        assert not [h for h in sim.unresolved_hosts if "-internal" in h]
        leaks = sim.leaks()
        assert [b["name"] for b in leaks["buckets"]] == [live]
        assert [u["bucket"] for u in leaks["multipart_uploads"]] == [live]
        assert leaks["functions"] == []  # the emptying function was removed too


async def test_a_bucket_written_again_after_it_was_emptied_is_emptied_again(
    sim: Simulator, tmp_path: Path
) -> None:
    """A killed session's relay still writing into a mainland bucket once cleanup emptied it:
    the bucket is emptied again and deleted, not left behind with an object in it."""
    region = "cn-hangzhou"
    late = tmp_path / "late"
    late.write_bytes(b"the last part of a relay whose caller was killed")
    oss = sim.ctx.models["oss"]
    cloud = await Cloud.open(Endpoints.from_dict(sim.endpoints))
    try:
        run = Run("latewriter01", ImportOptions(), [], sim.account_id)
        strategy, bucket, _ = await detect_strategy(cloud, run, region, None)
        assert strategy == "relay" and bucket is not None
        await _fill_from_inside(sim, region, bucket)
        written: list[CallRecord] = []

        def write_late(call: CallRecord) -> None:
            # Between the first emptying and the DeleteBucket after it, as a late writer would.
            if call.action == "InvokeFunction" and call.origin is None and not written:
                staged = assemble([str(late)], oss.new_path())
                oss.put_object(region, bucket, "aliasync/late/disk.raw", staged, {}, {})
                written.append(call)

        sim.calls.watchers.append(write_late)
        await remove_bucket(cloud, run, region, bucket)
        assert written
        assert sim.calls.count("InvokeFunction", region) == 2  # emptied twice
        assert not oss.bucket_exists(region, bucket)
        await cloud.fc.delete_function(region, run.functions[region])
    finally:
        await cloud.aclose()
    assert_no_leaks(sim)


def test_relay_is_sized_for_the_image() -> None:
    """Parts, memory and timeout grow with the image, within FC's and OSS's limits."""
    assert relay_limits(10 * MiB) == (8 * MiB, 512, 901)
    part, memory, timeout = relay_limits(2048 * 2**30)
    assert part == 210 * MiB and 2048 * 2**30 / part <= 10000
    assert memory % 64 == 0 and 2 * 4 * part / MiB < memory <= 32768
    assert timeout == 86400
    mid = relay_limits(100 * 2**30)
    assert 8 * MiB < mid[0] < part and 901 < mid[2] < 86400


async def test_two_runs_at_once_in_one_account_both_succeed_and_leave_nothing() -> None:
    """A second run starts while the first one's buckets are in use: its sweep sees them and
    leaves them alone, both runs publish everything, and neither leaves anything behind."""
    regions = ("ap-southeast-1", "cn-beijing", "cn-heyuan")
    slow_imports = profile("none").with_(import_base_seconds=2000.0)  # the first run lasts
    async with Simulator(seed=72, profile=slow_imports) as sim:
        oss = sim.ctx.models["oss"]
        seen: list[set[str]] = []  # temporary buckets existing at each ListBuckets answer
        first_importing = anyio.Event()

        def watch(call: CallRecord) -> None:
            if call.action == "ListBuckets":
                seen.append({b["name"] for b in oss.buckets()})
            if call.action == "ImportImage":
                first_importing.set()

        sim.calls.watchers.append(watch)
        reports = {}

        async def run(name: str) -> None:
            reports[name] = await run_import(sim, [BIOS], name=name, regions=regions)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "ipxe-first")
            await first_importing.wait()
            tg.start_soon(run, "ipxe-second")
        for name, report in reports.items():
            assert_published(sim, report, [BIOS], name=name, regions=regions)
        first = f"aliasync-tmp-{reports['ipxe-first'].run_id[:8]}-"
        assert any(any(b.startswith(first) for b in names) for names in seen[1:]), seen
        assert_no_leaks(sim)


async def test_cleanup_removes_a_dead_runs_relay_function_and_keeps_a_live_ones(
    sim: Simulator,
) -> None:
    """In a region it relayed to, cleanup removes relay functions whose run has no bucket there
    any more (a dead run's), and keeps one whose run's bucket is still there (a run going on)."""
    region = "cn-beijing"
    fc = fc_client(sim, region)
    await create_function(fc, "aliasync-relay-deadbeef")
    await create_function(fc, "aliasync-relay-livebeef")
    await put_object(sim, region, "aliasync-tmp-livebeef-cn-beijing", "aliasync/x", b"x")
    sim.mark_baseline()
    report = await run_import(sim, [BIOS], name="ipxe-fn", regions=("ap-southeast-1", region))
    assert report.status == "success"
    functions = {f["name"] for f in sim.ctx.models["fc"].functions() if f["region"] == region}
    assert functions == {"aliasync-relay-livebeef"}
    assert_no_leaks(sim)
