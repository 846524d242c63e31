"""OSS as the client outside the cloud sees it: the S3-compatible API (aiobotocore) for buckets
and data, the native API (:mod:`aliasync.cloud._oss_native`) for what S3 lacks.

Only public endpoints: internal ones answer nothing outside the cloud, so a bucket whose
public endpoint refuses data (mainland China) is filled and emptied by a function inside its
region, and :meth:`OssApi.delete_bucket` says so (:class:`EmptiedInsideOnlyError`). Only the
operations OSS documents on each face are used: S3 for create/delete bucket, objects and
multipart uploads; native for ListBuckets, lifecycle rules and ListMultipartUploads.

One aiobotocore session; one S3 client per region, created on first use and replaced if the
credentials rotate. Clients sign with SigV4, address buckets virtual-hosted (OSS refuses path
style), send plain bodies (OSS refuses ``aws-chunked``) and never retry by themselves:
:mod:`aliasync.cloud._retry` does, and :mod:`aliasync.cloud._transport` maps the errors.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from aliasync._exceptions import AliasyncError, CloudError, NotFoundError, PermanentCloudError
from aliasync.cloud._credentials import Credentials, CredentialSource
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._oss_native import BucketEntry, OssNative
from aliasync.cloud._oss_upload import Uploads
from aliasync.cloud._retry import DEFAULT, RetryPolicy
from aliasync.cloud._transport import boundary
from aliasync.cloud._upload_memory import UploadBudget, content_md5

__all__ = ["BucketEntry", "BucketsForbiddenError", "EmptiedInsideOnlyError", "MiB", "OssApi"]

T = TypeVar("T")
E = TypeVar("E", bound=CloudError)
MiB = 2**20
_MAX_PRESIGN_SECONDS = 3600
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
# Upload buffers in memory at once, for all of a client's uploads together: 8 parts of 8 MiB.
# That is two multipart uploads at full speed (4 parts in flight and 1 read ahead each) or
# eight at one part each. Every upload shares the client's one uplink, which a handful of
# 8 MiB requests in flight already fills, so more buffers would cost memory and gain nothing.
UPLOAD_BUFFER_BYTES = 64 * MiB


class BucketsForbiddenError(PermanentCloudError):
    """The region accepts no new buckets (ForbidCreateNewBucket)."""


class EmptiedInsideOnlyError(PermanentCloudError):
    """The bucket is not empty and its public endpoint refuses data calls: only a function in
    its region can empty it (through the internal endpoint) before it can be deleted."""


def _add_content_md5(request: Any, **_: Any) -> None:
    """Give DeleteObjects the Content-MD5 OSS requires (botocore now sends only a CRC32)."""
    body = request.body if isinstance(request.body, bytes) else b""
    if "Content-MD5" not in request.headers:
        request.headers["Content-MD5"] = content_md5(body)


def _error(cls: type[E], code: str, message: str, region: str, **where: Any) -> E:
    return cls(code, message, service="oss", region=region, **where)


class OssApi:
    """OSS buckets and objects in any region.

    ``upload_buffer_bytes`` caps the file bytes held in memory by all uploads together (a
    part larger than that still goes up, alone); see :data:`UPLOAD_BUFFER_BYTES`.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: CredentialSource,
        *,
        account_id: str = "",
        retry: RetryPolicy | None = None,
        max_connections: int = 32,
        upload_buffer_bytes: int = UPLOAD_BUFFER_BYTES,
    ) -> None:
        self._endpoints = endpoints
        self._credentials = credentials
        self._account_id = account_id or endpoints.account_id or "0"
        self._retry = retry or DEFAULT.scaled(endpoints.time_scale)
        self._session = get_session()
        self._config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "virtual"},
            proxies={"http": endpoints.proxy, "https": endpoints.proxy}
            if endpoints.proxy
            else None,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # One attempt: botocore's "max_attempts" counts retries, not attempts, so it would
            # still retry once; aliasync.cloud._retry does all the retrying.
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
            connect_timeout=10,
            read_timeout=120,
        )
        self._clients: dict[str, tuple[Credentials, Any]] = {}
        self._lock = anyio.Lock()
        self._uploads = Uploads(self, UploadBudget(upload_buffer_bytes))
        self.native = OssNative(
            endpoints, credentials, account_id=self._account_id, retry=self._retry
        )

    @property
    def upload_buffer_in_use(self) -> int:
        """Bytes of the upload budget held now (0 once every upload has ended)."""
        return self._uploads.budget.in_use

    @property
    def upload_buffer_high_water(self) -> int:
        """The most bytes of the upload budget ever held at once (at most the budget)."""
        return self._uploads.budget.high_water

    def __repr__(self) -> str:
        return f"OssApi({len(self._clients)} clients)"

    async def __aenter__(self) -> OssApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every client."""
        async with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for _, client in clients:
            with anyio.CancelScope(shield=True), suppress(Exception):
                await client.close()
        await self.native.aclose()

    async def _client(self, region: str) -> Any:
        credentials = await self._credentials.current()
        async with self._lock:
            cached = self._clients.get(region)
            if cached is not None and cached[0] == credentials:
                return cached[1]
            host = self._endpoints.region(region, self._account_id).oss_public
            with boundary("oss", "CreateClient", region):
                client = await self._session.create_client(
                    "s3",
                    endpoint_url=self._endpoints.url(host),
                    region_name=region,
                    aws_access_key_id=credentials.access_key_id,
                    aws_secret_access_key=credentials.access_key_secret,
                    aws_session_token=credentials.security_token,
                    config=self._config,
                ).__aenter__()
            client.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
            self._clients[region] = (credentials, client)
        if cached is not None:  # stale keys: retire the old client
            with suppress(Exception):
                await cached[1].close()
        return client

    async def _call(
        self,
        region: str,
        action: str,
        fn: Callable[[Any], Awaitable[T]],
        *,
        policy: RetryPolicy | None = None,
    ) -> T:
        """``await fn(client)`` for the region's public endpoint, retried, errors mapped."""

        async def once() -> T:
            client = await self._client(region)
            with boundary("oss", action, region):
                return await fn(client)

        return await (policy or self._retry).call_as(f"oss:{action} {region}", once)

    async def _op(self, region: str, operation: str, **params: Any) -> dict[str, Any]:
        """One S3 operation by its botocore name (``list_buckets``), retried, errors mapped."""
        action = "".join(word.capitalize() for word in operation.split("_"))
        if action.endswith("V2"):
            action = action[:-2] + "V2"

        async def run(client: Any) -> dict[str, Any]:
            answer: dict[str, Any] = await getattr(client, operation)(**params)
            return answer

        return await self._call(region, action, run)

    # -- buckets -----------------------------------------------------------------------------------

    async def create_bucket(
        self,
        region: str,
        name: str,
        *,
        policy: RetryPolicy | None = None,
        expire_days: int | None = None,
    ) -> None:
        """Create a bucket in ``region``; a bucket we already own counts as created.

        ``policy`` overrides the retries, e.g. a short one to probe whether OSS answers at all.
        ``expire_days``: give the bucket a lifecycle rule expiring its objects and unfinished
        uploads after that many days, before anything is written to it; if the rule cannot be
        set, the (empty) bucket is deleted again and the error raised.
        """
        try:
            await self._call(
                region, "CreateBucket", lambda c: c.create_bucket(Bucket=name), policy=policy
            )
        except BucketsForbiddenError:
            raise
        except PermanentCloudError as exc:
            if exc.code == "ForbidCreateNewBucket":
                where = {"status": exc.status, "request_id": exc.request_id}
                raise _error(BucketsForbiddenError, exc.code, exc.message, region, **where) from exc
            # After a lost answer, the retry sees our own bucket as "already exists".
            owned = exc.code == "BucketAlreadyOwnedByYou" or (
                exc.code == "BucketAlreadyExists" and await self._owned(name, region)
            )
            if not owned:
                raise
        if expire_days is not None:
            try:
                await self.native.put_expiry_rule(region, name, days=expire_days)
            except BaseException:
                with anyio.CancelScope(shield=True), suppress(AliasyncError):
                    await self._op(region, "delete_bucket", Bucket=name)
                raise

    async def _owned(self, name: str, region: str) -> bool:
        found = await self.native.list_buckets(name)
        return any(b.name == name and b.region == region for b in found)

    async def check_public_data_access(self, region: str, bucket: str) -> bool:
        """Whether data calls work on the public endpoint (not so in mainland China)."""
        try:
            await self._op(region, "list_objects_v2", Bucket=bucket, MaxKeys=1)
        except PermanentCloudError as exc:
            if exc.code == "PublicEndpointForbidden":
                return False
            raise
        return True

    async def list_buckets(self, prefix: str = "", *, via: str | None = None) -> list[BucketEntry]:
        """This account's buckets named ``prefix...``, in every region (natively listed)."""
        return await self.native.list_buckets(prefix, via=via)

    async def delete_bucket(self, region: str, bucket: str) -> None:
        """Delete a bucket and everything in it; a bucket already gone counts as deleted.

        DeleteBucket is a control operation, allowed on every public endpoint; emptying the
        bucket first is not where the public endpoint refuses data: then
        :class:`EmptiedInsideOnlyError` says that a function inside the region must empty it.
        """
        try:
            for _ in range(3):  # objects may land while we delete (a late relay, a lost answer)
                try:
                    await self._op(region, "delete_bucket", Bucket=bucket)
                    return
                except PermanentCloudError as exc:
                    if exc.code != "BucketNotEmpty":
                        raise
                try:
                    await self._abort_all_uploads(region, bucket)
                    await self._delete_all_objects(region, bucket)
                except PermanentCloudError as exc:
                    if exc.code != "PublicEndpointForbidden":
                        raise
                    message = f"bucket {bucket} must be emptied from inside {region}"
                    raise _error(EmptiedInsideOnlyError, "BucketNotEmpty", message, region) from exc
            message = f"bucket {bucket} keeps filling up while being deleted"
            raise _error(PermanentCloudError, "BucketNotEmpty", message, region)
        except NotFoundError as exc:
            if exc.code != "NoSuchBucket":
                raise

    async def _abort_all_uploads(self, region: str, bucket: str) -> None:
        for key, upload_id in await self.native.list_uploads(region, bucket):
            await self._abort(region, bucket, key, upload_id)

    async def _delete_all_objects(self, region: str, bucket: str) -> None:
        while True:
            # Always the first page: what we delete disappears from the listing.
            page = await self._op(region, "list_objects_v2", Bucket=bucket, MaxKeys=_DELETE_BATCH)
            keys = [{"Key": item["Key"]} for item in page.get("Contents") or []]
            if not keys:
                return
            batch = {"Objects": keys, "Quiet": True}
            result = await self._op(region, "delete_objects", Bucket=bucket, Delete=batch)
            errors = [e for e in result.get("Errors") or [] if e.get("Code") != "NoSuchKey"]
            if errors:
                code = str(errors[0].get("Code") or "DeleteFailed")
                message = f"{len(errors)} object(s) not deleted: {errors[0].get('Message')}"
                raise _error(PermanentCloudError, code, message, region)

    async def _abort(self, region: str, bucket: str, key: str, upload_id: str) -> None:
        params = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
        try:
            await self._op(region, "abort_multipart_upload", **params)
        except NotFoundError as exc:
            if exc.code != "NoSuchUpload":  # already aborted or completed
                raise

    # -- objects -------------------------------------------------------------------------------

    async def presign_get(self, region: str, bucket: str, key: str, expires: int = 3600) -> str:
        """A presigned GET URL on the region's public endpoint (itself a secret: never log it)."""
        if not 1 <= expires <= _MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires must be 1..{_MAX_PRESIGN_SECONDS} seconds")
        client = await self._client(region)
        with boundary("oss", "PresignGetObject", region):
            url: str = await client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
            )
        return url

    async def upload_file(
        self,
        region: str,
        bucket: str,
        key: str,
        path: str | os.PathLike[str],
        *,
        part_size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
        parallel: int = 4,
    ) -> str:
        """Upload a file, streamed from disk; return its sha256 (hex).

        Files of ``part_size`` (by default :func:`~aliasync.cloud._oss_upload.part_size_for`
        the file, so that 10,000 parts always suffice) or more go up as a multipart upload,
        ``parallel`` parts at a time (at most ``parallel + 1`` parts are in memory); smaller
        ones in one PutObject, read once for all the uploads of the same file running at the
        same time. Every buffer comes out of this client's upload budget (see
        :class:`OssApi`), waiting for room.
        ``on_progress`` is called with the byte count of each piece as it lands (a delta).
        A failed multipart upload is aborted, even on cancellation.
        """
        return await self._uploads.upload_file(
            region, bucket, key, path, part_size=part_size,
            on_progress=on_progress, parallel=parallel,
        )  # fmt: skip
