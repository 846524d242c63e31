"""Helpers for the signature tests: a server that captures what the official SDKs send.

A tiny aiohttp server on 127.0.0.1 records each request exactly as it arrived (method, raw path,
raw query, headers, body); the tests then verify the captured requests, and tampered copies.
The server runs in its own thread and event loop so sync (boto3) and async clients both work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from aiohttp import web
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.models import Config as TeaConfig
from botocore.config import Config as BotoConfig
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
