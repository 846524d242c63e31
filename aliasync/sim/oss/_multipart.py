"""Multipart uploads of the OSS emulator, on both faces.

Natively the operation that starts one is InitiateMultipartUpload, and its answer, the
completion's and ListParts' carry ``EncodingType`` and an encoded ``Key`` when the client asked
for ``encoding-type=url`` (alibabacloud-oss-v2 always does).
"""

from __future__ import annotations

import anyio
from aiohttp import web

from aliasync.sim._errors import SimError
from aliasync.sim._service import Route, SimRequest
from aliasync.sim.oss import _xml as x
from aliasync.sim.oss._http import (
    ascii_int,
    empty_response,
    small_body,
    stored_headers,
    xml_response,
)
from aliasync.sim.oss._models import MAX_PART_NUMBER, OssError
from aliasync.sim.oss._objects import ObjectOps, encode_flag, max_param
from aliasync.sim.oss._routing import Target
from aliasync.sim.oss._storage import assemble, remove


class MultipartOps(ObjectOps):
    """Handlers for the multipart operations."""

    async def create_multipart_upload(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.StreamResponse:
        assert t.bucket is not None
        headers, metadata = stored_headers(request, t.native)
        encode = t.native and encode_flag(request)
        upload = self.model.create_upload(t.region, t.bucket, t.key, headers, metadata)
        return xml_response(
            request,
            x.node(
                "InitiateMultipartUploadResult",
                x.el("Bucket", t.bucket),
                x.el("Key", x.url_encode(t.key, encode)),
                x.el("UploadId", upload.upload_id),
                x.el("EncodingType", "url") if encode else None,
            ),
            native=t.native,
        )

    initiate_multipart_upload = create_multipart_upload

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
        staged = await self._receive(request, t.native)
        part = self.model.put_part(t.region, t.bucket, t.key, upload_id, number, staged)
        return empty_response(request, headers={"ETag": f'"{part.etag}"'}, native=t.native)

    async def complete_multipart_upload(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.StreamResponse:
        assert t.bucket is not None
        encode = t.native and encode_flag(request)
        requested = x.completed_parts(await small_body(request, native=t.native))
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
                x.el("EncodingType", "url") if encode else None,
                x.el("Location", f"http://{t.bucket}.{t.endpoint()}/{t.key}"),
                x.el("Bucket", t.bucket),
                x.el("Key", x.url_encode(t.key, encode)),
                x.el("ETag", f'"{obj.etag}"'),
            ),
            native=t.native,
        )

    async def abort_multipart_upload(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.StreamResponse:
        assert t.bucket is not None
        self.model.abort_upload(t.region, t.bucket, t.key, self._upload_id(request))
        return empty_response(request, 204, native=t.native)

    async def list_parts(self, request: SimRequest, route: Route, t: Target) -> web.StreamResponse:
        assert t.bucket is not None
        marker = ascii_int(request.param("part-number-marker") or "0")
        if marker is None:
            raise SimError("InvalidArgument", "Invalid part-number-marker.", 400)
        max_parts = max_param(request, "max-parts")
        encode = t.native and encode_flag(request)
        storage = "Standard" if t.native else "STANDARD"
        upload, parts, truncated = self.model.list_parts(
            t.region, t.bucket, t.key, self._upload_id(request), marker, max_parts
        )
        owner = x.owner_fields(self.ctx.account_id)
        return xml_response(
            request,
            x.node(
                "ListPartsResult",
                x.el("EncodingType", "url") if encode else None,
                x.el("Bucket", t.bucket),
                x.el("Key", x.url_encode(t.key, encode)),
                x.el("UploadId", upload.upload_id),
                x.el("PartNumberMarker", marker),
                x.el("NextPartNumberMarker", parts[-1].number if parts else 0),
                x.el("MaxParts", max_parts),
                x.el("IsTruncated", truncated),
                x.node("Initiator", owner),
                x.node("Owner", owner),
                x.el("StorageClass", storage),
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
            native=t.native,
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
                        x.el("StorageClass", "Standard" if t.native else "STANDARD"),
                        x.el("Initiated", x.iso8601(self.model.wall(u.initiated))),
                    )
                    for u in uploads
                ],
            ),
            native=t.native,
        )
