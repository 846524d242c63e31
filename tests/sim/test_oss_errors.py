"""OSS emulator error answers and refusals, as the real clients (and raw requests) see them."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
from pathlib import Path
from typing import Any
from unittest import mock

import anyio
import anyio.to_thread
import boto3
import pytest
from aiohttp.test_utils import make_mocked_request
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ProxyConnectionError
from yarl import URL

from aliasync.sim import Clock, RegionMap, SimError, Simulator, profile
from aliasync.sim._context import SimContext
from aliasync.sim._faults import FaultEngine
from aliasync.sim._keys import KeyStore
from aliasync.sim._service import SimRequest
from aliasync.sim.oss import OssService
from tests.clients import boto3_s3, inside_proxy
from tests.sim.test_oss import REGION, fetch, s3_client

pytestmark = pytest.mark.anyio

MAINLAND = "cn-hangzhou"


class _ClaimedPayload(S3SigV4Auth):
    """SigV4 with a chosen ``x-amz-content-sha256`` value (botocore computes its own)."""

    def __init__(self, credentials: Credentials, region: str, claim: str) -> None:
        super().__init__(credentials, "s3", region)
        self._claim = claim

    def payload(self, request: AWSRequest) -> str:
        return self._claim


async def signed_raw(
    sim: Simulator,
    method: str,
    url: str,
    body: bytes,
    claim: str,
    headers: dict[str, str] | None = None,
    region: str = REGION,
) -> tuple[int, bytes, Any]:
    """Send a request signed by botocore's S3SigV4Auth with ``claim`` as the payload hash."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    credentials = Credentials(sim.access_key_id, sim.access_key_secret)
    _ClaimedPayload(credentials, region, claim).add_auth(request)
    return await fetch(
        sim, method, URL(url, encoded=True), data=body, headers=dict(request.headers.items())
    )


def xml_field(body: bytes, tag: str) -> str | None:
    match = re.search(rf"<{tag}>(.*?)</{tag}>".encode(), body)
    return match[1].decode() if match else None


def _client(sim: Simulator, region: str, addressing: str) -> Any:
    """A boto3 client that never retries, with the given addressing style."""
    config = BotoConfig(
        signature_version="s3v4",
        s3={"addressing_style": addressing},
        proxies={"http": sim.proxy_url},
        retries={"total_max_attempts": 1},
    )
    return boto3.client(
        "s3",
        endpoint_url=f"http://s3.oss-{region}.aliyuncs.com",
        region_name=region,
        aws_access_key_id=sim.access_key_id,
        aws_secret_access_key=sim.access_key_secret,
        config=config,
    )


@pytest.fixture(params=["boto3", "aiobotocore"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which client library drives the test."""
    return str(request.param)


async def make_bucket(sim: Simulator, name: str, region: str = REGION) -> None:
    async with s3_client(sim, "aiobotocore", region) as s3:  # a control call: public endpoint
        await s3("create_bucket", Bucket=name)


# --- bucket rules ----------------------------------------------------------------------------


async def test_bucket_name_and_ownership_errors(sim: Simulator, kind: str) -> None:
    """InvalidBucketName, BucketAlreadyExists (other region, other owner), AlreadyOwnedByYou."""
    sim.ctx.models["oss"].add_foreign_bucket("ap-southeast-1", "someone-elses")
    await make_bucket(sim, "sg-taken", "ap-southeast-1")
    async with s3_client(sim, kind) as s3:
        for name in ("Bad_Name", "ab", "-leading-dash"):
            error = await s3.error("create_bucket", Bucket=name)
            assert (error["Code"], error["Status"]) == ("InvalidBucketName", 400), name
        for name in ("sg-taken", "someone-elses"):
            error = await s3.error("create_bucket", Bucket=name)
            assert (error["Code"], error["Status"]) == ("BucketAlreadyExists", 409)
        await s3("create_bucket", Bucket="mine")
        error = await s3.error("create_bucket", Bucket="mine")
        assert (error["Code"], error["Status"]) == ("BucketAlreadyOwnedByYou", 409)
        error = await s3.error(
            "create_bucket",
            Bucket="elsewhere",
            CreateBucketConfiguration={"LocationConstraint": "cn-beijing"},
        )
        assert error["Code"] == "IllegalLocationConstraintException"
        error = await s3.error("list_objects_v2", Bucket="someone-elses")
        assert (error["Code"], error["Status"]) == ("AccessDenied", 403)
        error = await s3.error("put_object", Bucket="no-such-bucket", Key="k", Body=b"x")
        assert (error["Code"], error["Status"]) == ("NoSuchBucket", 404)
        assert error["BucketName"] == "no-such-bucket"


async def test_too_many_buckets(sim: Simulator) -> None:
    """The 101st bucket of a region is refused with TooManyBuckets; other regions still work."""
    model = sim.ctx.models["oss"]
    for i in range(100):
        model.create_bucket(REGION, f"bucket-{i:03d}", None)
    async with s3_client(sim, "aiobotocore") as s3:
        error = await s3.error("create_bucket", Bucket="one-too-many")
        assert (error["Code"], error["Status"]) == ("TooManyBuckets", 400)
    await make_bucket(sim, "one-too-many", "ap-southeast-1")


async def test_forbid_create_new_bucket(sim: Simulator, kind: str) -> None:
    """cn-zhangjiakou refuses CreateBucket with 403 ForbidCreateNewBucket (internal too)."""
    inside = inside_proxy(sim, "cn-zhangjiakou")
    for internal in (False, True):
        proxy = inside if internal else ""
        async with s3_client(sim, kind, "cn-zhangjiakou", internal, proxy=proxy) as s3:
            error = await s3.error("create_bucket", Bucket="zjk-bucket")
            assert (error["Code"], error["Status"]) == ("ForbidCreateNewBucket", 403)
            assert error["Message"] == "Creating new buckets is not allowed in this region."


async def test_bucket_not_empty(sim: Simulator, kind: str) -> None:
    """DeleteBucket is 409 BucketNotEmpty while an object or an open multipart upload remains."""
    async with s3_client(sim, kind) as s3:
        await s3("create_bucket", Bucket="not-empty")
        await s3("put_object", Bucket="not-empty", Key="k", Body=b"x")
        error = await s3.error("delete_bucket", Bucket="not-empty")
        assert (error["Code"], error["Status"]) == ("BucketNotEmpty", 409)
        await s3("delete_object", Bucket="not-empty", Key="k")
        upload = await s3("create_multipart_upload", Bucket="not-empty", Key="pending")
        error = await s3.error("delete_bucket", Bucket="not-empty")
        assert (error["Code"], error["Status"]) == ("BucketNotEmpty", 409)
        assert [u["upload_id"] for u in sim.leaks()["multipart_uploads"]] == [upload["UploadId"]]
        await s3(
            "abort_multipart_upload", Bucket="not-empty", Key="pending", UploadId=upload["UploadId"]
        )
        await s3("delete_bucket", Bucket="not-empty")
    assert sim.state()["oss"]["buckets"] == {}


async def test_wrong_region_endpoint_is_permanent_redirect(sim: Simulator) -> None:
    """Another region's endpoint gets 403 PermanentRedirect naming the bucket's endpoint."""
    await make_bucket(sim, "frankfurt")
    async with s3_client(sim, "boto3", "ap-southeast-1") as s3:
        error = await s3.error("list_objects_v2", Bucket="frankfurt")
        assert (error["Code"], error["Status"]) == ("PermanentRedirect", 403)
        assert error["Endpoint"] == f"oss-{REGION}.aliyuncs.com"
        assert (await s3.error("head_bucket", Bucket="frankfurt"))["Status"] == 403


# --- mainland public endpoints ---------------------------------------------------------------


async def test_mainland_public_endpoint_refuses_data_calls(sim: Simulator, kind: str) -> None:
    """Mainland public endpoint: bucket calls work, data calls get PublicEndpointForbidden."""
    async with (
        s3_client(sim, kind, MAINLAND) as public,
        s3_client(
            sim, kind, MAINLAND, internal=True, proxy=inside_proxy(sim, MAINLAND)
        ) as internal,
    ):
        await public("create_bucket", Bucket="hz-bucket")
        await public("head_bucket", Bucket="hz-bucket")
        for operation, params in [
            ("put_object", {"Key": "k", "Body": b"x"}),
            ("list_objects_v2", {}),
            ("create_multipart_upload", {"Key": "k"}),
        ]:
            error = await public.error(operation, Bucket="hz-bucket", **params)
            assert (error["Code"], error["Status"], error["EC"]) == (
                "PublicEndpointForbidden",
                400,
                "0048-00000401",
            )
            assert error["Headers"]["x-oss-ec"] == "0048-00000401"
        await internal("put_object", Bucket="hz-bucket", Key="k", Body=b"inside")
        _, body = await internal.get(Bucket="hz-bucket", Key="k")
        assert body == b"inside"
        await internal("delete_object", Bucket="hz-bucket", Key="k")
        await public("delete_bucket", Bucket="hz-bucket")


async def test_error_document_format(sim: Simulator) -> None:
    """Errors are S3 XML with Code, Message, RequestId (= header), HostId, EC; HEAD has no body."""
    await make_bucket(sim, "hz-format", MAINLAND)
    async with s3_client(sim, "boto3", MAINLAND) as s3:
        url = await s3.presign("get_object", Bucket="hz-format", Key="k")
    status, body, headers = await fetch(sim, "GET", url)
    assert status == 400 and headers["Content-Type"] == "application/xml"
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Error>')
    assert xml_field(body, "Code") == "PublicEndpointForbidden"
    assert xml_field(body, "EC") == "0048-00000401"
    assert (
        xml_field(body, "RequestId") == headers["x-oss-request-id"] == headers["x-amz-request-id"]
    )
    assert xml_field(body, "HostId") == f"hz-format.s3.oss-{MAINLAND}.aliyuncs.com"
    status, body, headers = await fetch(
        sim, "HEAD", url.replace("X-Amz-Signature=", "X-Amz-Signature=f")
    )
    assert (status, body) == (403, b"")
    assert headers["x-oss-request-id"]


# --- authentication --------------------------------------------------------------------------


async def test_wrong_secret_and_unknown_key(sim: Simulator, kind: str) -> None:
    """A wrong secret is SignatureDoesNotMatch; an unknown key ID is InvalidAccessKeyId."""
    async with s3_client(sim, kind, secret="not-the-secret") as s3:
        error = await s3.error("list_buckets")
        assert (error["Code"], error["Status"]) == ("SignatureDoesNotMatch", 403)
    stranger = boto3_s3(sim, REGION, key="LTAIunknownkey000000", secret="whatever")
    with pytest.raises(ClientError) as caught:
        await anyio.to_thread.run_sync(stranger.list_buckets)
    assert caught.value.response["Error"]["Code"] == "InvalidAccessKeyId"


async def test_anonymous_and_expired_requests(sim: Simulator) -> None:
    """Anonymous access is AccessDenied; an expired presigned URL is 'Request has expired.'."""
    await make_bucket(sim, "private")
    status, body, _ = await fetch(sim, "GET", f"http://private.s3.oss-{REGION}.aliyuncs.com/k")
    assert status == 403 and xml_field(body, "Code") == "AccessDenied"
    s3 = boto3_s3(sim, REGION)
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    with mock.patch("botocore.auth.get_current_datetime", return_value=past):
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": "private", "Key": "k"}, ExpiresIn=60
        )
    status, body, _ = await fetch(sim, "GET", url)
    assert status == 403
    assert (xml_field(body, "Code"), xml_field(body, "Message")) == (
        "AccessDenied",
        "Request has expired.",
    )


async def test_signature_v2_refused(sim: Simulator) -> None:
    """Signature V2 is refused: AuthorizationHeaderMalformed (header), InvalidArgument (query)."""
    await make_bucket(sim, "v2-bucket")
    url = f"http://v2-bucket.s3.oss-{REGION}.aliyuncs.com/k"
    v2_header = {"Authorization": f"AWS {sim.access_key_id}:c2lnbmF0dXJl"}
    status, body, _ = await fetch(sim, "GET", url, headers=v2_header)
    assert (status, xml_field(body, "Code")) == (400, "AuthorizationHeaderMalformed")
    query = f"?AWSAccessKeyId={sim.access_key_id}&Expires=4102444800&Signature=c2ln"
    status, body, _ = await fetch(sim, "GET", url + query)
    assert (status, xml_field(body, "Code")) == (400, "InvalidArgument")


async def test_sts_temporary_keys(sim: Simulator) -> None:
    """An STS key works with its token; without it or after expiry: InvalidSecurityToken."""
    await make_bucket(sim, "sts-bucket")
    sim.clock.pause()  # the live key's hour lasts for as long as the test
    now = sim.clock.now()
    live = sim.ctx.keys.issue_temporary("role/Relay", expires_at=now + 3600)
    dead = sim.ctx.keys.issue_temporary("role/Relay", expires_at=now - 1)
    good = boto3_s3(
        sim, REGION, key=live.access_key_id, secret=live.secret, token=live.security_token
    )
    await anyio.to_thread.run_sync(lambda: good.put_object(Bucket="sts-bucket", Key="k", Body=b"1"))
    for record, token in ((live, None), (dead, dead.security_token)):
        client = boto3_s3(sim, REGION, key=record.access_key_id, secret=record.secret, token=token)
        with pytest.raises(ClientError) as caught:
            await anyio.to_thread.run_sync(lambda c=client: c.list_objects_v2(Bucket="sts-bucket"))
        assert caught.value.response["Error"]["Code"] == "InvalidSecurityToken"


async def test_aws_chunked_upload_refused(sim: Simulator) -> None:
    """x-amz-content-sha256: STREAMING-…: 400 InvalidArgument with EC 0017-00000804."""
    await make_bucket(sim, "chunked")
    status, body, _ = await signed_raw(
        sim,
        "PUT",
        f"http://chunked.s3.oss-{REGION}.aliyuncs.com/object",
        b"5;chunk-signature=0\r\nhello\r\n0;chunk-signature=0\r\n\r\n",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        headers={"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "5"},
    )
    assert status == 400
    assert (xml_field(body, "Code"), xml_field(body, "EC")) == ("InvalidArgument", "0017-00000804")
    assert xml_field(body, "Message") == (
        "aws-chunked encoding is not supported with the specified x-amz-content-sha256 value."
    )
    assert sim.ctx.models["oss"].object_info(REGION, "chunked", "object") is None


async def test_body_integrity_checks(sim: Simulator) -> None:
    """A body differing from its signed SHA-256, Content-MD5 or CRC32 is refused, not stored."""
    await make_bucket(sim, "integrity")
    url = f"http://integrity.s3.oss-{REGION}.aliyuncs.com/object"
    other = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # of b""
    status, body, _ = await signed_raw(sim, "PUT", url, b"not empty", other)
    assert (status, xml_field(body, "Code")) == (400, "XAmzContentSHA256Mismatch")
    data = b"abc"
    for header, value in (
        ("Content-MD5", "AAAAAAAAAAAAAAAAAAAAAA=="),
        ("x-amz-checksum-crc32", "AAAAAA=="),
    ):
        status, body, _ = await signed_raw(
            sim, "PUT", url, data, hashlib.sha256(data).hexdigest(), headers={header: value}
        )
        assert (status, xml_field(body, "Code")) == (400, "BadDigest")
    assert sim.ctx.models["oss"].object_info(REGION, "integrity", "object") is None
    assert os.listdir(os.path.join(sim.ctx.data_dir, "oss")) == []


async def test_path_style_refused(sim: Simulator) -> None:
    """Path-style requests get 403 SecondLevelDomainForbidden (OSS is virtual-hosted only)."""
    await make_bucket(sim, "virtual-only")
    s3 = _client(sim, REGION, "path")
    with pytest.raises(ClientError) as caught:
        await anyio.to_thread.run_sync(lambda: s3.list_objects_v2(Bucket="virtual-only"))
    assert caught.value.response["Error"]["Code"] == "SecondLevelDomainForbidden"


async def test_unsupported_subresource(sim: Simulator) -> None:
    """Sub-resources the emulator lacks (here ?acl) answer 501 NotImplemented."""
    await make_bucket(sim, "acl-bucket")
    s3 = boto3_s3(sim, REGION)
    with pytest.raises(ClientError) as caught:
        await anyio.to_thread.run_sync(lambda: s3.get_bucket_acl(Bucket="acl-bucket"))
    assert caught.value.response["Error"]["Code"] == "NotImplemented"


# --- endpoints and transport -----------------------------------------------------------------


async def test_region_without_oss_is_unreachable(sim: Simulator) -> None:
    """An unknown region, or one without OSS, drops the connection like a missing DNS name."""
    regions = ["xx-nowhere-1", *[r.id for r in sim.ctx.regions if not r.oss][:1]]
    for region in regions:
        s3 = _client(sim, region, "virtual")
        with pytest.raises(ProxyConnectionError):
            await anyio.to_thread.run_sync(s3.list_buckets)


async def test_client_disconnect_mid_upload_leaves_nothing(sim: Simulator) -> None:
    """A PUT whose client vanishes mid-body stores nothing and leaves no staged file."""
    await make_bucket(sim, "partial")
    url = f"http://partial.s3.oss-{REGION}.aliyuncs.com/object"
    request = AWSRequest(method="PUT", url=url, headers={"Content-Length": "100000"})
    credentials = Credentials(sim.access_key_id, sim.access_key_secret)
    _ClaimedPayload(credentials, REGION, "UNSIGNED-PAYLOAD").add_auth(request)
    head = f"PUT {url} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
    host, port = sim.proxy_url.removeprefix("http://").rsplit(":", 1)
    staging = anyio.Path(sim.ctx.data_dir) / "oss"
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(f"{head}Host: partial.s3.oss-{REGION}.aliyuncs.com\r\n\r\n".encode())
        await stream.send(b"x" * 5000)
        with anyio.fail_after(30):  # until the emulator is storing the body: then vanish
            while not (await staging.exists() and [p async for p in staging.iterdir()]):  # noqa: ASYNC110
                await anyio.sleep(0.01)
    with anyio.fail_after(30):  # the emulator's state, not a duration
        while not any(c.action == "PutObject" for c in sim.calls.records):  # noqa: ASYNC110
            await anyio.sleep(0.01)
    assert [(c.action, c.status) for c in sim.calls.records][-1] == ("PutObject", 0)
    assert os.listdir(os.path.join(sim.ctx.data_dir, "oss")) == []
    assert sim.ctx.models["oss"].object_info(REGION, "partial", "object") is None


async def test_throttling_and_injected_errors_serialize_as_s3(tmp_path: Path) -> None:
    """Injected Throttling becomes 503 SlowDown; other injected errors keep code and status."""
    ctx = SimContext(
        Clock(1000.0),
        RegionMap.load(),
        KeyStore("LTAIexample", "secret"),
        FaultEngine(profile("none")),
        "1000000000000001",
        str(tmp_path),
    )
    service = OssService(ctx)
    host = f"b.s3.oss-{REGION}.aliyuncs.com"
    raw = make_mocked_request("GET", "/k", headers={"Host": host})
    request = SimRequest("GET", host, "/k", "", raw.headers, raw, request_id="RID-1")
    slow = service.error_response(request, SimError("Throttling", "Request was denied.", 400))
    assert slow.status == 503
    assert slow.headers["x-amz-request-id"] == slow.headers["x-oss-request-id"] == "RID-1"
    assert isinstance(slow.body, bytes)
    assert b"<Code>SlowDown</Code><Message>Please reduce your request rate.</Message>" in slow.body
    internal = service.error_response(request, SimError("InternalError", "boom", 500))
    assert internal.status == 500
    assert isinstance(internal.body, bytes) and b"<Code>InternalError</Code>" in internal.body
    assert ctx.models["oss"] is service.model
