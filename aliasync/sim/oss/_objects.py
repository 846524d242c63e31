"""Object operations of the OSS emulator, on both faces (bodies streamed to and from disk).

Natively: metadata travels as ``x-oss-meta-*``; ``x-oss-forbid-overwrite: true`` makes a
PutObject or CopyObject of an existing key 409 ``FileAlreadyExists``; DeleteMultipleObjects
answers nothing in Quiet mode when everything was deleted ([D21] DeleteMultipleObjects) and
encodes its keys on ``encoding-type=url``; CopyObject copies within one region only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import unquote

import anyio
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from aliasync.sim._errors import DropConnection, SimError
from aliasync.sim._service import Route, SimRequest
from aliasync.sim.oss import _xml as x
from aliasync.sim.oss._http import (
    MAX_PUT_SIZE,
    ascii_int,
    content_length,
    empty_response,
    object_headers,
    parse_range,
    small_body,
    stored_headers,
    too_large,
    verify_body,
    xml_response,
)
from aliasync.sim.oss._models import OssError, OssModel, StoredObject
from aliasync.sim.oss._routing import Target
from aliasync.sim.oss._storage import CHUNK, Staged, receive, remove

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


def presigned(request: SimRequest) -> bool:
    """Whether the request is signed in its URL (S3 SigV4, OSS V1 or OSS V4)."""
    return any(
        request.param(name) is not None
        for name in ("X-Amz-Signature", "Signature", "x-oss-signature")
    )


def encode_flag(request: SimRequest) -> bool:
    """True if listed keys must be percent-encoded (``encoding-type=url``)."""
    value = request.param("encoding-type")
    if value is None:
        return False
    if value.lower() != "url":
        raise SimError("InvalidArgument", "Invalid Encoding Method specified in Request", 400)
    return True


async def _capped(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body's chunks, refused once they add up to more than one upload may hold."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_PUT_SIZE:
            raise too_large(size)
        yield chunk


class ObjectOps:
    """Handlers for object and multipart operations; OssService adds the rest."""

    ctx: SimContext
    model: OssModel

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.model = OssModel(ctx)
        self._attempts: Counter[str] = Counter()  # presigned cross-region GETs per object

    async def _receive(self, request: SimRequest, native: bool = False) -> Staged:
        """Stream the body to a new file and verify it; the file is removed on any failure."""
        length = content_length(request, native)
        try:
            chunks = _capped(request.raw.content.iter_chunked(CHUNK))
            staged = await receive(chunks, self.model.new_path())
        except (ConnectionError, HttpProcessingError):
            raise DropConnection from None  # the client went away mid-body
        try:
            if length is not None and staged.size != length:
                raise SimError(
                    "IncompleteBody",
                    "You did not provide the number of bytes specified by the Content-Length "
                    "HTTP header.",
                    400,
                )
            verify_body(request, staged, native=native)
        except BaseException:
            remove(staged.path)
            raise
        return staged

    def _forbid_overwrite(self, request: SimRequest, t: Target) -> None:
        assert t.bucket is not None
        forbid = (request.headers.get("x-oss-forbid-overwrite") or "").lower() == "true"
        if t.native and forbid and self.model.object_info(t.region, t.bucket, t.key) is not None:
            raise OssError("FileAlreadyExists", "The object you specified already exists.", 409)

    async def put_object(self, request: SimRequest, route: Route, t: Target) -> web.StreamResponse:
        assert t.bucket is not None
        self.model.bucket(t.region, t.bucket)  # fail before reading the body
        self.model.check_key(t.key)
        self._forbid_overwrite(request, t)
        headers, metadata = stored_headers(request, t.native)
        staged = await self._receive(request, t.native)
        obj = self.model.put_object(t.region, t.bucket, t.key, staged, headers, metadata)
        return empty_response(request, headers={"ETag": f'"{obj.etag}"'}, native=t.native)

    async def copy_object(self, request: SimRequest, route: Route, t: Target) -> web.StreamResponse:
        assert t.bucket is not None
        raw = request.headers.get("x-oss-copy-source", "")
        source_bucket, _, source_key = unquote(raw).lstrip("/").partition("/")
        if not source_bucket or not source_key:
            raise SimError(
                "InvalidArgument", "Copy Source must mention the source bucket and key.", 400
            )
        self._forbid_overwrite(request, t)
        directive = request.headers.get("x-oss-metadata-directive", "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise SimError("InvalidArgument", "Invalid x-oss-metadata-directive.", 400)
        replace = stored_headers(request, True) if directive == "REPLACE" else None
        obj = self.model.copy_object(
            t.region, (source_bucket, source_key), (t.bucket, t.key), replace
        )
        result = x.node(
            "CopyObjectResult",
            x.el("ETag", f'"{obj.etag}"'),
            x.el("LastModified", x.iso8601(self.model.wall(obj.last_modified))),
        )
        return xml_response(request, result, native=True)

    def _cut_download(self, request: SimRequest, route: Route, t: Target) -> bool:
        """Whether this presigned cross-region GET is cut off mid-body (a seeded fault)."""
        origin = request.origin_region
        if (
            route.endpoint != "public"
            or origin is None
            or origin == t.region
            or not presigned(request)
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
            headers = object_headers(request, obj, self.model.wall(obj.last_modified), t.native)
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
        headers = object_headers(request, obj, self.model.wall(obj.last_modified), t.native)
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
        return empty_response(request, 204, native=t.native)

    async def delete_objects(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.StreamResponse:
        assert t.bucket is not None
        self.model.bucket(t.region, t.bucket)
        body = await small_body(request, require_digest=True, native=t.native)
        keys, quiet = x.delete_request(body)
        encode = t.native and encode_flag(request)
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
                deleted.append(x.node("Deleted", x.el("Key", x.url_encode(key, encode))))
        if t.native and not deleted and not errors:
            return empty_response(request, native=True)
        kind = x.el("EncodingType", "url") if encode else None
        root = x.node("DeleteResult", kind, deleted, errors)
        return xml_response(request, root, native=t.native)

    delete_multiple_objects = delete_objects


__all__ = ["ObjectOps", "encode_flag", "max_param", "presigned"]
