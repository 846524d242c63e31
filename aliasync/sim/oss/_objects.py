"""Object and multipart operations of the OSS emulator (bodies streamed to and from disk)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import anyio
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from aliasync.sim._errors import DropConnection, SimError
from aliasync.sim._service import Route, SimRequest
from aliasync.sim.oss import _xml as x
from aliasync.sim.oss._http import (
    ascii_int,
    content_length,
    empty_response,
    object_headers,
    parse_range,
    small_body,
    stored_headers,
    verify_body,
    xml_response,
)
from aliasync.sim.oss._models import MAX_PART_NUMBER, OssError, OssModel, StoredObject
from aliasync.sim.oss._routing import Target
from aliasync.sim.oss._storage import CHUNK, Staged, assemble, receive, remove

if TYPE_CHECKING:
    from anyio import AsyncFile

    from aliasync.sim._context import SimContext

SEND_CHUNK = 256 * 1024


def max_param(request: SimRequest, name: str, default: int = 1000) -> int:
    """A ``max-keys``-like limit: absent means ``default``, larger values are capped to it."""
    value = request.param(name)
    if value is None or value == "":
        return default
    number = ascii_int(value)
    if number is None:
        raise SimError(
            "InvalidArgument", f"Provided {name} not an integer or within integer range.", 400
        )
    return min(number, default)


def encode_flag(request: SimRequest) -> bool:
    """True if listed keys must be percent-encoded (``encoding-type=url``)."""
    value = request.param("encoding-type")
    if value is None:
        return False
    if value.lower() != "url":
        raise SimError("InvalidArgument", "Invalid Encoding Method specified in Request", 400)
    return True


class ObjectOps:
    """Handlers for object and multipart operations; OssService adds the rest."""

    ctx: SimContext
    model: OssModel

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.model = OssModel(ctx)
        self._attempts: Counter[str] = Counter()  # presigned cross-region GETs per object

    async def _receive(self, request: SimRequest) -> Staged:
        """Stream the body to a new file and verify it; the file is removed on any failure."""
        length = content_length(request)
        try:
            chunks = request.raw.content.iter_chunked(CHUNK)
            staged = await receive(chunks, self.model.new_path())
        except (ConnectionError, HttpProcessingError):
            raise DropConnection from None  # the client went away mid-body
        try:
            if staged.size != length:
                raise SimError(
                    "IncompleteBody",
                    "You did not provide the number of bytes specified by the Content-Length "
                    "HTTP header.",
                    400,
                )
            verify_body(request, staged)
        except BaseException:
            remove(staged.path)
            raise
        return staged

    async def put_object(self, request: SimRequest, route: Route, t: Target) -> web.StreamResponse:
        assert t.bucket is not None
        self.model.bucket(t.region, t.bucket)  # fail before reading the body
        self.model.check_key(t.key)
        headers, metadata = stored_headers(request)
        staged = await self._receive(request)
        obj = self.model.put_object(t.region, t.bucket, t.key, staged, headers, metadata)
        return empty_response(request, headers={"ETag": f'"{obj.etag}"'})

    def _cut_download(self, request: SimRequest, route: Route, t: Target) -> bool:
        """Whether this presigned cross-region GET is cut off mid-body (a seeded fault)."""
        origin = request.origin_region
        if (
            route.endpoint != "public"
            or origin is None
            or origin == t.region
            or request.param("X-Amz-Signature") is None
        ):
            return False
        subject = f"{origin}->{t.bucket}/{t.key}"
        attempt = self._attempts[subject]
        self._attempts[subject] += 1
        return self.ctx.faults.chance(
            "download", "download_failure_rate", t.region, key=f"{subject}#{attempt}"
        )

    async def _open(self, t: Target) -> tuple[StoredObject, AsyncFile[bytes]]:
        """The object and its open file (looked up again if it was replaced meanwhile)."""
        assert t.bucket is not None
        for _ in range(5):
            obj = self.model.get_object(t.region, t.bucket, t.key)
            try:
                return obj, await anyio.open_file(obj.path, "rb")
            except FileNotFoundError:
                continue  # overwritten or deleted while the file was being opened
        raise SimError("InternalError", "The object changed too often while opening it.", 500)

    async def get_object(self, request: SimRequest, route: Route, t: Target) -> web.StreamResponse:
        obj, source = await self._open(t)
        async with source:
            span = parse_range(request.headers.get("Range"), obj.size)
            headers = object_headers(request, obj, self.model.wall(obj.last_modified))
            start, end = span if span is not None else (0, obj.size - 1)
            if span is not None:
                headers["Content-Range"] = f"bytes {start}-{end}/{obj.size}"
            length = end - start + 1
            cut = length // 2 if self._cut_download(request, route, t) else None
            response = web.StreamResponse(status=206 if span else 200, headers=headers)
            response.content_length = length
            try:
                await response.prepare(request.raw)
                await source.seek(start)
                remaining = length if cut is None else cut
                while remaining > 0:
                    chunk = await source.read(min(SEND_CHUNK, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    await response.write(chunk)
                if cut is None:
                    await response.write_eof()
                    return response
            except ConnectionError:
                raise DropConnection from None  # the client went away mid-body
        self.ctx.faults.record("download_cut", "oss", "GetObject", t.region, self.ctx.clock.now())
        raise DropConnection

    async def head_object(self, request: SimRequest, route: Route, t: Target) -> web.StreamResponse:
        assert t.bucket is not None
        obj = self.model.get_object(t.region, t.bucket, t.key)
        headers = object_headers(request, obj, self.model.wall(obj.last_modified))
        response = web.StreamResponse(status=200, headers=headers)
        response.content_length = obj.size
        await response.prepare(request.raw)
        await response.write_eof()
        return response

    async def delete_object(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.StreamResponse:
        assert t.bucket is not None
        self.model.delete_object(t.region, t.bucket, t.key)
        return empty_response(request, 204)

    async def delete_objects(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.StreamResponse:
        assert t.bucket is not None
        self.model.bucket(t.region, t.bucket)
        keys, quiet = x.delete_request(await small_body(request, require_digest=True))
        deleted: list[x.Element] = []
        errors: list[x.Element] = []
        for key in keys:
            try:
                self.model.check_key(key)
                self.model.delete_object(t.region, t.bucket, key)
            except SimError as exc:
                errors.append(
                    x.node(
                        "Error",
                        x.el("Key", key),
                        x.el("Code", exc.code),
                        x.el("Message", exc.message),
                    )
                )
                continue
            if not quiet:
                deleted.append(x.node("Deleted", x.el("Key", key)))
        return xml_response(request, x.node("DeleteResult", deleted, errors))

    # --- multipart -----------------------------------------------------------------------

    async def create_multipart_upload(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.StreamResponse:
        assert t.bucket is not None
        headers, metadata = stored_headers(request)
        upload = self.model.create_upload(t.region, t.bucket, t.key, headers, metadata)
        return xml_response(
            request,
            x.node(
                "InitiateMultipartUploadResult",
                x.el("Bucket", t.bucket),
                x.el("Key", t.key),
                x.el("UploadId", upload.upload_id),
            ),
        )

    def _upload_id(self, request: SimRequest) -> str:
        return request.param("uploadId") or ""

    async def upload_part(self, request: SimRequest, route: Route, t: Target) -> web.StreamResponse:
        assert t.bucket is not None
        raw_number = request.param("partNumber") or ""
        number = ascii_int(raw_number)
        if number is None or not 1 <= number <= MAX_PART_NUMBER:
            raise OssError(
                "InvalidArgument",
                "Part number must be an integer between 1 and 10000, inclusive",
                400,
                extra={"ArgumentName": "partNumber", "ArgumentValue": raw_number},
            )
        upload_id = self._upload_id(request)
        self.model.upload(t.region, t.bucket, t.key, upload_id)  # fail before the body
        staged = await self._receive(request)
        part = self.model.put_part(t.region, t.bucket, t.key, upload_id, number, staged)
        return empty_response(request, headers={"ETag": f'"{part.etag}"'})

    async def complete_multipart_upload(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.StreamResponse:
        assert t.bucket is not None
        requested = x.completed_parts(await small_body(request))
        upload, parts = self.model.begin_complete(
            t.region, t.bucket, t.key, self._upload_id(request), requested
        )
        path = self.model.new_path()
        try:
            staged = await anyio.to_thread.run_sync(assemble, [p.path for p in parts], path)
        except BaseException:
            remove(path)
            self.model.finish_complete(t.region, upload, parts, None)
            raise
        obj = self.model.finish_complete(t.region, upload, parts, staged)
        assert obj is not None
        return xml_response(
            request,
            x.node(
                "CompleteMultipartUploadResult",
                x.el("Location", f"http://{t.bucket}.{t.endpoint()}/{t.key}"),
                x.el("Bucket", t.bucket),
                x.el("Key", t.key),
                x.el("ETag", f'"{obj.etag}"'),
            ),
        )

    async def abort_multipart_upload(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.StreamResponse:
        assert t.bucket is not None
        self.model.abort_upload(t.region, t.bucket, t.key, self._upload_id(request))
        return empty_response(request, 204)

    async def list_parts(self, request: SimRequest, route: Route, t: Target) -> web.StreamResponse:
        assert t.bucket is not None
        marker = ascii_int(request.param("part-number-marker") or "0")
        if marker is None:
            raise SimError("InvalidArgument", "Invalid part-number-marker.", 400)
        max_parts = max_param(request, "max-parts")
        upload, parts, truncated = self.model.list_parts(
            t.region, t.bucket, t.key, self._upload_id(request), marker, max_parts
        )
        owner = x.owner_fields(self.ctx.account_id)
        return xml_response(
            request,
            x.node(
                "ListPartsResult",
                x.el("Bucket", t.bucket),
                x.el("Key", t.key),
                x.el("UploadId", upload.upload_id),
                x.el("PartNumberMarker", marker),
                x.el("NextPartNumberMarker", parts[-1].number if parts else 0),
                x.el("MaxParts", max_parts),
                x.el("IsTruncated", truncated),
                x.node("Initiator", owner),
                x.node("Owner", owner),
                x.el("StorageClass", "STANDARD"),
                [
                    x.node(
                        "Part",
                        x.el("PartNumber", p.number),
                        x.el("LastModified", x.iso8601(self.model.wall(p.last_modified))),
                        x.el("ETag", f'"{p.etag}"'),
                        x.el("Size", p.size),
                    )
                    for p in parts
                ],
            ),
        )

    async def list_multipart_uploads(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.StreamResponse:
        assert t.bucket is not None
        encode = encode_flag(request)
        prefix = request.param("prefix") or ""
        key_marker = request.param("key-marker") or ""
        id_marker = request.param("upload-id-marker") or ""
        max_uploads = max_param(request, "max-uploads")
        uploads, truncated = self.model.list_uploads(
            t.region, t.bucket, prefix, key_marker, id_marker, max_uploads
        )
        owner = x.owner_fields(self.ctx.account_id)
        last = uploads[-1] if uploads and truncated else None
        return xml_response(
            request,
            x.node(
                "ListMultipartUploadsResult",
                x.el("Bucket", t.bucket),
                x.el("KeyMarker", x.url_encode(key_marker, encode)),
                x.el("UploadIdMarker", id_marker),
                x.el("NextKeyMarker", x.url_encode(last.key, encode) if last else ""),
                x.el("NextUploadIdMarker", last.upload_id if last else ""),
                x.el("Prefix", x.url_encode(prefix, encode)),
                x.el("MaxUploads", max_uploads),
                x.el("IsTruncated", truncated),
                x.el("EncodingType", "url") if encode else None,
                [
                    x.node(
                        "Upload",
                        x.el("Key", x.url_encode(u.key, encode)),
                        x.el("UploadId", u.upload_id),
                        x.node("Initiator", owner),
                        x.node("Owner", owner),
                        x.el("StorageClass", "STANDARD"),
                        x.el("Initiated", x.iso8601(self.model.wall(u.initiated))),
                    )
                    for u in uploads
                ],
            ),
        )


__all__ = ["ObjectOps", "encode_flag", "max_param"]
