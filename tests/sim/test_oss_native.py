"""The native OSS API driven by ``alibabacloud-oss-v2`` (asyncio client), V1 and V4, with STS.

Every native operation runs once per (signature version, long-lived or STS key); presigned
URLs are fetched with plain urllib through the proxy, and tampered requests are refused.
"""

from __future__ import annotations

import datetime
import hashlib
import urllib.error
import urllib.request
from typing import Any
from unittest import mock

import alibabacloud_oss_v2 as oss
import alibabacloud_oss_v2.aio as oss_aio
import anyio
import anyio.to_thread
import pytest

from aliasync.sim import Simulator
from tests.clients import boto3_s3, oss_v2, oss_v2_config, temporary_key

pytestmark = pytest.mark.anyio

REGION = "eu-central-1"
KB = 1024


@pytest.fixture(params=["v4", "v1", "v4-sts", "v1-sts"])
def signing(request: pytest.FixtureRequest) -> str:
    """Which signature version, with the account key or an STS key."""
    return str(request.param)


def _key(sim: Simulator, signing: str) -> Any:
    return temporary_key(sim) if signing.endswith("-sts") else None


def _version(signing: str) -> str:
    return signing.split("-")[0]


async def _service_error(call: Any) -> Any:
    with pytest.raises(oss.exceptions.OperationError) as caught:
        await call
    error = caught.value.unwrap()
    assert isinstance(error, oss.exceptions.ServiceError)
    return error


def urlopen(sim: Simulator, url: str, method: str = "GET") -> tuple[int, bytes]:
    """Fetch a URL with urllib through the emulator's proxy (status, body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": sim.proxy_url}))
    try:
        with opener.open(urllib.request.Request(url, method=method), timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_buckets(sim: Simulator, signing: str) -> None:
    """PutBucket, GetBucketInfo/Location, ListBuckets (prefix, marker, max-keys), DeleteBucket."""
    key, version = _key(sim, signing), _version(signing)
    async with oss_v2(sim, REGION, version=version, key=key) as client:
        for name in ("nat-a", "nat-b", "nat-c", "other-x"):
            await client.put_bucket(oss.PutBucketRequest(bucket=name))
        info = await client.get_bucket_info(oss.GetBucketInfoRequest(bucket="nat-a"))
        assert info.bucket_info.name == "nat-a"
        assert info.bucket_info.location == f"oss-{REGION}"
        assert info.bucket_info.acl == "private"
        location = await client.get_bucket_location(oss.GetBucketLocationRequest(bucket="nat-b"))
        assert location.location == f"oss-{REGION}"
        first = await client.list_buckets(oss.ListBucketsRequest(prefix="nat-", max_keys=2))
        assert [b.name for b in first.buckets] == ["nat-a", "nat-b"]
        assert first.is_truncated and first.next_marker == "nat-b"
        assert {(b.region, b.location) for b in first.buckets} == {(REGION, f"oss-{REGION}")}
        rest = await client.list_buckets(
            oss.ListBucketsRequest(prefix="nat-", marker=first.next_marker, max_keys=2)
        )
        assert [b.name for b in rest.buckets] == ["nat-c"] and not rest.is_truncated
        everything = await client.list_buckets(oss.ListBucketsRequest())
        assert {b.name for b in everything.buckets} == {"nat-a", "nat-b", "nat-c", "other-x"}
        assert everything.buckets[0].creation_date is not None
        for name in ("nat-a", "nat-b", "nat-c", "other-x"):
            await client.delete_bucket(oss.DeleteBucketRequest(bucket=name))
        gone = await _service_error(
            client.get_bucket_info(oss.GetBucketInfoRequest(bucket="nat-a"))
        )
    assert (gone.status_code, gone.code, gone.ec) == (404, "NoSuchBucket", "0015-00000101")
    assert sim.ctx.models["oss"].buckets() == []


async def test_objects(sim: Simulator, signing: str) -> None:
    """PutObject, GetObject (whole and ranged), HeadObject, CopyObject, ListObjects(V2), deletes."""
    key, version = _key(sim, signing), _version(signing)
    data = bytes(range(256)) * 40
    odd = "dir/a b+c&d%e.raw"
    async with oss_v2(sim, REGION, version=version, key=key) as client:
        await client.put_bucket(oss.PutBucketRequest(bucket="objs"))
        put = await client.put_object(
            oss.PutObjectRequest(bucket="objs", key=odd, body=data, metadata={"sha256": "abc"})
        )
        assert put.etag.strip('"').lower() == hashlib.md5(data).hexdigest()
        whole = await client.get_object(oss.GetObjectRequest(bucket="objs", key=odd))
        assert await whole.body.read() == data and whole.metadata == {"sha256": "abc"}
        part = await client.get_object(
            oss.GetObjectRequest(bucket="objs", key=odd, range_header="bytes=10-19")
        )
        assert await part.body.read() == data[10:20]
        assert part.content_range == f"bytes 10-19/{len(data)}"
        head = await client.head_object(oss.HeadObjectRequest(bucket="objs", key=odd))
        assert head.content_length == len(data) and head.object_type == "Normal"
        copied = await client.copy_object(
            oss.CopyObjectRequest(bucket="objs", key="copy/one", source_key=odd)
        )
        assert copied.etag == put.etag
        await client.put_object(oss.PutObjectRequest(bucket="objs", key="copy/two", body=b"2"))
        v2 = await client.list_objects_v2(
            oss.ListObjectsV2Request(bucket="objs", delimiter="/", prefix="")
        )
        assert [p.prefix for p in v2.common_prefixes] == ["copy/", "dir/"]
        v2 = await client.list_objects_v2(oss.ListObjectsV2Request(bucket="objs", max_keys=2))
        assert [o.key for o in v2.contents] == ["copy/one", "copy/two"] and v2.is_truncated
        more = await client.list_objects_v2(
            oss.ListObjectsV2Request(bucket="objs", continuation_token=v2.next_continuation_token)
        )
        assert [o.key for o in more.contents] == [odd]  # decoded from encoding-type=url
        v1 = await client.list_objects(oss.ListObjectsRequest(bucket="objs", marker="copy/two"))
        assert [o.key for o in v1.contents] == [odd]
        await client.delete_object(oss.DeleteObjectRequest(bucket="objs", key="copy/two"))
        deleted = await client.delete_multiple_objects(
            oss.DeleteMultipleObjectsRequest(
                bucket="objs", objects=[oss.DeleteObject(key=k) for k in (odd, "copy/one")]
            )
        )
        assert sorted(d.key for d in deleted.deleted_objects) == ["copy/one", odd]
        missing = await _service_error(
            client.head_object(oss.HeadObjectRequest(bucket="objs", key=odd))
        )
        assert (missing.status_code, missing.code, missing.ec) == (
            404,
            "NoSuchKey",
            "0026-00000001",
        )
        await client.delete_bucket(oss.DeleteBucketRequest(bucket="objs"))


async def test_multipart(sim: Simulator, signing: str) -> None:
    """Initiate, UploadPart, ListParts, ListMultipartUploads, Complete and Abort."""
    key, version = _key(sim, signing), _version(signing)
    parts = [b"a" * (100 * KB), b"b" * (100 * KB), b"tail"]
    async with oss_v2(sim, REGION, version=version, key=key) as client:
        await client.put_bucket(oss.PutBucketRequest(bucket="multi"))
        started = await client.initiate_multipart_upload(
            oss.InitiateMultipartUploadRequest(bucket="multi", key="big/disk image.raw")
        )
        spare = await client.initiate_multipart_upload(
            oss.InitiateMultipartUploadRequest(bucket="multi", key="big/spare")
        )
        etags = []
        for number, body in enumerate(parts, 1):
            answer = await client.upload_part(
                oss.UploadPartRequest(
                    bucket="multi", key="big/disk image.raw", upload_id=started.upload_id,
                    part_number=number, body=body,
                )
            )  # fmt: skip
            etags.append(answer.etag)
        listed = await client.list_parts(
            oss.ListPartsRequest(
                bucket="multi", key="big/disk image.raw", upload_id=started.upload_id
            )
        )
        assert [(p.part_number, p.size) for p in listed.parts] == [(1, 102400), (2, 102400), (3, 4)]
        uploads = await client.list_multipart_uploads(
            oss.ListMultipartUploadsRequest(bucket="multi", prefix="big/")
        )
        assert sorted(u.key for u in uploads.uploads) == ["big/disk image.raw", "big/spare"]
        done = await client.complete_multipart_upload(
            oss.CompleteMultipartUploadRequest(
                bucket="multi", key="big/disk image.raw", upload_id=started.upload_id,
                complete_multipart_upload=oss.CompleteMultipartUpload(
                    parts=[oss.UploadPart(part_number=n, etag=e) for n, e in enumerate(etags, 1)]
                ),
            )
        )  # fmt: skip
        assert done.key == "big/disk image.raw" and done.etag.endswith('-3"')
        await client.abort_multipart_upload(
            oss.AbortMultipartUploadRequest(
                bucket="multi", key="big/spare", upload_id=spare.upload_id
            )
        )
        again = await _service_error(
            client.abort_multipart_upload(
                oss.AbortMultipartUploadRequest(
                    bucket="multi", key="big/spare", upload_id=spare.upload_id
                )
            )
        )
        assert again.code == "NoSuchUpload"
        body = await client.get_object(
            oss.GetObjectRequest(bucket="multi", key="big/disk image.raw")
        )
        assert await body.body.read() == b"".join(parts)
    assert sim.ctx.models["oss"].open_uploads() == []


async def test_lifecycle(sim: Simulator, signing: str) -> None:
    """Put/GetBucketLifecycle: rules round-trip; none is 404 NoSuchLifecycle."""
    key, version = _key(sim, signing), _version(signing)

    def work() -> tuple[Any, Any]:
        config = oss_v2_config(sim, REGION, version, key, "", False)
        config.proxy_host = {"http": sim.proxy_url}  # the sync client takes a dict
        client = oss.Client(config)
        client.put_bucket(oss.PutBucketRequest(bucket="rules"))
        with pytest.raises(oss.exceptions.OperationError) as none:
            client.get_bucket_lifecycle(oss.GetBucketLifecycleRequest(bucket="rules"))
        rule = oss.LifecycleRule(
            id="expire-and-abort", prefix="", status="Enabled",
            expiration=oss.LifecycleRuleExpiration(days=1),
            abort_multipart_upload=oss.LifecycleRuleAbortMultipartUpload(days=1),
        )  # fmt: skip
        client.put_bucket_lifecycle(
            oss.PutBucketLifecycleRequest(
                bucket="rules", lifecycle_configuration=oss.LifecycleConfiguration(rules=[rule])
            )
        )
        got = client.get_bucket_lifecycle(oss.GetBucketLifecycleRequest(bucket="rules"))
        return none.value.unwrap(), got

    missing, got = await anyio.to_thread.run_sync(work)
    assert (missing.status_code, missing.code) == (404, "NoSuchLifecycle")
    (rule,) = got.lifecycle_configuration.rules
    assert (rule.id, rule.status, rule.expiration.days, rule.abort_multipart_upload.days) == (
        "expire-and-abort", "Enabled", 1, 1,
    )  # fmt: skip


async def test_presigned_urls_by_urllib(sim: Simulator, signing: str) -> None:
    """A presigned GET works from plain urllib; a tampered or expired one is refused."""
    key, version = _key(sim, signing), _version(signing)
    async with oss_v2(sim, REGION, version=version, key=key) as client:
        await client.put_bucket(oss.PutBucketRequest(bucket="shared"))
        await client.put_object(oss.PutObjectRequest(bucket="shared", key="a b/c", body=b"hi"))
        url = (await client.presign(oss.GetObjectRequest(bucket="shared", key="a b/c"))).url
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
        with mock.patch("alibabacloud_oss_v2.signer.v4.datetime") as clock:
            clock.datetime.now.return_value = past  # signed two hours ago, for one minute
            clock.timezone, clock.timedelta = datetime.timezone, datetime.timedelta
            old = await client.presign(
                oss.GetObjectRequest(bucket="shared", key="a b/c"),
                expiration=past + datetime.timedelta(minutes=1),
            )
    assert await anyio.to_thread.run_sync(urlopen, sim, url) == (200, b"hi")
    other = url.replace("/a%20b/c", "/a%20b/d")
    status, body = await anyio.to_thread.run_sync(urlopen, sim, other)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    status, body = await anyio.to_thread.run_sync(urlopen, sim, old.url)
    assert status == 403 and b"Request has expired" in body


async def test_tampered_and_wrong_keys_refused(sim: Simulator, signing: str) -> None:
    """A wrong secret, a stranger's key or a stolen token's mismatch: no bucket is created."""
    version = _version(signing)
    key = _key(sim, signing)

    class Wrong:
        access_key_id = key.access_key_id if key else sim.access_key_id
        secret = "x" * 30
        security_token = getattr(key, "security_token", None)

    async with oss_v2(sim, REGION, version=version, key=Wrong()) as client:
        error = await _service_error(client.put_bucket(oss.PutBucketRequest(bucket="nope")))
    assert (error.status_code, error.code) == (403, "SignatureDoesNotMatch")
    if key is not None:

        class NoToken:
            access_key_id, secret, security_token = key.access_key_id, key.secret, None

        async with oss_v2(sim, REGION, version=version, key=NoToken()) as client:
            error = await _service_error(client.put_bucket(oss.PutBucketRequest(bucket="nope")))
        assert (error.status_code, error.code) == (403, "InvalidSecurityToken")
    assert sim.ctx.models["oss"].buckets() == []


async def test_one_store_behind_both_faces(sim: Simulator) -> None:
    """An object written through the S3 face is read natively, and the other way round."""
    s3 = boto3_s3(sim, REGION)
    await anyio.to_thread.run_sync(lambda: s3.create_bucket(Bucket="both"))
    await anyio.to_thread.run_sync(
        lambda: s3.put_object(Bucket="both", Key="k", Body=b"via s3", Metadata={"m": "1"})
    )
    async with oss_v2(sim, REGION) as client:
        got = await client.get_object(oss.GetObjectRequest(bucket="both", key="k"))
        assert await got.body.read() == b"via s3" and got.metadata == {"m": "1"}
        await client.put_object(oss.PutObjectRequest(bucket="both", key="n", body=b"native"))
    body = await anyio.to_thread.run_sync(
        lambda: s3.get_object(Bucket="both", Key="n")["Body"].read()
    )
    assert body == b"native"


async def test_mainland_public_endpoint(sim: Simulator) -> None:
    """Natively too: control operations pass on a mainland public endpoint, data ones do not."""
    async with oss_v2(sim, "cn-hangzhou") as client:
        await client.put_bucket(oss.PutBucketRequest(bucket="hz-native"))
        info = await client.get_bucket_info(oss.GetBucketInfoRequest(bucket="hz-native"))
        assert info.bucket_info.location == "oss-cn-hangzhou"
        refused = await _service_error(
            client.put_object(oss.PutObjectRequest(bucket="hz-native", key="k", body=b"x"))
        )
        listing = await _service_error(
            client.list_objects_v2(oss.ListObjectsV2Request(bucket="hz-native"))
        )
        await client.delete_bucket(oss.DeleteBucketRequest(bucket="hz-native"))
    for error in (refused, listing):
        assert (error.status_code, error.code, error.ec) == (
            400, "PublicEndpointForbidden", "0048-00000401",
        )  # fmt: skip


async def test_signing_region_must_match(sim: Simulator) -> None:
    """A V4 signature scoped to another region is refused with OSS's EC."""
    config = oss_v2_config(sim, REGION, "v4", None, "", False)
    config.region = "ap-southeast-1"  # signed for a region the host is not
    async with oss_aio.AsyncClient(config) as client:
        error = await _service_error(client.put_bucket(oss.PutBucketRequest(bucket="scoped")))
    assert (error.status_code, error.code, error.ec) == (400, "InvalidArgument", "0002-00000226")


async def test_bucket_acl_and_existence(sim: Simulator, signing: str) -> None:
    """Get/PutBucketAcl; is_bucket_exist (which asks for the ACL) tells ours from none."""
    key, version = _key(sim, signing), _version(signing)
    async with oss_v2(sim, REGION, version=version, key=key) as client:
        await client.put_bucket(oss.PutBucketRequest(bucket="acl-native", acl="public-read"))
        got = await client.get_bucket_acl(oss.GetBucketAclRequest(bucket="acl-native"))
        assert got.acl == "public-read"
        await client.put_bucket_acl(oss.PutBucketAclRequest(bucket="acl-native", acl="private"))
        got = await client.get_bucket_acl(oss.GetBucketAclRequest(bucket="acl-native"))
        assert got.acl == "private"
        assert await client.is_bucket_exist("acl-native") is True
        assert await client.is_bucket_exist("acl-nobody") is False
        await client.delete_bucket(oss.DeleteBucketRequest(bucket="acl-native"))
