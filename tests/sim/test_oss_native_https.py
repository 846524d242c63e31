"""The native OSS API over HTTPS through the proxy, by the official SDKs as users run them.

``alibabacloud-oss-v2`` (its sync client and its asyncio one) and ``oss2`` keep their
defaults (``https://oss-<region>.aliyuncs.com``, V4 unless V1 is chosen) and get only what
``aliasync sim --env-out`` gives a user: the environment (``HTTPS_PROXY``,
``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``, the OSS keys). The requests-based clients read it
at every call; the asyncio client reads no proxy from it (aiohttp without ``trust_env``), so
it is handed ``HTTPS_PROXY`` as its ``proxy_host``, as the README says. Every operation runs
once per client, signature version and key kind (long-lived or STS), on one emulator.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import alibabacloud_oss_v2 as oss
import anyio
import anyio.to_thread
import oss2
import pytest

from aliasync.sim import Simulator
from tests.clients import (
    OssCall,
    inside_proxy,
    oss_v2_body,
    oss_v2_https,
    oss_v2_https_config,
    temporary_key,
    urlopen_https,
)
from tests.sim.test_oss_native_oss2 import check_every_operation, every_operation

pytestmark = pytest.mark.anyio

REGION = "eu-west-1"
KB = 1024
ODD = "dir/a b+c&d%e.raw"  # percent-encoded in paths and listings, raw in V1's resource
SIGNINGS = ["v4", "v1", "v4-sts", "v1-sts"]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    """One fault-free emulator for the module (each test uses buckets of its own)."""
    async with Simulator(seed=0, profile="none") as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def env_out(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of `set -a; . sim.env`: proxies, CA bundle, the account's keys."""
    for name, value in sim.client_env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(params=SIGNINGS)
def signing(request: pytest.FixtureRequest) -> str:
    """Which signature version, with the account key (from the environment) or an STS key."""
    return str(request.param)


async def service_error(call: Awaitable[Any]) -> Any:
    with pytest.raises(oss.exceptions.OperationError) as caught:
        await call
    error = caught.value.unwrap()
    assert isinstance(error, oss.exceptions.ServiceError)
    return error


def oss_schemes(sim: Simulator, since: int) -> set[str]:
    return {r.scheme for r in sim.calls.records[since:] if r.service == "oss"}


async def buckets_and_lifecycle(sim: Simulator, call: OssCall, prefix: str, signing: str) -> None:
    """PutBucket, GetBucketInfo/Location, ListBuckets paged by prefix, marker and max-keys,
    Put/GetBucketLifecycle (the asyncio client has no lifecycle call: the sync one's)."""
    names = [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    for name in names:
        await call("put_bucket", oss.PutBucketRequest(bucket=name))
    info = await call("get_bucket_info", oss.GetBucketInfoRequest(bucket=names[0]))
    assert (info.bucket_info.name, info.bucket_info.location) == (names[0], f"oss-{REGION}")
    location = await call("get_bucket_location", oss.GetBucketLocationRequest(bucket=names[1]))
    assert location.location == f"oss-{REGION}"
    first = await call("list_buckets", oss.ListBucketsRequest(prefix=f"{prefix}-", max_keys=2))
    assert [b.name for b in first.buckets] == names[:2]
    assert first.is_truncated and first.next_marker == names[1]
    assert {(b.region, b.location) for b in first.buckets} == {(REGION, f"oss-{REGION}")}
    rest = await call(
        "list_buckets",
        oss.ListBucketsRequest(prefix=f"{prefix}-", marker=first.next_marker, max_keys=2),
    )
    assert [b.name for b in rest.buckets] == names[2:] and not rest.is_truncated
    async with oss_v2_https(oss_v2_https_config(sim, signing, REGION), "sync") as sync:
        none = await service_error(
            sync("get_bucket_lifecycle", oss.GetBucketLifecycleRequest(bucket=names[0]))
        )
        assert (none.status_code, none.code) == (404, "NoSuchLifecycle")
        rule = oss.LifecycleRule(
            id="expire", prefix="", status="Enabled",
            expiration=oss.LifecycleRuleExpiration(days=1),
            abort_multipart_upload=oss.LifecycleRuleAbortMultipartUpload(days=1),
        )  # fmt: skip
        await sync("put_bucket_lifecycle", oss.PutBucketLifecycleRequest(
            bucket=names[0], lifecycle_configuration=oss.LifecycleConfiguration(rules=[rule]),
        ))  # fmt: skip
        got = await sync("get_bucket_lifecycle", oss.GetBucketLifecycleRequest(bucket=names[0]))
    (kept,) = got.lifecycle_configuration.rules
    assert (kept.id, kept.expiration.days, kept.abort_multipart_upload.days) == ("expire", 1, 1)
    for name in names:
        await call("delete_bucket", oss.DeleteBucketRequest(bucket=name))
    gone = await service_error(call("get_bucket_info", oss.GetBucketInfoRequest(bucket=names[0])))
    assert (gone.status_code, gone.code, gone.ec) == (404, "NoSuchBucket", "0015-00000101")


async def objects(call: OssCall, bucket: str) -> None:
    """Put/Get (whole and ranged)/Head/Copy/Delete objects, ListObjects and ListObjectsV2
    (``encoding-type=url``, which the SDK always asks for and decodes), DeleteMultipleObjects."""
    data = bytes(range(256)) * 40
    put = await call("put_object", oss.PutObjectRequest(
        bucket=bucket, key=ODD, body=data, metadata={"sha256": "abc"},
    ))  # fmt: skip
    assert put.etag.strip('"').lower() == hashlib.md5(data).hexdigest()
    whole = await call("get_object", oss.GetObjectRequest(bucket=bucket, key=ODD))
    assert await oss_v2_body(whole) == data and whole.metadata == {"sha256": "abc"}
    ranged = await call(
        "get_object", oss.GetObjectRequest(bucket=bucket, key=ODD, range_header="bytes=10-19")
    )
    assert await oss_v2_body(ranged) == data[10:20]
    assert ranged.content_range == f"bytes 10-19/{len(data)}"
    head = await call("head_object", oss.HeadObjectRequest(bucket=bucket, key=ODD))
    assert head.content_length == len(data) and head.object_type == "Normal"
    copied = await call(
        "copy_object", oss.CopyObjectRequest(bucket=bucket, key="copy/one", source_key=ODD)
    )
    assert copied.etag == put.etag
    await call("put_object", oss.PutObjectRequest(bucket=bucket, key="copy/two", body=b"2"))
    tree = await call("list_objects_v2", oss.ListObjectsV2Request(bucket=bucket, delimiter="/"))
    assert [p.prefix for p in tree.common_prefixes] == ["copy/", "dir/"]
    page = await call("list_objects_v2", oss.ListObjectsV2Request(bucket=bucket, max_keys=2))
    assert [o.key for o in page.contents] == ["copy/one", "copy/two"] and page.is_truncated
    more = await call("list_objects_v2", oss.ListObjectsV2Request(
        bucket=bucket, continuation_token=page.next_continuation_token,
    ))  # fmt: skip
    assert [o.key for o in more.contents] == [ODD]
    v1 = await call("list_objects", oss.ListObjectsRequest(bucket=bucket, marker="copy/two"))
    assert [o.key for o in v1.contents] == [ODD]
    await call("delete_object", oss.DeleteObjectRequest(bucket=bucket, key="copy/two"))
    deleted = await call("delete_multiple_objects", oss.DeleteMultipleObjectsRequest(
        bucket=bucket, objects=[oss.DeleteObject(key=k) for k in (ODD, "copy/one")],
    ))  # fmt: skip
    assert sorted(d.key for d in deleted.deleted_objects) == ["copy/one", ODD]
    missing = await service_error(
        call("head_object", oss.HeadObjectRequest(bucket=bucket, key=ODD))
    )
    assert (missing.status_code, missing.code) == (404, "NoSuchKey")


async def multipart(call: OssCall, bucket: str) -> None:
    """Initiate, UploadPart, ListParts, ListMultipartUploads, Complete, Abort."""
    key, parts = "big/disk image+1.raw", [b"a" * (100 * KB), b"b" * (100 * KB), b"tail"]
    started = await call(
        "initiate_multipart_upload", oss.InitiateMultipartUploadRequest(bucket=bucket, key=key)
    )
    spare = await call(
        "initiate_multipart_upload", oss.InitiateMultipartUploadRequest(bucket=bucket, key="big/x")
    )
    etags = []
    for number, body in enumerate(parts, 1):
        answer = await call("upload_part", oss.UploadPartRequest(
            bucket=bucket, key=key, upload_id=started.upload_id, part_number=number, body=body,
        ))  # fmt: skip
        etags.append(answer.etag)
    listed = await call(
        "list_parts", oss.ListPartsRequest(bucket=bucket, key=key, upload_id=started.upload_id)
    )
    assert [(p.part_number, p.size) for p in listed.parts] == [(1, 102400), (2, 102400), (3, 4)]
    uploads = await call(
        "list_multipart_uploads", oss.ListMultipartUploadsRequest(bucket=bucket, prefix="big/")
    )
    assert sorted(u.key for u in uploads.uploads) == ["big/disk image+1.raw", "big/x"]
    done = await call("complete_multipart_upload", oss.CompleteMultipartUploadRequest(
        bucket=bucket, key=key, upload_id=started.upload_id,
        complete_multipart_upload=oss.CompleteMultipartUpload(
            parts=[oss.UploadPart(part_number=n, etag=e) for n, e in enumerate(etags, 1)]
        ),
    ))  # fmt: skip
    assert done.key == key and done.etag.endswith('-3"')
    abort = oss.AbortMultipartUploadRequest(bucket=bucket, key="big/x", upload_id=spare.upload_id)
    await call("abort_multipart_upload", abort)
    again = await service_error(call("abort_multipart_upload", abort))
    assert (again.status_code, again.code) == (404, "NoSuchUpload")
    whole = await call("get_object", oss.GetObjectRequest(bucket=bucket, key=key))
    assert await oss_v2_body(whole) == b"".join(parts)
    await call("delete_object", oss.DeleteObjectRequest(bucket=bucket, key=key))


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_every_operation_with_alibabacloud_oss_v2(
    sim: Simulator, kind: str, signing: str
) -> None:
    """Every native operation the issue lists, by the v2 SDK over HTTPS, V1/V4, STS or not."""
    since = len(sim.calls.records)
    prefix = f"v2{kind}-{signing}"
    async with oss_v2_https(oss_v2_https_config(sim, signing, REGION), kind) as call:
        await buckets_and_lifecycle(sim, call, prefix, signing)
        await call("put_bucket", oss.PutBucketRequest(bucket=f"{prefix}-objects"))
        await objects(call, f"{prefix}-objects")
        await multipart(call, f"{prefix}-objects")
        await call("delete_bucket", oss.DeleteBucketRequest(bucket=f"{prefix}-objects"))
    assert oss_schemes(sim, since) == {"https"}
    assert not [b for b in sim.ctx.models["oss"].buckets() if b["name"].startswith(prefix)]
    assert sim.ctx.models["oss"].open_uploads() == []


def oss2_auth(sim: Simulator, signing: str, wrong_secret: bool = False) -> Any:
    """oss2's V1 or V4 auth: the environment's key, or a new STS key."""
    version = signing.split("-")[0]
    if signing.endswith("-sts"):
        key = temporary_key(sim)
        secret = "x" * 30 if wrong_secret else key.secret
        return oss2.StsAuth(key.access_key_id, secret, key.security_token, auth_version=version)
    if wrong_secret:
        wrong = oss2.credentials.StaticCredentialsProvider(
            os.environ["OSS_ACCESS_KEY_ID"], "x" * 30
        )
        return oss2.ProviderAuthV4(wrong) if version == "v4" else oss2.ProviderAuth(wrong)
    provider = oss2.credentials.EnvironmentVariableCredentialsProvider()
    return oss2.ProviderAuthV4(provider) if version == "v4" else oss2.ProviderAuth(provider)


def oss2_endpoint(signing: str) -> tuple[str, dict[str, str]]:
    """oss2 takes the endpoint's scheme as given; V4 also needs the region."""
    extra = {"region": REGION} if signing.startswith("v4") else {}
    return f"https://oss-{REGION}.aliyuncs.com", extra


async def test_every_operation_with_oss2(sim: Simulator, signing: str) -> None:
    """The same operations by oss2 over HTTPS (the proxy and CA bundle from the environment)."""
    since = len(sim.calls.records)
    endpoint, extra = oss2_endpoint(signing)
    auth = oss2_auth(sim, signing)
    name = f"o2-{signing}-every"
    bucket = oss2.Bucket(auth, endpoint, name, **extra)
    service = oss2.Service(auth, endpoint, **extra)
    seen = await anyio.to_thread.run_sync(every_operation, bucket, service)
    check_every_operation(sim, REGION, name, seen)
    assert oss_schemes(sim, since) == {"https"}


async def test_v2_presigned_urls_over_https_and_tampering(sim: Simulator, signing: str) -> None:
    """A v2 presigned https URL works from urllib; altered, or signed with a wrong secret or
    without its token, it is refused and writes nothing."""
    bucket = f"v2-signed-{signing}"
    async with oss_v2_https(oss_v2_https_config(sim, signing, REGION), "async") as call:
        await call("put_bucket", oss.PutBucketRequest(bucket=bucket))
        await call("put_object", oss.PutObjectRequest(bucket=bucket, key="a b/c", body=b"hi"))
        url = (await call("presign", oss.GetObjectRequest(bucket=bucket, key="a b/c"))).url
        put_url = (await call("presign", oss.PutObjectRequest(bucket=bucket, key="new"))).url
    assert url.startswith(f"https://{bucket}.oss-{REGION}.aliyuncs.com/a%20b/c?")
    assert await anyio.to_thread.run_sync(urlopen_https, sim, url) == (200, b"hi")
    for tampered in (url.replace("/a%20b/c", "/a%20b/d"), put_url.replace("/new", "/other")):
        status, body = await anyio.to_thread.run_sync(urlopen_https, sim, tampered)
        assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    wrong = oss_v2_https_config(sim, signing, REGION)
    real = wrong.credentials_provider.get_credentials()
    wrong.credentials_provider = oss.credentials.StaticCredentialsProvider(
        real.access_key_id, "x" * 30, real.security_token
    )
    async with oss_v2_https(wrong, "sync") as call:
        refused = await service_error(
            call("put_object", oss.PutObjectRequest(bucket=bucket, key="k", body=b"x"))
        )
    assert (refused.status_code, refused.code) == (403, "SignatureDoesNotMatch")
    if real.security_token:
        tokenless = oss_v2_https_config(sim, signing, REGION)
        tokenless.credentials_provider = oss.credentials.StaticCredentialsProvider(
            real.access_key_id, real.access_key_secret
        )
        async with oss_v2_https(tokenless, "async") as call:
            refused = await service_error(
                call("put_object", oss.PutObjectRequest(bucket=bucket, key="k", body=b"x"))
            )
        assert (refused.status_code, refused.code) == (403, "InvalidSecurityToken")
    async with oss_v2_https(oss_v2_https_config(sim, signing, REGION), "sync") as call:
        await call("delete_object", oss.DeleteObjectRequest(bucket=bucket, key="a b/c"))
        await call("delete_bucket", oss.DeleteBucketRequest(bucket=bucket))
    assert sim.ctx.models["oss"].object_info(REGION, bucket, "k") is None


async def test_oss2_signed_urls_over_https_and_tampering(sim: Simulator, signing: str) -> None:
    """oss2's https signed URL works from urllib; altered, or with a wrong secret, refused."""
    endpoint, extra = oss2_endpoint(signing)
    auth = oss2_auth(sim, signing)
    name = f"o2-{signing}-signed"

    def work() -> tuple[str, Any]:
        bucket = oss2.Bucket(auth, endpoint, name, **extra)
        bucket.create_bucket()
        bucket.put_object("a b", b"payload")
        url: str = bucket.sign_url("GET", "a b", 300)
        wrong = oss2.Bucket(oss2_auth(sim, signing, wrong_secret=True), endpoint, name, **extra)
        with pytest.raises(oss2.exceptions.OssError) as caught:
            wrong.put_object("other", b"x")
        return url, caught.value

    url, refused = await anyio.to_thread.run_sync(work)
    assert url.startswith(f"https://{name}.oss-{REGION}.aliyuncs.com/a%20b?")
    assert await anyio.to_thread.run_sync(urlopen_https, sim, url) == (200, b"payload")
    status, body = await anyio.to_thread.run_sync(
        urlopen_https, sim, url.replace("/a%20b", "/a%20c")
    )
    assert status == 403 and b"SignatureDoesNotMatch" in body
    assert (refused.status, refused.code) == (403, "SignatureDoesNotMatch")
    assert sim.ctx.models["oss"].object_info(REGION, name, "other") is None
    bucket = oss2.Bucket(auth, endpoint, name, **extra)
    await anyio.to_thread.run_sync(lambda: (bucket.delete_object("a b"), bucket.delete_bucket()))


async def test_hostnames_longer_than_a_certificate_common_name(sim: Simulator) -> None:
    """A 63-character bucket (its hostname is over 64 characters) works over TLS, publicly and
    through the internal endpoint from inside the region."""
    name = "a" * 55 + "-longest"  # 63 characters, OSS's maximum
    since = len(sim.calls.records)
    async with oss_v2_https(oss_v2_https_config(sim, "v4", REGION), "async") as call:
        await call("put_bucket", oss.PutBucketRequest(bucket=name))
        await call("put_object", oss.PutObjectRequest(bucket=name, key="k", body=b"long"))
    inside = oss_v2_https_config(sim, "v4", REGION)
    inside.use_internal_endpoint = True
    async with oss_v2_https(inside, "async", proxy=inside_proxy(sim, REGION)) as call:
        assert await oss_v2_body(
            await call("get_object", oss.GetObjectRequest(bucket=name, key="k"))
        )
        await call("delete_object", oss.DeleteObjectRequest(bucket=name, key="k"))
        await call("delete_bucket", oss.DeleteBucketRequest(bucket=name))
    seen = [(r.action, r.origin, r.scheme, r.status) for r in sim.calls.records[since:]]
    assert seen == [
        ("PutBucket", None, "https", 200), ("PutObject", None, "https", 200),
        ("GetObject", REGION, "https", 200), ("DeleteObject", REGION, "https", 204),
        ("DeleteBucket", REGION, "https", 204),
    ]  # fmt: skip
