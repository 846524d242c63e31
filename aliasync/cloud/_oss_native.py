"""OSS's native API, for what its S3-compatible API lacks, with the official asyncio SDK.

OSS through S3 offers neither ListBuckets nor ListMultipartUploads, and aliasync needs each
bucket's region and creation date (to sweep what crashed runs left) and lifecycle rules (the
backstop that expires a dead run's objects and uploads). Those come from here, over
``alibabacloud_oss_v2.aio`` (OSS V4 signatures), on the *public* native endpoints only: the
client is never inside the cloud, and internal endpoints do not answer it.

One client per region, replaced when the credentials rotate; the SDK never retries
(:mod:`aliasync.cloud._retry` does) and its exceptions are mapped in
:mod:`aliasync.cloud._transport`.
"""

from __future__ import annotations

import calendar
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import alibabacloud_oss_v2 as oss
import alibabacloud_oss_v2.aio as oss_aio
import anyio
from alibabacloud_oss_v2 import serde, serde_utils
from alibabacloud_oss_v2.types import CaseInsensitiveDict, OperationInput

from aliasync.cloud._credentials import Credentials, CredentialSource
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._retry import DEFAULT, RetryPolicy
from aliasync.cloud._transport import boundary

__all__ = ["BucketEntry", "OssNative"]

T = TypeVar("T")
# Any region's endpoint lists every region's buckets; one outside mainland China by default.
LISTING_REGION = "ap-southeast-1"


@dataclass(frozen=True)
class BucketEntry:
    """One of the account's buckets, as the native ListBuckets reports it."""

    name: str
    region: str
    created: float  # epoch seconds (UTC)


def _epoch(value: object) -> float:
    timetuple = getattr(value, "utctimetuple", None)
    return float(calendar.timegm(timetuple())) if timetuple else 0.0


class OssNative:
    """OSS native operations in any region, through its public endpoints."""

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: CredentialSource,
        *,
        account_id: str,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._credentials = credentials
        self._account_id = account_id
        self._retry = retry or DEFAULT.scaled(endpoints.time_scale)
        self._clients: dict[str, tuple[Credentials, Any]] = {}
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"OssNative({len(self._clients)} clients)"

    async def aclose(self) -> None:
        async with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for _, client in clients:
            with anyio.CancelScope(shield=True), suppress(Exception):
                await client.close()

    def _config(self, region: str, credentials: Credentials) -> Any:
        config = oss.config.load_default()
        config.credentials_provider = oss.credentials.StaticCredentialsProvider(
            credentials.access_key_id,
            credentials.access_key_secret,
            credentials.security_token,
        )
        config.region = region  # the V4 signing scope
        host = self._endpoints.region(region, self._account_id).oss_native
        config.endpoint = self._endpoints.url(host)
        if self._endpoints.proxy:
            config.proxy_host = self._endpoints.proxy  # the asyncio client takes a URL string
        config.retry_max_attempts = 1
        config.connect_timeout = 10
        config.readwrite_timeout = 120
        return config

    async def _client(self, region: str) -> Any:
        credentials = await self._credentials.current()
        async with self._lock:
            cached = self._clients.get(region)
            if cached is not None and cached[0] == credentials:
                return cached[1]
            with boundary("oss", "CreateClient", region):
                client = oss_aio.AsyncClient(self._config(region, credentials))
            self._clients[region] = (credentials, client)
        if cached is not None:  # stale keys: retire the old client
            with suppress(Exception):
                await cached[1].close()
        return client

    async def _call(self, region: str, action: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        async def once() -> T:
            client = await self._client(region)
            with boundary("oss", action, region):
                return await fn(client)

        return await self._retry.call_as(f"oss:{action} {region}", once)

    async def list_buckets(self, prefix: str = "", *, via: str | None = None) -> list[BucketEntry]:
        """The account's buckets named ``prefix...`` in every region, with region and age."""
        region = via or LISTING_REGION
        found: list[BucketEntry] = []
        marker: str | None = None
        while True:
            request = oss.ListBucketsRequest(prefix=prefix or None, marker=marker, max_keys=1000)
            page = await self._call(region, "ListBuckets", partial(_list_buckets, request=request))
            for bucket in page.buckets or []:
                name, where = str(bucket.name or ""), str(bucket.region or "")
                if name.startswith(prefix) and where:
                    found.append(BucketEntry(name, where, _epoch(bucket.creation_date)))
            marker = page.next_marker if page.is_truncated else None
            if not marker:
                return found

    async def put_expiry_rule(self, region: str, bucket: str, *, days: int) -> None:
        """One lifecycle rule for the whole bucket: objects and unfinished uploads expire."""
        rule = oss.LifecycleRule(
            id="aliasync-expire-temporary",
            prefix="",
            status="Enabled",
            expiration=oss.LifecycleRuleExpiration(days=days),
            abort_multipart_upload=oss.LifecycleRuleAbortMultipartUpload(days=days),
        )
        request = oss.PutBucketLifecycleRequest(
            bucket=bucket, lifecycle_configuration=oss.LifecycleConfiguration(rules=[rule])
        )
        await self._call(region, "PutBucketLifecycle", lambda c: _put_lifecycle(c, request))

    async def list_uploads(self, region: str, bucket: str) -> list[tuple[str, str]]:
        """``(key, upload ID)`` of every unfinished multipart upload (a data operation: not
        through a mainland public endpoint)."""
        found: list[tuple[str, str]] = []
        markers: tuple[str | None, str | None] = (None, None)
        while True:
            request = oss.ListMultipartUploadsRequest(
                bucket=bucket, key_marker=markers[0], upload_id_marker=markers[1], max_uploads=1000
            )
            page = await self._call(
                region, "ListMultipartUploads", partial(_list_uploads, request=request)
            )
            found.extend((str(u.key), str(u.upload_id)) for u in page.uploads or [])
            if not page.is_truncated:
                return found
            markers = (page.next_key_marker, page.next_upload_id_marker)


async def _list_buckets(client: Any, request: Any) -> Any:
    return await client.list_buckets(request)


async def _list_uploads(client: Any, request: Any) -> Any:
    return await client.list_multipart_uploads(request)


async def _put_lifecycle(client: Any, request: Any) -> Any:
    """PutBucketLifecycle, which the SDK's asyncio client lacks: its sync operation's
    definition (``operations/bucket_lifecycle.py``) sent through the asyncio client."""
    op_input = serde.serialize_input(
        request=request,
        op_input=OperationInput(
            op_name="PutBucketLifecycle",
            method="PUT",
            headers=CaseInsensitiveDict({"Content-Type": "application/xml"}),
            parameters={"lifecycle": ""},
            bucket=request.bucket,
            op_metadata={"sub-resource": ["lifecycle"]},
        ),
        custom_serializer=[serde_utils.add_content_md5],
    )
    output = await client.invoke_operation(op_input)
    return serde.deserialize_output(
        result=oss.PutBucketLifecycleResult(),
        op_output=output,
        custom_deserializer=[serde.deserialize_output_xmlbody],
    )
