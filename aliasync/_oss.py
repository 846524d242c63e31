"""OSS through its S3-compatible API, with aiobotocore.

One session; one client per (region, public/internal endpoint), created on first use and
replaced if the credentials rotate. Clients sign with SigV4, address buckets virtual-hosted
(OSS refuses path style), send plain bodies (OSS refuses ``aws-chunked``) and never retry by
themselves: :mod:`aliasync._retry` does, and :mod:`aliasync._transport` maps the errors.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import anyio
import anyio.to_thread
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from aliasync._credentials import Credentials, CredentialSource
from aliasync._endpoints import Endpoints
from aliasync._exceptions import AliasyncError, CloudError, NotFoundError, PermanentCloudError
from aliasync._retry import DEFAULT, RetryPolicy
from aliasync._transport import boundary

__all__ = ["BucketsForbiddenError", "MiB", "OssApi"]

T = TypeVar("T")
E = TypeVar("E", bound=CloudError)
MiB = 2**20
_MAX_PRESIGN_SECONDS = 3600
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


class BucketsForbiddenError(PermanentCloudError):
    """The region accepts no new buckets (ForbidCreateNewBucket)."""


def _add_content_md5(request: Any, **_: Any) -> None:
    """Give DeleteObjects the Content-MD5 OSS requires (botocore now sends only a CRC32)."""
    body = request.body if isinstance(request.body, bytes) else b""
    if "Content-MD5" not in request.headers:
        request.headers["Content-MD5"] = _md5(body)


def _md5(data: bytes) -> str:
    """Content-MD5: OSS checks it, so a part corrupted on the way is refused."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _error(cls: type[E], code: str, message: str, region: str, **where: Any) -> E:
    return cls(code, message, service="oss", region=region, **where)


def _region_from_location(value: object) -> str | None:
    """``oss-cn-hangzhou`` or ``cn-hangzhou`` -> ``cn-hangzhou``."""
    if not isinstance(value, str) or not value:
        return None
    return value.removeprefix("oss-")


class OssApi:
    """OSS buckets and objects in any region."""

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: CredentialSource,
        *,
        account_id: str = "",
        retry: RetryPolicy | None = None,
        max_connections: int = 32,
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
            # still retry once; aliasync._retry does all the retrying.
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
            connect_timeout=10,
            read_timeout=120,
        )
        self._clients: dict[tuple[str, bool], tuple[Credentials, Any]] = {}
        self._lock = anyio.Lock()

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

    async def _client(self, region: str, internal: bool) -> Any:
        credentials = await self._credentials.current()
        async with self._lock:
            cached = self._clients.get((region, internal))
            if cached is not None and cached[0] == credentials:
                return cached[1]
            hosts = self._endpoints.region(region, self._account_id)
            host = hosts.oss_internal if internal else hosts.oss_public
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
            self._clients[(region, internal)] = (credentials, client)
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
        internal: bool = False,
    ) -> T:
        """``await fn(client)`` for the region's endpoint, retried, errors mapped."""

        async def once() -> T:
            client = await self._client(region, internal)
            with boundary("oss", action, region):
                return await fn(client)

        return await self._retry.call_as(f"oss:{action} {region}", once)

    async def _op(
        self, region: str, operation: str, *, internal: bool = False, **params: Any
    ) -> dict[str, Any]:
        """One S3 operation by its botocore name (``list_buckets``), retried, errors mapped."""
        action = "".join(word.capitalize() for word in operation.split("_"))
        if action.endswith("V2"):
            action = action[:-2] + "V2"

        async def run(client: Any) -> dict[str, Any]:
            answer: dict[str, Any] = await getattr(client, operation)(**params)
            return answer

        return await self._call(region, action, run, internal=internal)

    # -- buckets -----------------------------------------------------------------------------------

    async def create_bucket(self, region: str, name: str) -> None:
        """Create a bucket in ``region``; a bucket we already own counts as created."""
        try:
            await self._op(region, "create_bucket", Bucket=name)
        except BucketsForbiddenError:
            raise
        except PermanentCloudError as exc:
            if exc.code == "ForbidCreateNewBucket":
                where = {"status": exc.status, "request_id": exc.request_id}
                raise _error(BucketsForbiddenError, exc.code, exc.message, region, **where) from exc
            if exc.code == "BucketAlreadyOwnedByYou":
                return
            # After a lost answer, the retry sees our own bucket as "already exists".
            if exc.code == "BucketAlreadyExists" and (name, region) in await self.list_buckets(
                name, via=region
            ):
                return
            raise

    async def check_public_data_access(self, region: str, bucket: str) -> bool:
        """Whether data calls work on the public endpoint (not so in mainland China)."""
        try:
            await self._op(region, "list_objects_v2", Bucket=bucket, MaxKeys=1)
        except PermanentCloudError as exc:
            if exc.code == "PublicEndpointForbidden":
                return False
            raise
        return True

    async def list_buckets(
        self, prefix: str = "", *, via: str | None = None
    ) -> list[tuple[str, str]]:
        """``(name, region)`` of this account's buckets named ``prefix...``, in every region.

        ``via`` is the region whose endpoint answers (any region lists them all); by default
        one outside mainland China, whose public endpoint has no restrictions.
        """
        region = via or "ap-southeast-1"
        found: list[tuple[str, str]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"MaxBuckets": 1000}
            if prefix:
                kwargs["Prefix"] = prefix
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._op(region, "list_buckets", **kwargs)
            for item in page.get("Buckets") or []:
                name = str(item["Name"])
                if not name.startswith(prefix):
                    continue  # an endpoint that ignores Prefix
                where = _region_from_location(item.get("BucketRegion"))
                if where is None:
                    location = await self._op(region, "get_bucket_location", Bucket=name)
                    where = _region_from_location(location.get("LocationConstraint")) or region
                found.append((name, where))
            token = page.get("ContinuationToken") or None
            if not token:
                return found

    async def delete_bucket(self, region: str, bucket: str, *, internal: bool = False) -> None:
        """Delete a bucket and everything in it; a bucket already gone counts as deleted."""
        try:
            for _ in range(3):  # objects may land while we delete (a late relay, a lost answer)
                await self._abort_all_uploads(region, bucket, internal)
                await self._delete_all_objects(region, bucket, internal)
                try:
                    await self._op(region, "delete_bucket", internal=internal, Bucket=bucket)
                    return
                except PermanentCloudError as exc:
                    if exc.code != "BucketNotEmpty":
                        raise
            message = f"bucket {bucket} keeps filling up while being deleted"
            raise _error(PermanentCloudError, "BucketNotEmpty", message, region)
        except NotFoundError as exc:
            if exc.code != "NoSuchBucket":
                raise

    async def _abort_all_uploads(self, region: str, bucket: str, internal: bool) -> None:
        marker: dict[str, str] = {}
        while True:
            page = await self._op(
                region, "list_multipart_uploads", internal=internal, Bucket=bucket, **marker
            )
            for upload in page.get("Uploads") or []:
                await self._abort(region, bucket, upload["Key"], upload["UploadId"], internal)
            if not page.get("IsTruncated"):
                return
            marker = {
                "KeyMarker": page.get("NextKeyMarker") or "",
                "UploadIdMarker": page.get("NextUploadIdMarker") or "",
            }

    async def _delete_all_objects(self, region: str, bucket: str, internal: bool) -> None:
        while True:
            # Always the first page: what we delete disappears from the listing.
            page = await self._op(
                region, "list_objects_v2", internal=internal, Bucket=bucket, MaxKeys=_DELETE_BATCH
            )
            keys = [{"Key": item["Key"]} for item in page.get("Contents") or []]
            if not keys:
                return
            batch = {"Objects": keys, "Quiet": True}
            result = await self._op(
                region, "delete_objects", internal=internal, Bucket=bucket, Delete=batch
            )
            errors = [e for e in result.get("Errors") or [] if e.get("Code") != "NoSuchKey"]
            if errors:
                code = str(errors[0].get("Code") or "DeleteFailed")
                message = f"{len(errors)} object(s) not deleted: {errors[0].get('Message')}"
                raise _error(PermanentCloudError, code, message, region)

    async def _abort(
        self, region: str, bucket: str, key: str, upload_id: str, internal: bool
    ) -> None:
        params = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
        try:
            await self._op(region, "abort_multipart_upload", internal=internal, **params)
        except NotFoundError as exc:
            if exc.code != "NoSuchUpload":  # already aborted or completed
                raise

    # -- objects -------------------------------------------------------------------------------

    async def presign_get(self, region: str, bucket: str, key: str, expires: int = 3600) -> str:
        """A presigned GET URL on the region's public endpoint (itself a secret: never log it)."""
        if not 1 <= expires <= _MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires must be 1..{_MAX_PRESIGN_SECONDS} seconds")
        client = await self._client(region, False)
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
        internal: bool = False,
        part_size: int = 8 * MiB,
        on_progress: Callable[[int], None] | None = None,
        parallel: int = 4,
    ) -> str:
        """Upload a file, streamed from disk; return its sha256 (hex).

        Files of ``part_size`` or more go up as a multipart upload, ``parallel`` parts at a
        time (at most ``parallel + 1`` parts are in memory); smaller ones in one PutObject.
        ``on_progress`` is called with the byte count of each piece as it lands (a delta).
        A failed multipart upload is aborted, even on cancellation.
        """
        size = (await anyio.Path(path).stat()).st_size
        if size < part_size:
            data = await anyio.Path(path).read_bytes()
            params = {"Bucket": bucket, "Key": key, "Body": data, "ContentMD5": _md5(data)}
            await self._op(region, "put_object", internal=internal, **params)
            if on_progress is not None:
                on_progress(len(data))
            return hashlib.sha256(data).hexdigest()
        return await _MultipartUpload(
            self, region, bucket, key, Path(path), size, internal, part_size, on_progress
        ).run(max(1, parallel))


class _MultipartUpload:
    """One streamed multipart upload; see :meth:`OssApi.upload_file`."""

    def __init__(
        self,
        api: OssApi,
        region: str,
        bucket: str,
        key: str,
        path: Path,
        size: int,
        internal: bool,
        part_size: int,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.api, self.region, self.bucket, self.key = api, region, bucket, key
        self.path, self.size, self.internal, self.part_size = path, size, internal, part_size
        self.on_progress = on_progress
        self.sha256 = hashlib.sha256()
        self.etags: dict[int, str] = {}
        self.upload_id = ""

    async def _call(self, action: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        return await self.api._call(self.region, action, fn, internal=self.internal)

    async def _op(self, operation: str, **params: Any) -> dict[str, Any]:
        return await self.api._op(
            self.region, operation, internal=self.internal, Bucket=self.bucket, **params
        )

    async def run(self, parallel: int) -> str:
        created = await self._op("create_multipart_upload", Key=self.key)
        self.upload_id = str(created["UploadId"])
        try:
            file: BinaryIO = await anyio.to_thread.run_sync(open, self.path, "rb")
            try:
                sent = await self._transfer(file, parallel)
            finally:
                file.close()
            if sent != self.size:
                message = f"{self.path} changed size during the upload"
                raise _error(PermanentCloudError, "FileChanged", message, self.region)
            await self._complete()
        except BaseException:
            with anyio.CancelScope(shield=True), suppress(AliasyncError):
                await self._abort(self.upload_id)
            raise
        # A CreateMultipartUpload whose answer was lost (then retried) left an upload behind.
        page = await self._op("list_multipart_uploads", Prefix=self.key)
        for upload in page.get("Uploads") or []:
            if upload.get("Key") == self.key and upload.get("UploadId") != self.upload_id:
                await self._abort(upload["UploadId"])
        return self.sha256.hexdigest()

    async def _abort(self, upload_id: str) -> None:
        await self.api._abort(self.region, self.bucket, self.key, upload_id, self.internal)

    def _read(self, file: BinaryIO) -> tuple[bytes, str]:
        """Next part and its Content-MD5; hashes the stream in order (runs in a thread)."""
        data = file.read(self.part_size)
        self.sha256.update(data)
        return data, _md5(data)

    async def _transfer(self, file: BinaryIO, parallel: int) -> int:
        send, receive = anyio.create_memory_object_stream[tuple[int, bytes, str]](0)
        sent = 0
        try:
            async with anyio.create_task_group() as group:
                for _ in range(parallel):
                    group.start_soon(self._worker, receive.clone())
                receive.close()
                async with send:
                    number = 1
                    while True:
                        data, md5 = await anyio.to_thread.run_sync(self._read, file)
                        if not data:
                            break
                        sent += len(data)
                        await send.send((number, data, md5))
                        number += 1
        except BaseExceptionGroup as group:
            raise _collapse(group) from None
        return sent

    async def _worker(self, receive: Any) -> None:
        async with receive:
            async for number, data, md5 in receive:
                answer = await self._op(
                    "upload_part",
                    Key=self.key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    Body=data,
                    ContentLength=len(data),
                    ContentMD5=md5,
                )
                self.etags[number] = str(answer["ETag"])
                if self.on_progress is not None:
                    self.on_progress(len(data))

    async def _complete(self) -> None:
        parts = [{"PartNumber": n, "ETag": self.etags[n]} for n in sorted(self.etags)]
        tries = 0

        async def complete(c: Any) -> Any:
            nonlocal tries
            tries += 1
            return await c.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )

        try:
            await self._call("CompleteMultipartUpload", complete)
        except NotFoundError as exc:
            # An earlier attempt completed the upload but its answer was lost.
            if exc.code != "NoSuchUpload" or tries < 2:
                raise
            head = await self._op("head_object", Key=self.key)
            if int(head.get("ContentLength", -1)) != self.size:
                raise


def _collapse(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first aliasync error in a task group's exception group (else the group)."""
    for leaf in _leaves(group):
        if isinstance(leaf, AliasyncError):
            return leaf
    return group


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]
