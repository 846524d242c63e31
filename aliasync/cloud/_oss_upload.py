"""Uploads to OSS under one memory budget: the file bytes read from disk and not yet sent.

All uploads of an :class:`~aliasync.cloud._oss.OssApi` take their buffers from one
:class:`UploadBudget`, so memory grows neither with the image size nor with the number of
regions uploading: a buffer is reserved before its bytes are read and given back when the
request sending it has ended, however it ended. A file smaller than a part is read once for
all its uploads running at the same time; bigger ones go up as multipart uploads.

The buffers, their budget and the request bodies over them are in :mod:`._upload_memory`.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from aliasync._exceptions import AliasyncError, NotFoundError, PermanentCloudError
from aliasync.cloud._upload_memory import (
    Body,
    Buffer,
    Lease,
    UploadBudget,
    content_md5,
    read_buffer,
)

T = TypeVar("T")


class S3Calls(Protocol):
    """What uploads need of the OSS client (:class:`~aliasync.cloud._oss.OssApi` has it):
    retried calls with errors mapped. A protocol, so that this module does not import it."""

    async def _op(self, region: str, operation: str, **params: Any) -> dict[str, Any]: ...

    async def _call(self, region: str, action: str, fn: Callable[[Any], Awaitable[T]]) -> T: ...

    async def _abort(self, region: str, bucket: str, key: str, upload_id: str) -> None: ...


__all__ = [
    "MAX_PARTS",
    "MIN_PART_SIZE",
    "Lease",
    "S3Calls",
    "UploadBudget",
    "Uploads",
    "content_md5",
    "part_size_for",
]

MiB = 2**20
MIN_PART_SIZE = 8 * MiB  # parts of small and mid-sized images: few requests, modest memory
MAX_PARTS = 10000  # OSS: part numbers 1..10000
MAX_PART_SIZE = 5 * 2**30  # OSS: a part is at most 5 GB
# ECS imports disks of at most 2048 GiB (DiskImageSize); a raw image is that large at most.
MAX_IMAGE_SIZE = 2048 * 2**30


def part_size_for(size: int, minimum: int = MIN_PART_SIZE) -> int:
    """The part size for a ``size``-byte object: ``minimum``, or as much larger (whole MiB) as
    keeps it within 10,000 parts. 2048 GiB gives 210 MiB parts, far below OSS's 5 GB."""
    needed = -(-size // MAX_PARTS)
    return max(minimum, -(-needed // MiB) * MiB)


def _file_changed(path: Path, region: str) -> PermanentCloudError:
    message = f"{path} changed size during the upload"
    return PermanentCloudError("FileChanged", message, service="oss", region=region)


@dataclass(eq=False)
class _SharedFile:
    """A small file's bytes, read once for all the uploads of it running at the same time."""

    users: int = 0
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    lease: Lease | None = None
    data: Buffer | None = None
    md5: str = ""
    sha256: str = ""


class Uploads:
    """The uploads of one :class:`~aliasync.cloud._oss.OssApi`, under one :class:`UploadBudget`."""

    def __init__(self, api: S3Calls, budget: UploadBudget) -> None:
        self.api = api
        self.budget = budget
        self._shared: dict[tuple[int, ...], _SharedFile] = {}

    async def upload_file(
        self,
        region: str,
        bucket: str,
        key: str,
        path: str | os.PathLike[str],
        *,
        part_size: int | None,
        on_progress: Callable[[int], None] | None,
        parallel: int,
    ) -> str:
        """See :meth:`aliasync.cloud._oss.OssApi.upload_file`."""
        stat = await anyio.Path(path).stat()
        size = stat.st_size
        part_size = part_size or part_size_for(size)
        if -(-size // part_size) > MAX_PARTS or part_size > MAX_PART_SIZE:
            raise PermanentCloudError(
                "EntityTooLarge", f"{path}: too large for one OSS object", service="oss"
            )
        if size >= part_size:
            if part_size > MIN_PART_SIZE:
                # Parts grown for a huge image: room for two (one sent while the next is
                # read), or such an upload would crawl one part at a time.
                self.budget.grow(2 * part_size)
            upload = _MultipartUpload(
                self, region, bucket, key, Path(path), size, part_size, on_progress
            )
            return await upload.run(max(1, parallel))
        # This version of this file: one that is rewritten meanwhile gets an entry of its own.
        identity = (stat.st_dev, stat.st_ino, size, stat.st_mtime_ns)
        shared = await self._join(identity, Path(path), size, region)
        data, sha256 = shared.data, shared.sha256
        assert data is not None
        try:
            params = {"Bucket": bucket, "Key": key, "Body": Body(data), "ContentMD5": shared.md5}
            await self.api._op(region, "put_object", **params)
        finally:
            self._leave(identity, shared)
        if on_progress is not None:
            on_progress(len(data))
        return sha256

    async def _join(
        self, identity: tuple[int, ...], path: Path, size: int, region: str
    ) -> _SharedFile:
        """The file's bytes, read by the first upload that needs them and shared after."""
        shared = self._shared.setdefault(identity, _SharedFile())
        shared.users += 1
        try:
            async with shared.lock:
                if shared.data is None:
                    if shared.lease is None:
                        shared.lease = await self.budget.reserve(size)
                    read = await anyio.to_thread.run_sync(_read_small, path, size)
                    if read is None:
                        raise _file_changed(path, region)
                    shared.data, shared.md5, shared.sha256 = read
        except BaseException:
            self._leave(identity, shared)
            raise
        return shared

    def _leave(self, identity: tuple[int, ...], shared: _SharedFile) -> None:
        shared.users -= 1
        if shared.users == 0:
            del self._shared[identity]  # only ever replaced once it has no users left
            if shared.lease is not None:
                shared.lease.release()
            shared.data = None


def _read_small(path: Path, size: int) -> tuple[Buffer, str, str] | None:
    """The whole file, its Content-MD5 and SHA-256; None if it is not ``size`` bytes long."""
    with path.open("rb") as file:
        data = read_buffer(file, size)
        if data is None or file.read(1):
            return None
    return data, content_md5(data), hashlib.sha256(data).hexdigest()


@dataclass(eq=False)
class _MultipartUpload:
    """One streamed multipart upload; see :meth:`aliasync.cloud._oss.OssApi.upload_file`."""

    uploads: Uploads
    region: str
    bucket: str
    key: str
    path: Path
    size: int
    part_size: int
    on_progress: Callable[[int], None] | None
    sha256: Any = field(default_factory=hashlib.sha256)
    etags: dict[int, str] = field(default_factory=dict)
    upload_id: str = ""
    # Every lease this upload took, so that all go back whatever ends it: a part whose sender
    # task was cancelled before it started never runs the sender's own release.
    leases: list[Lease] = field(default_factory=list)

    async def _op(self, operation: str, **params: Any) -> dict[str, Any]:
        return await self.uploads.api._op(self.region, operation, Bucket=self.bucket, **params)

    async def run(self, parallel: int) -> str:
        created = await self._op("create_multipart_upload", Key=self.key)
        self.upload_id = str(created["UploadId"])
        try:
            file = await anyio.to_thread.run_sync(self.path.open, "rb")
            try:
                await self._transfer(file, anyio.Semaphore(parallel))
            finally:
                file.close()
            await self._complete()
        except BaseException:
            with anyio.CancelScope(shield=True), suppress(AliasyncError):
                await self._abort(self.upload_id)
            raise
        # A CreateMultipartUpload whose answer was lost (then retried) leaves an upload nobody
        # knows the ID of: OSS's S3 API cannot list uploads, so the bucket's removal aborts
        # every upload (natively listed), and its lifecycle rule does if the run dies first.
        return str(self.sha256.hexdigest())

    async def _abort(self, upload_id: str) -> None:
        await self.uploads.api._abort(self.region, self.bucket, self.key, upload_id)

    def _read(self, file: io.BufferedReader, length: int) -> tuple[Buffer, str]:
        """The next part and its Content-MD5; hashes the stream in order (runs in a thread)."""
        data = read_buffer(file, length)
        if data is None:
            raise _file_changed(self.path, self.region)
        self.sha256.update(data)
        return data, content_md5(data)

    def _check_end(self, file: io.BufferedReader) -> None:
        """Bytes appended since the file was measured would be left out silently: refuse."""
        if file.read(1):
            raise _file_changed(self.path, self.region)

    async def _transfer(self, file: io.BufferedReader, senders: anyio.Semaphore) -> None:
        """Read part by part, one ahead of the parts being sent (as many as ``senders``)."""
        try:
            async with anyio.create_task_group() as group:
                for number, offset in enumerate(range(0, self.size, self.part_size), 1):
                    length = min(self.part_size, self.size - offset)
                    lease = await self.uploads.budget.reserve(length)  # before the read
                    self.leases.append(lease)
                    data, md5 = await anyio.to_thread.run_sync(self._read, file, length)
                    await senders.acquire()
                    group.start_soon(self._send, number, data, md5, lease, senders)
                    # The sender owns the part now: a reference kept here while waiting for the
                    # next lease would keep its bytes alive after the sender gave them back.
                    del data
                await anyio.to_thread.run_sync(self._check_end, file)
        except BaseExceptionGroup as group:
            raise _collapse(group) from None
        finally:
            for lease in self.leases:
                lease.release()
            self.leases.clear()

    async def _send(
        self, number: int, data: Buffer, md5: str, lease: Lease, senders: anyio.Semaphore
    ) -> None:
        try:
            # A retry sends this same buffer again, under the same lease.
            answer = await self._op(
                "upload_part", Key=self.key, UploadId=self.upload_id, PartNumber=number,
                Body=Body(data), ContentLength=len(data), ContentMD5=md5,
            )  # fmt: skip
        finally:
            lease.release()
            senders.release()
        self.etags[number] = str(answer["ETag"])
        if self.on_progress is not None:
            self.on_progress(len(data))

    async def _complete(self) -> None:
        done = {"Parts": [{"PartNumber": n, "ETag": self.etags[n]} for n in sorted(self.etags)]}
        tries = 0

        async def complete(c: Any) -> Any:
            nonlocal tries
            tries += 1
            return await c.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload=done
            )

        try:
            action = "CompleteMultipartUpload"
            await self.uploads.api._call(self.region, action, complete)
        except NotFoundError as exc:
            # An earlier attempt completed the upload but its answer was lost.
            if exc.code != "NoSuchUpload" or tries < 2:
                raise
            head = await self._op("head_object", Key=self.key)
            if int(head.get("ContentLength", -1)) != self.size:
                raise


def _collapse(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first aliasync error in a task group's exception group (else the group)."""
    first: BaseException | None = group.split(AliasyncError)[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first or group
