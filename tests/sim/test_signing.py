"""Signature verifiers proven against requests the official SDKs really send over loopback.

A tiny aiohttp server on 127.0.0.1 records each request exactly as it arrived (method, raw path,
raw query, headers, body); the tests then verify the captured requests, and tampered copies.
The server runs in its own thread and event loop so sync (boto3) and async clients both work.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from aiohttp import web
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client as FcClient
from alibabacloud_tea_openapi.models import Config as TeaConfig
from botocore.config import Config as BotoConfig
from darabonba.runtime import RuntimeOptions
from multidict import CIMultiDict
from yarl import URL

from aliasync.sim import _signing as sig
from aliasync.sim._keys import KeyRecord, KeyStore

AKID = "LTAI5tSigningTest0001"
SECRET = "Sup3r-Secret-Value-0123456789abcdefXYZ"
REGION = "oss-cn-hangzhou"
S3_ENDPOINT = f"http://s3.{REGION}.aliyuncs.com"
BUCKET = "my-bucket"

_INITIATE = (
    b'<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult>'
    b"<Bucket>my-bucket</Bucket><Key>k</Key><UploadId>upload-1</UploadId>"
    b"</InitiateMultipartUploadResult>"
)


@dataclass(frozen=True)
class Captured:
    """One request as it arrived on the wire."""

    method: str
    path: str
    query_string: str
    headers: CIMultiDict[str]
    body: bytes


class CaptureServer:
    """Records requests and answers just enough for the SDKs to carry on."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def take(self) -> list[Captured]:
        """The requests captured since the last call."""
        taken, self.requests = self.requests, []
        return taken

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        # Through a proxy the request line is absolute-form; encoded=True keeps it byte-exact.
        url = URL(request.raw_path, encoded=True)
        self.requests.append(
            Captured(
                request.method,
                url.raw_path,
                url.raw_query_string,
                CIMultiDict(request.headers),
                body,
            )
        )
        if request.host.endswith(".aliyuncs.com"):  # S3 virtual host, via the proxy
            xml = _INITIATE if request.method == "POST" and "uploads" in request.query else b""
            return web.Response(body=xml, headers={"ETag": '"etag-1"'})
        return web.json_response({"RequestId": "req-1"})


@pytest.fixture(scope="module")
def server() -> Iterator[CaptureServer]:
    """A capture server on a free loopback port for the whole module."""
    srv = CaptureServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _fresh_capture(request: pytest.FixtureRequest) -> None:
    """Each test starts with an empty capture list, even after a failed test."""
    if "server" in request.fixturenames:
        request.getfixturevalue("server").take()


@pytest.fixture
def store() -> KeyStore:
    """The account's key store with one long-lived key."""
    return KeyStore(AKID, SECRET)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an async SDK call to completion in this thread."""
    return asyncio.run(coro)


def verify(req: Captured, lookup: sig.Lookup, now: float | None = None) -> KeyRecord:
    """Verify with the verifier auth_scheme picks, as a service would."""
    scheme = sig.auth_scheme(req.query_string, req.headers)
    if scheme == "acs3":
        return sig.verify_acs3(
            req.method, req.path, req.query_string, req.headers, req.body, lookup, now
        )
    if scheme == "rpc_v1":
        return sig.verify_rpc_v1(req.method, req.query_string, lookup, now)
    return sig.verify_sigv4(req.method, req.path, req.query_string, req.headers, lookup, now)


def _client_signature(req: Captured) -> str:
    auth = req.headers.get("Authorization", "")
    if "Signature=" in auth:
        return auth.rsplit("Signature=", 1)[1]
    for key, value in URL("/?" + req.query_string, encoded=True).query.items():
        if key in ("Signature", "X-Amz-Signature"):
            return value
    return auth.partition(":")[2]  # S3 V2 "AWS AKID:signature"


def fails(
    exc: type[sig.AuthFailure],
    req: Captured,
    lookup: sig.Lookup,
    now: float | None = None,
    hidden: tuple[str, ...] = (),
) -> sig.AuthFailure:
    """Assert verification raises ``exc`` and its text leaks no secret, token or signature."""
    with pytest.raises(exc) as info:
        verify(req, lookup, now)
    text = f"{info.value} {info.value.reason!r} {info.value.args!r}"
    for secret in (SECRET, "WRONG-secret", _client_signature(req), *hidden):
        assert not secret or secret not in text
    return info.value


def set_header(req: Captured, name: str, value: str | None) -> Captured:
    """A copy of ``req`` with one header replaced (or removed when value is None)."""
    headers = CIMultiDict(req.headers)
    headers.popall(name, None)
    if value is not None:
        headers[name] = value
    return replace(req, headers=headers)


def wrong_secret(store: KeyStore) -> sig.Lookup:
    """A lookup that knows the key IDs but holds the wrong secrets."""

    def lookup(akid: str) -> KeyRecord | None:
        record = store.lookup(akid)
        return None if record is None else replace(record, secret="WRONG-secret")

    return lookup


def unknown(_: str) -> KeyRecord | None:
    """A lookup that knows no key at all."""
    return None


def ecs_client(server: CaptureServer, **config: Any) -> EcsClient:
    """The official ECS client pointed at the capture server."""
    config.setdefault("access_key_id", AKID)
    config.setdefault("access_key_secret", SECRET)
    return EcsClient(TeaConfig(endpoint=f"127.0.0.1:{server.port}", protocol="http", **config))


async def ecs_calls(client: EcsClient) -> None:
    """DescribeRegions, and DescribeImages with spaces, '*' and '/' in its values."""
    await client.describe_regions_async(ecs_models.DescribeRegionsRequest(accept_language="en-US"))
    await client.describe_images_async(
        ecs_models.DescribeImagesRequest(
            region_id="cn-hangzhou",
            image_name="my image *v1/x~y",
            status="Available,Creating",
            page_size=50,
        )
    )


def s3_config(server: CaptureServer, **extra: Any) -> BotoConfig:
    """botocore config: SigV4, virtual hosts, plain bodies, everything via the proxy."""
    extra.setdefault("request_checksum_calculation", "when_required")
    extra.setdefault("response_checksum_validation", "when_required")
    extra.setdefault("signature_version", "s3v4")
    return BotoConfig(
        proxies={"http": server.proxy},
        s3={"addressing_style": "virtual"},
        retries={"total_max_attempts": 1},
        **extra,
    )


def boto3_s3(
    server: CaptureServer,
    token: str | None = None,
    akid: str = AKID,
    secret: str = SECRET,
    **extra: Any,
) -> Any:
    """A boto3 S3 client for the OSS S3 endpoint, through the capture server."""
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=S3_ENDPOINT,
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=s3_config(server, **extra),
    )


# --- ACS3-HMAC-SHA256 -----------------------------------------------------------------------


def test_acs3_ecs_requests_verify(server: CaptureServer, store: KeyStore) -> None:
    """ECS client V3 requests (query with spaces and '*') verify and return the root key."""
    run(ecs_calls(ecs_client(server)))
    regions, images = server.take()
    assert regions.method == "POST" and regions.path == "/" and regions.body == b""
    # The SDK urlencode()s ('+' for space) and aiohttp's yarl then un-escapes '*' and '/', so
    # the wire form differs from the signed form: the verifier must decode and re-encode.
    assert "ImageName=my+image+*v1/x~y" in images.query_string
    for req in (regions, images):
        assert sig.auth_scheme(req.query_string, req.headers) == "acs3"
        assert verify(req, store.lookup) is store.root


def test_acs3_rejections(server: CaptureServer, store: KeyStore) -> None:
    """Wrong secret, unknown key, tampered query and signed header, skew and no auth all fail."""
    run(ecs_calls(ecs_client(server)))
    _, images = server.take()
    fails(sig.SignatureMismatch, images, wrong_secret(store))
    err = fails(sig.UnknownAccessKey, images, unknown)
    assert AKID in err.reason
    tampered = replace(
        images, query_string=images.query_string.replace("PageSize=50", "PageSize=51")
    )
    fails(sig.SignatureMismatch, tampered, store.lookup)
    fails(sig.SignatureMismatch, set_header(images, "x-acs-action", "DeleteImage"), store.lookup)
    fails(sig.MissingAuth, set_header(images, "x-acs-date", None), store.lookup)
    fails(sig.ExpiredRequest, images, store.lookup, now=time.time() + 3600)
    fails(sig.MalformedAuth, set_header(images, "Authorization", "ACS3-HMAC-SM3 x"), store.lookup)
    bare = set_header(images, "Authorization", None)
    with pytest.raises(sig.MissingAuth):
        sig.verify_acs3("POST", "/", bare.query_string, bare.headers, b"", store.lookup)
    # Headers that are not signed may change freely.
    assert verify(set_header(images, "X-Forwarded-For", "10.0.0.1"), store.lookup) is store.root


def test_acs3_fc_requests_verify(server: CaptureServer, store: KeyStore) -> None:
    """FC create (JSON), invoke (raw bytes), list (query) and delete requests all verify."""
    fc = FcClient(
        TeaConfig(
            access_key_id=AKID,
            access_key_secret=SECRET,
            endpoint=f"127.0.0.1:{server.port}",
            protocol="http",
        )
    )
    code = fc_models.InputCodeLocation(zip_file="UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==")
    create = fc_models.CreateFunctionInput(
        function_name="relay-fn",
        runtime="python3.10",
        handler="index.handler",
        code=code,
        memory_size=128,
        environment_variables={"GREETING": "hello world & more"},
    )
    event = bytes(range(256)) + b" raw event"

    async def calls() -> None:
        await fc.create_function_async(fc_models.CreateFunctionRequest(body=create))
        await fc.invoke_function_with_options_async(
            "relay-fn",
            # The async client awaits body.read(), so a BytesIO fails there: pass bytes.
            fc_models.InvokeFunctionRequest(body=event, qualifier="LATEST"),
            fc_models.InvokeFunctionHeaders(x_fc_invocation_type="Sync", x_fc_log_type="Tail"),
            RuntimeOptions(),
        )
        await fc.list_functions_async(
            fc_models.ListFunctionsRequest(prefix="relay fn*", limit=10, next_token="a+b/c=")
        )
        await fc.delete_function_async("relay-fn")

    run(calls())
    created, invoked, listed, deleted = server.take()
    assert created.headers["content-type"].startswith("application/json")
    assert invoked.headers["x-fc-log-type"] == "Tail"
    assert invoked.body == event and invoked.path == "/2023-03-30/functions/relay-fn/invocations"
    assert listed.method == "GET" and "prefix=relay+fn*" in listed.query_string
    assert deleted.method == "DELETE"
    for req in (created, invoked, listed, deleted):
        assert verify(req, store.lookup) is store.root
    # The signature covers x-acs-content-sha256, and the body must match that claim.
    fails(
        sig.SignatureMismatch,
        replace(created, body=created.body.replace(b"128", b"256")),
        store.lookup,
    )
    fails(sig.SignatureMismatch, replace(invoked, body=invoked.body + b"!"), store.lookup)
    fails(sig.SignatureMismatch, set_header(invoked, "x-fc-invocation-type", "Async"), store.lookup)
    fails(
        sig.SignatureMismatch,
        replace(invoked, path="/2023-03-30/functions/other/invocations"),
        store.lookup,
    )


def test_acs3_sts_token_rules(server: CaptureServer, store: KeyStore) -> None:
    """STS keys verify with their token; a missing, wrong or unexpected token is refused."""
    temp = store.issue_temporary("role/AliyunECSImageImportDefaultRole", expires_at=1e12)
    assert temp.security_token is not None
    sts = {"access_key_id": temp.access_key_id, "access_key_secret": temp.secret}
    run(ecs_calls(ecs_client(server, security_token=temp.security_token, **sts)))
    good = server.take()[1]
    assert good.headers["x-acs-security-token"] == temp.security_token
    assert verify(good, store.lookup) is temp
    hide = (temp.secret, temp.security_token)
    fails(
        sig.SignatureMismatch,
        set_header(good, "x-acs-security-token", "CAISforged"),
        store.lookup,
        hidden=hide,
    )
    run(ecs_calls(ecs_client(server, security_token="CAISwrong", **sts)))
    fails(sig.InvalidSecurityToken, server.take()[1], store.lookup, hidden=hide)
    run(ecs_calls(ecs_client(server, **sts)))  # the STS key, signed without its token
    fails(sig.InvalidSecurityToken, server.take()[1], store.lookup, hidden=hide)
    run(ecs_calls(ecs_client(server, security_token=temp.security_token)))  # root + a token
    fails(sig.InvalidSecurityToken, server.take()[1], store.lookup, hidden=hide)


# --- RPC V1 ---------------------------------------------------------------------------------


def test_rpc_v1_ecs_requests_verify(server: CaptureServer, store: KeyStore) -> None:
    """ECS client with signature_algorithm='v2' sends RPC V1 HMAC-SHA1, which verifies."""
    run(ecs_calls(ecs_client(server, signature_algorithm="v2")))
    regions, images = server.take()
    assert "Authorization" not in images.headers
    assert "SignatureMethod=HMAC-SHA1" in images.query_string
    assert "ImageName=my+image+*v1/x~y" in images.query_string
    for req in (regions, images):
        assert sig.auth_scheme(req.query_string, req.headers) == "rpc_v1"
        assert verify(req, store.lookup) is store.root


def test_rpc_v1_rejections(server: CaptureServer, store: KeyStore) -> None:
    """RPC V1: wrong secret, unknown key, tampered value, skew, STS rules and no auth fail."""
    run(ecs_calls(ecs_client(server, signature_algorithm="v2")))
    _, images = server.take()
    fails(sig.SignatureMismatch, images, wrong_secret(store))
    fails(sig.UnknownAccessKey, images, unknown)
    tampered = images.query_string.replace("RegionId=cn-hangzhou", "RegionId=cn-beijing")
    assert tampered != images.query_string
    fails(sig.SignatureMismatch, replace(images, query_string=tampered), store.lookup)
    fails(sig.SignatureMismatch, replace(images, method="GET"), store.lookup)
    fails(sig.ExpiredRequest, images, store.lookup, now=time.time() - 3600)
    with pytest.raises(sig.MissingAuth):
        sig.verify_rpc_v1("POST", "Action=DescribeRegions&Version=2014-05-26", store.lookup)

    temp = store.issue_temporary("role/x", expires_at=1e12)
    sts = {"access_key_id": temp.access_key_id, "access_key_secret": temp.secret}
    run(
        ecs_calls(
            ecs_client(server, signature_algorithm="v2", security_token=temp.security_token, **sts)
        )
    )
    with_token = server.take()[1]
    assert "SecurityToken=" in with_token.query_string
    assert verify(with_token, store.lookup) is temp
    run(ecs_calls(ecs_client(server, signature_algorithm="v2", **sts)))
    assert temp.security_token is not None
    fails(sig.InvalidSecurityToken, server.take()[1], store.lookup, hidden=(temp.security_token,))


# --- S3 SigV4, header form ------------------------------------------------------------------


def s3_calls(client: Any) -> None:
    """PutObject, GetObject, ListObjectsV2 and a whole multipart upload with boto3."""
    key = "dir with spaces/disk image*1~+.raw"
    client.put_object(Bucket=BUCKET, Key=key, Body=b"hello oss")
    client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.list_objects_v2(Bucket=BUCKET, Prefix="dir with spaces/")
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    part = client.upload_part(
        Bucket=BUCKET, Key=key, PartNumber=1, UploadId=upload, Body=b"x" * 1000
    )
    parts = [{"ETag": part["ETag"], "PartNumber": 1}]
    client.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    client.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload)


def test_sigv4_boto3_requests_verify(server: CaptureServer, store: KeyStore) -> None:
    """boto3 s3v4 header-signed requests (virtual host, absolute-form via proxy) verify."""
    s3_calls(boto3_s3(server))
    reqs = server.take()
    assert len(reqs) == 7
    put, _, listed, *_ = reqs
    assert put.headers["Host"] == f"{BUCKET}.s3.{REGION}.aliyuncs.com"
    assert put.path == "/dir%20with%20spaces/disk%20image%2A1~%2B.raw"
    assert "prefix=dir%20with%20spaces%2F" in listed.query_string
    for req in reqs:
        assert sig.auth_scheme(req.query_string, req.headers) == "sigv4_header"
        assert verify(req, store.lookup) is store.root
    # The body hash is the caller's job: the claim is the real hash of what was sent.
    assert sig.payload_hash_claim(put.headers) == hashlib.sha256(b"hello oss").hexdigest()
    assert sig.payload_hash_claim(put.headers) != hashlib.sha256(b"hello oss!").hexdigest()
    assert sig.payload_hash_claim(set_header(put, "x-amz-content-sha256", None).headers) is None


def test_sigv4_default_checksums_over_http_verify(server: CaptureServer, store: KeyStore) -> None:
    """boto3's default config over http adds a signed x-amz-checksum-crc32; it still verifies."""
    client = boto3_s3(
        server,
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
    )
    client.put_object(Bucket=BUCKET, Key="k", Body=b"data")
    (put,) = server.take()
    assert "x-amz-checksum-crc32" in put.headers
    assert verify(put, store.lookup) is store.root
    fails(sig.SignatureMismatch, set_header(put, "x-amz-checksum-crc32", "AAAAAA=="), store.lookup)


def test_sigv4_rejections(server: CaptureServer, store: KeyStore) -> None:
    """SigV4 header form: wrong secret, unknown key, tampering, skew, chunked and V2 fail."""
    client = boto3_s3(server)
    client.list_objects_v2(Bucket=BUCKET, Prefix="dir with spaces/")
    client.put_object(Bucket=BUCKET, Key="k", Body=b"data")
    listed, put = server.take()
    fails(sig.SignatureMismatch, listed, wrong_secret(store))
    fails(sig.UnknownAccessKey, listed, unknown)
    other_prefix = listed.query_string.replace("spaces", "tabs")
    fails(sig.SignatureMismatch, replace(listed, query_string=other_prefix), store.lookup)
    fails(
        sig.SignatureMismatch,
        set_header(listed, "Host", f"other.s3.{REGION}.aliyuncs.com"),
        store.lookup,
    )
    fails(sig.SignatureMismatch, replace(put, path="/k2"), store.lookup)
    fails(sig.SignatureMismatch, set_header(put, "x-amz-content-sha256", "0" * 64), store.lookup)
    fails(sig.ExpiredRequest, listed, store.lookup, now=time.time() + 1000)
    chunked = set_header(put, "x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    fails(sig.ChunkedUploadRefused, chunked, store.lookup)
    fails(sig.MalformedAuth, set_header(put, "x-amz-content-sha256", "not-a-hash"), store.lookup)
    fails(sig.MissingAuth, set_header(put, "x-amz-content-sha256", None), store.lookup)
    fails(sig.MissingAuth, set_header(put, "Authorization", None), store.lookup)
    assert (
        sig.auth_scheme(put.query_string, set_header(put, "Authorization", None).headers) == "none"
    )
    assert verify(set_header(put, "User-Agent", "curl/8"), store.lookup) is store.root

    boto3_s3(server, signature_version="s3").put_object(Bucket=BUCKET, Key="k", Body=b"v2")
    (v2,) = server.take()
    assert v2.headers["Authorization"].startswith(f"AWS {AKID}:")
    fails(sig.MalformedAuth, v2, store.lookup)


def test_sigv4_aiobotocore_requests_verify(server: CaptureServer, store: KeyStore) -> None:
    """aiobotocore (aiohttp transport) put/get/list/multipart requests verify."""

    async def calls() -> None:
        config = AioConfig(
            proxies={"http": server.proxy},
            s3={"addressing_style": "virtual"},
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = get_session()
        async with session.create_client(
            "s3",
            region_name=REGION,
            endpoint_url=S3_ENDPOINT,
            aws_access_key_id=AKID,
            aws_secret_access_key=SECRET,
            config=config,
        ) as s3:
            key = "images/disk one*.qcow2"
            await s3.put_object(Bucket=BUCKET, Key=key, Body=b"qcow")
            await (await s3.get_object(Bucket=BUCKET, Key=key))["Body"].read()
            await s3.list_objects_v2(Bucket=BUCKET, Prefix="images/disk one")
            upload = (await s3.create_multipart_upload(Bucket=BUCKET, Key=key))["UploadId"]
            await s3.upload_part(Bucket=BUCKET, Key=key, PartNumber=2, UploadId=upload, Body=b"p")
            await s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload)

    run(calls())
    reqs = server.take()
    assert len(reqs) == 6
    for req in reqs:
        assert verify(req, store.lookup) is store.root
    fails(sig.SignatureMismatch, reqs[0], wrong_secret(store))


def test_sigv4_https_default_sends_chunked_which_is_refused(store: KeyStore) -> None:
    """boto3's defaults over https send an aws-chunked body, and the verifier refuses it."""
    seen: list[Any] = []

    class Stop(Exception):
        pass

    def grab(request: Any, **_: Any) -> None:
        seen.append(request)
        raise Stop

    client = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=S3_ENDPOINT.replace("http:", "https:"),
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        config=BotoConfig(s3={"addressing_style": "virtual"}, signature_version="s3v4"),
    )
    client.meta.events.register("before-send.s3.PutObject", grab)
    with pytest.raises(Stop):
        client.put_object(Bucket=BUCKET, Key="k", Body=b"data")
    headers = CIMultiDict(
        (k, v.decode() if isinstance(v, bytes) else v) for k, v in seen[0].headers.items()
    )
    assert headers["x-amz-content-sha256"].startswith("STREAMING-")
    with pytest.raises(sig.ChunkedUploadRefused):
        sig.verify_sigv4("PUT", "/k", "", headers, store.lookup)


# --- S3 SigV4, presigned query form ---------------------------------------------------------


async def fetch(server: CaptureServer, method: str, url: str, body: bytes = b"") -> None:
    """Use a presigned URL with plain aiohttp, through the proxy."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=body, proxy=server.proxy) as resp,
    ):
        await resp.read()


def test_sigv4_presigned_urls_verify(server: CaptureServer, store: KeyStore) -> None:
    """Presigned GET and PUT URLs fetched by aiohttp verify; expired or tampered ones fail."""
    client = boto3_s3(server)
    key = "dir with spaces/obj*.raw"
    get_url = client.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=60
    )
    put_url = client.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=60
    )
    run(fetch(server, "GET", get_url))
    run(fetch(server, "PUT", put_url, b"uploaded by url"))
    got, put = server.take()
    assert put.body == b"uploaded by url"
    for req in (got, put):
        assert sig.auth_scheme(req.query_string, req.headers) == "sigv4_query"
        assert verify(req, store.lookup) is store.root
    assert sig.payload_hash_claim(put.headers) is None
    fails(sig.SignatureMismatch, got, wrong_secret(store))
    fails(sig.UnknownAccessKey, got, unknown)
    longer = got.query_string.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    fails(sig.SignatureMismatch, replace(got, query_string=longer), store.lookup)
    fails(sig.SignatureMismatch, replace(got, method="DELETE"), store.lookup)
    fails(sig.SignatureMismatch, set_header(got, "Host", "evil.example.com"), store.lookup)
    fails(sig.ExpiredRequest, got, store.lookup, now=time.time() + 61)
    fails(sig.ExpiredRequest, got, store.lookup, now=time.time() - 3600)
    both = set_header(got, "Authorization", "AWS4-HMAC-SHA256 Credential=x")
    fails(sig.MalformedAuth, both, store.lookup)
    too_long = got.query_string.replace("X-Amz-Expires=60", "X-Amz-Expires=604801")
    fails(sig.MalformedAuth, replace(got, query_string=too_long), store.lookup)
    chunked = set_header(put, "x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    fails(sig.ChunkedUploadRefused, chunked, store.lookup)


def test_sigv4_presigned_expiry_and_sts(server: CaptureServer, store: KeyStore) -> None:
    """A 1-second URL expires; an STS presigned URL carries and needs its token."""
    client = boto3_s3(server)
    run(
        fetch(
            server,
            "GET",
            client.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": "k"}, ExpiresIn=1
            ),
        )
    )
    (short,) = server.take()
    # X-Amz-Date has whole seconds, so pin "now" rather than race the wall clock.
    amz_date = URL("/?" + short.query_string, encoded=True).query["X-Amz-Date"]
    signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    assert verify(short, store.lookup, now=signed_at + 1) is store.root
    fails(sig.ExpiredRequest, short, store.lookup, now=signed_at + 2)

    temp = store.issue_temporary("role/r", expires_at=1e12)
    assert temp.security_token is not None
    sts = boto3_s3(server, token=temp.security_token, akid=temp.access_key_id, secret=temp.secret)
    run(
        fetch(
            server,
            "GET",
            sts.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k"}),
        )
    )
    sts.put_object(Bucket=BUCKET, Key="k", Body=b"sts")
    presigned, header = server.take()
    assert "X-Amz-Security-Token=" in presigned.query_string
    assert header.headers["x-amz-security-token"] == temp.security_token
    for req in (presigned, header):
        assert verify(req, store.lookup) is temp
    unsigned = boto3_s3(server, akid=temp.access_key_id, secret=temp.secret)
    unsigned.put_object(Bucket=BUCKET, Key="k", Body=b"sts")
    fails(
        sig.InvalidSecurityToken,
        server.take()[0],
        store.lookup,
        hidden=(temp.security_token, temp.secret),
    )

    v2 = boto3_s3(server, signature_version="s3")
    v2_url = v2.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k"})
    run(fetch(server, "GET", v2_url))
    (legacy,) = server.take()
    assert sig.auth_scheme(legacy.query_string, legacy.headers) == "sigv4_query"
    fails(sig.MalformedAuth, legacy, store.lookup)


def test_no_auth_is_missing_auth_everywhere(store: KeyStore) -> None:
    """A request without any credentials is MissingAuth for every verifier."""
    headers: dict[str, str] = {"Host": "ecs.cn-hangzhou.aliyuncs.com"}
    query = "Action=DescribeRegions&Version=2014-05-26"
    assert sig.auth_scheme(query, headers) == "none"
    with pytest.raises(sig.MissingAuth):
        sig.verify_acs3("POST", "/", query, headers, b"", store.lookup)
    with pytest.raises(sig.MissingAuth):
        sig.verify_rpc_v1("POST", query, store.lookup)
    with pytest.raises(sig.MissingAuth):
        sig.verify_sigv4("GET", "/", "", headers, store.lookup)


def test_failure_reason_is_the_message(store: KeyStore) -> None:
    """AuthFailure subclasses carry a reason equal to str() and share the base class."""
    err = sig.UnknownAccessKey("key x does not exist")
    assert isinstance(err, sig.AuthFailure) and str(err) == err.reason
    assert all(
        issubclass(cls, sig.AuthFailure)
        for cls in (
            sig.MissingAuth,
            sig.MalformedAuth,
            sig.SignatureMismatch,
            sig.ExpiredRequest,
            sig.InvalidSecurityToken,
            sig.ChunkedUploadRefused,
        )
    )
