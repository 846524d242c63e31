"""Issue 12's OSS rules, refused over the wire by the official clients.

Where the client stands (internal endpoints answer only inside their region), what OSS's S3
face offers (its documented subset, virtual-hosted only), and faults on both faces.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import alibabacloud_oss_v2 as oss
import alibabacloud_oss_v2.aio as oss_aio
import anyio.to_thread
import pytest

from aliasync.sim import PROFILES, Simulator, profile
from tests.clients import boto3_s3, inside_proxy, oss2_bucket, oss_v2, oss_v2_config
from tests.sim.test_core import BOTO_CONNECTION_ERRORS
from tests.sim.test_oss import s3_client

pytestmark = pytest.mark.anyio

REGION = "ap-southeast-1"
MAINLAND = "cn-shanghai"


async def test_internal_endpoints_do_not_answer_outside_the_region(sim: Simulator) -> None:
    """From the client, or a function elsewhere: no answer; from a function there: served."""
    outside = boto3_s3(sim, REGION, internal=True)
    with pytest.raises(BOTO_CONNECTION_ERRORS):
        await anyio.to_thread.run_sync(lambda: outside.create_bucket(Bucket="unreached"))
    elsewhere = boto3_s3(sim, REGION, internal=True, proxy=inside_proxy(sim, "eu-central-1"))
    with pytest.raises(BOTO_CONNECTION_ERRORS):
        await anyio.to_thread.run_sync(lambda: elsewhere.create_bucket(Bucket="unreached"))
    async with oss_v2(sim, REGION, internal=True) as native:
        with pytest.raises(oss.exceptions.OperationError) as caught:
            await native.put_bucket(oss.PutBucketRequest(bucket="unreached"))
    assert not isinstance(caught.value.unwrap(), oss.exceptions.ServiceError)  # no answer at all
    assert sim.ctx.models["oss"].buckets() == []
    assert set(sim.unresolved_hosts) == {
        f"unreached.s3.oss-{REGION}-internal.aliyuncs.com",
        f"unreached.oss-{REGION}-internal.aliyuncs.com",
    }
    inside = boto3_s3(sim, REGION, internal=True, proxy=inside_proxy(sim, REGION))
    await anyio.to_thread.run_sync(lambda: inside.create_bucket(Bucket="reached"))
    async with oss_v2(sim, REGION, internal=True, proxy=inside_proxy(sim, REGION)) as native:
        info = await native.get_bucket_info(oss.GetBucketInfoRequest(bucket="reached"))
    assert info.bucket_info.name == "reached"


async def test_s3_face_refuses_what_its_subset_lacks(sim: Simulator) -> None:
    """ListBuckets, ListMultipartUploads, tagging through S3: 400 NotImplemented, both clients."""
    for kind in ("boto3", "aiobotocore"):
        async with s3_client(sim, kind, REGION) as s3:
            await s3("create_bucket", Bucket=f"subset-{kind}")
            for operation, params in (
                ("list_buckets", {}),
                ("list_multipart_uploads", {"Bucket": f"subset-{kind}"}),
                ("get_bucket_tagging", {"Bucket": f"subset-{kind}"}),
            ):
                error = await s3.error(operation, **params)
                assert (error["Code"], error["Status"]) == ("NotImplemented", 400), operation
    refused = [r for r in sim.calls.records if r.error == "NotImplemented"]
    assert {r.action for r in refused} >= {"ListBuckets", "ListMultipartUploads"}


async def test_path_style_refused_on_both_faces(sim: Simulator) -> None:
    """A bucket in the path, S3 or native, GetBucketLocation too: SecondLevelDomainForbidden."""
    async with s3_client(sim, "boto3", REGION) as s3:
        await s3("create_bucket", Bucket="virtual-only")
        error = await s3.error("get_bucket_location", Bucket="virtual-only")
    assert (error["Code"], error["Status"]) == ("SecondLevelDomainForbidden", 403)
    config = oss_v2_config(sim, REGION, "v4", None, "", False)
    config.use_path_style = True
    async with oss_aio.AsyncClient(config) as native:
        with pytest.raises(oss.exceptions.OperationError) as caught:
            await native.get_bucket_location(oss.GetBucketLocationRequest(bucket="virtual-only"))
    refused = caught.value.unwrap()
    assert (refused.status_code, refused.code) == (403, "SecondLevelDomainForbidden")


async def test_mainland_bucket_control_through_the_public_endpoint(sim: Simulator) -> None:
    """Create, lifecycle, location and delete pass on a mainland public endpoint (oss2)."""

    def work() -> tuple[str, Any]:
        import oss2

        bucket = oss2_bucket(sim, MAINLAND, "sh-control")
        bucket.create_bucket()
        rule = oss2.models.LifecycleRule(
            "tmp", "", status="Enabled", expiration=oss2.models.LifecycleExpiration(days=1)
        )
        bucket.put_bucket_lifecycle(oss2.models.BucketLifecycle([rule]))
        location = bucket.get_bucket_location().location
        with pytest.raises(oss2.exceptions.OssError) as data:
            bucket.put_object("k", b"x")
        bucket.delete_bucket()
        return location, data.value

    location, refused = await anyio.to_thread.run_sync(work)
    assert location == f"oss-{MAINLAND}"
    assert (refused.status, refused.code) == (400, "PublicEndpointForbidden")
    assert sim.ctx.models["oss"].buckets() == []


async def test_faults_apply_to_the_native_face() -> None:
    """Injected 500/503/SlowDown/drops reach the native client as OSS answers them."""
    async with Simulator(seed=5, profile=PROFILES["none"].with_(transient_rate=1.0)) as sim:
        seen: set[str] = set()
        async with oss_v2(sim, REGION) as native:
            for _ in range(30):
                try:
                    await native.list_buckets(oss.ListBucketsRequest())
                except oss.exceptions.OperationError as exc:
                    inner = exc.unwrap()
                    seen.add(getattr(inner, "code", None) or "dropped")
    assert seen == {"InternalError", "ServiceUnavailable", "SlowDown", "dropped"}


async def test_native_presigned_download_is_cut_across_regions() -> None:
    """The cut-download fault hits native presigned GETs from another region's function too."""
    async with Simulator(seed=1, profile=profile("none").with_(download_failure_rate=1.0)) as sim:
        async with oss_v2(sim, REGION) as native:
            await native.put_bucket(oss.PutBucketRequest(bucket="cut-native"))
            await native.put_object(
                oss.PutObjectRequest(bucket="cut-native", key="d", body=b"z" * 600_000)
            )
            url = (await native.presign(oss.GetObjectRequest(bucket="cut-native", key="d"))).url
        headers = {"Proxy-Authorization": aiohttp.encode_basic_auth("fc-eu-central-1", "x")}
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, proxy=sim.proxy_url, headers=headers) as response,
        ):
            with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
                await response.read()
    assert [f.kind for f in sim.ctx.faults.injected] == ["download_cut"]
