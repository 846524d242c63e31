"""Service and bucket operations of the OSS emulator, on both faces (S3 and native).

The faces share the store and differ in names and XML: the native ListBuckets answers each
bucket's ``Location`` (``oss-<region>``) and ``Region`` and pages with ``marker``/``max-keys``,
giving ``Prefix``/``Marker``/``MaxKeys``/``IsTruncated``/``NextMarker`` only when the result is
filtered or truncated ([D21] GetService); the S3 face has no ListBuckets at all (see
``_responses``). Native listings add each object's ``Type``; storage classes are ``Standard``
natively and ``STANDARD`` through S3.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from aliasync.sim._errors import SimError
from aliasync.sim._service import Route, SimRequest
from aliasync.sim.oss import _xml as x
from aliasync.sim.oss._http import empty_response, small_body, xml_response
from aliasync.sim.oss._models import OssError
from aliasync.sim.oss._multipart import MultipartOps
from aliasync.sim.oss._objects import encode_flag, max_param
from aliasync.sim.oss._routing import Target


class BucketOps(MultipartOps):
    """Handlers for the service and bucket operations."""

    async def list_buckets(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        prefix = request.param("prefix") or ""
        marker = request.param("marker") or ""
        limit = max_param(request, "max-keys", 1000)
        found = [b for b in self.model.list_buckets(prefix) if not marker or b.name > marker]
        page, truncated = found[:limit], len(found) > limit
        owner = x.owner_fields(self.ctx.account_id)
        buckets = [
            x.node(
                "Bucket",
                x.el("CreationDate", x.iso8601(self.model.wall(b.created_at))),
                x.el("ExtranetEndpoint", f"oss-{b.region}.aliyuncs.com"),
                x.el("IntranetEndpoint", f"oss-{b.region}-internal.aliyuncs.com"),
                x.el("Location", f"oss-{b.region}"),
                x.el("Name", b.name),
                x.el("Region", b.region),
                x.el("StorageClass", "Standard"),
            )
            for b in page
        ]
        paged = truncated or bool(prefix or marker or request.param("max-keys"))
        return xml_response(
            request,
            x.node(
                "ListAllMyBucketsResult",
                x.el("Prefix", prefix) if paged else None,
                x.el("Marker", marker) if paged else None,
                x.el("MaxKeys", limit) if paged else None,
                x.el("IsTruncated", truncated) if paged else None,
                x.el("NextMarker", page[-1].name) if truncated else None,
                x.node("Owner", owner),
                x.node("Buckets", buckets),
            ),
            native=True,
        )

    async def create_bucket(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        assert t.bucket is not None
        location = x.location_constraint(await small_body(request, native=t.native))
        try:
            self.model.create_bucket(t.region, t.bucket, location)
        except OssError as exc:
            if t.native and exc.code == "BucketAlreadyOwnedByYou":
                # [D21] PutBucket lists only 409 BucketAlreadyExists.
                raise OssError(
                    "BucketAlreadyExists", "The requested bucket name is not available.", 409,
                    extra=exc.extra,
                ) from None  # fmt: skip
            raise
        if t.native:
            acl = request.headers.get("x-oss-acl", "private")
            if acl not in _ACLS:
                self.model.delete_bucket(t.region, t.bucket)
                raise _bad_acl()
            self.model.bucket(t.region, t.bucket).acl = acl
            return empty_response(request, native=True)
        return empty_response(request, headers={"Location": f"/{t.bucket}"})

    put_bucket = create_bucket

    async def delete_bucket(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        assert t.bucket is not None
        self.model.delete_bucket(t.region, t.bucket)
        return empty_response(request, 204, native=t.native)

    async def head_bucket(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        assert t.bucket is not None
        bucket = self.model.bucket(t.region, t.bucket)
        return empty_response(request, headers={"x-oss-bucket-region": bucket.region})

    async def get_bucket_location(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.Response:
        assert t.bucket is not None
        bucket = self.model.bucket(None, t.bucket)
        root = x.el("LocationConstraint", f"oss-{bucket.region}")
        return xml_response(request, root, native=t.native)

    async def get_bucket_info(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        assert t.bucket is not None
        b = self.model.bucket(t.region, t.bucket)
        info = x.node(
            "Bucket",
            x.el("AccessMonitor", "Disabled"),
            x.el("CreationDate", x.iso8601(self.model.wall(b.created_at))),
            x.el("CrossRegionReplication", "Disabled"),
            x.el("DataRedundancyType", "LRS"),
            x.el("ExtranetEndpoint", f"oss-{b.region}.aliyuncs.com"),
            x.el("IntranetEndpoint", f"oss-{b.region}-internal.aliyuncs.com"),
            x.el("Location", f"oss-{b.region}"),
            x.el("Name", b.name),
            x.el("StorageClass", "Standard"),
            x.el("TransferAcceleration", "Disabled"),
            x.node("Owner", x.owner_fields(b.owner)),
            x.node("AccessControlList", x.el("Grant", b.acl)),
            x.node("ServerSideEncryptionRule", x.el("SSEAlgorithm", "None")),
            x.node("BucketPolicy", x.el("LogBucket", ""), x.el("LogPrefix", "")),
        )
        return xml_response(request, x.node("BucketInfo", info), native=True)

    async def get_bucket_acl(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        assert t.bucket is not None
        b = self.model.bucket(t.region, t.bucket)
        policy = x.node(
            "AccessControlPolicy",
            x.node("Owner", x.owner_fields(b.owner)),
            x.node("AccessControlList", x.el("Grant", b.acl)),
        )
        return xml_response(request, policy, native=True)

    async def put_bucket_acl(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        assert t.bucket is not None
        bucket = self.model.bucket(t.region, t.bucket)
        acl = request.headers.get("x-oss-acl", "")
        if acl not in _ACLS:
            raise _bad_acl()
        bucket.acl = acl
        return empty_response(request, native=True)

    async def put_bucket_lifecycle(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.Response:
        assert t.bucket is not None
        self.model.bucket(t.region, t.bucket)  # NoSuchBucket before the body's faults
        body = await small_body(request, native=True)
        self.model.set_lifecycle(t.region, t.bucket, x.lifecycle_rules(body))
        return empty_response(request, native=True)

    async def get_bucket_lifecycle(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.Response:
        assert t.bucket is not None
        rules = self.model.lifecycle(t.region, t.bucket)
        return xml_response(request, x.lifecycle_document(rules), native=True)

    async def delete_bucket_lifecycle(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.Response:
        assert t.bucket is not None
        self.model.set_lifecycle(t.region, t.bucket, ())
        return empty_response(request, 204, native=True)

    async def list_objects(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        return self._list(request, t, v2=False)

    async def list_objects_v2(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        return self._list(request, t, v2=True)

    def _list(self, request: SimRequest, t: Target, *, v2: bool) -> web.Response:
        assert t.bucket is not None
        encode = encode_flag(request)

        def enc(value: str) -> str:
            return x.url_encode(value, encode)

        prefix = request.param("prefix") or ""
        delimiter = request.param("delimiter") or ""
        max_keys = max_param(request, "max-keys")
        token = request.param("continuation-token") if v2 else None
        start_after = (request.param("start-after") or "") if v2 else ""
        marker = "" if v2 else (request.param("marker") or "")
        after = decode_token(token) if token else (start_after if v2 else marker)
        listing = self.model.list_objects(t.region, t.bucket, prefix, delimiter, after, max_keys)
        owner = x.owner_fields(self.ctx.account_id)
        with_owner = not v2 or request.param("fetch-owner") == "true"
        storage = "Standard" if t.native else "STANDARD"
        contents = [
            x.node(
                "Contents",
                x.el("Key", enc(o.key)),
                x.el("LastModified", x.iso8601(self.model.wall(o.last_modified))),
                x.el("ETag", f'"{o.etag}"'),
                x.el("Type", "Multipart" if "-" in o.etag else "Normal") if t.native else None,
                x.el("Size", o.size),
                x.el("StorageClass", storage),
                x.node("Owner", owner) if with_owner else None,
            )
            for o in listing.objects
        ]
        prefixes = [x.node("CommonPrefixes", x.el("Prefix", enc(p))) for p in listing.prefixes]
        nxt = listing.next_marker
        if v2:
            paging: list[x.Element | None] = [
                x.el("KeyCount", len(listing.objects) + len(listing.prefixes)),
                x.el("ContinuationToken", token) if token else None,
                x.el("NextContinuationToken", encode_token(nxt)) if nxt else None,
                x.el("StartAfter", enc(start_after)) if start_after else None,
            ]
        else:
            paging = [
                x.el("Marker", enc(marker)),
                x.el("NextMarker", enc(nxt)) if nxt else None,
            ]
        return xml_response(
            request,
            x.node(
                "ListBucketResult",
                x.el("Name", t.bucket),
                x.el("Prefix", enc(prefix)),
                x.el("Delimiter", enc(delimiter)) if delimiter else None,
                x.el("MaxKeys", max_keys),
                x.el("EncodingType", "url") if encode else None,
                x.el("IsTruncated", listing.truncated),
                [p for p in paging if p is not None],
                contents,
                prefixes,
            ),
            native=t.native,
        )


_ACLS = ("private", "public-read", "public-read-write")


def _bad_acl() -> SimError:
    return SimError("InvalidArgument", "no such bucket access control exists", 400)


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SimError(
            "InvalidArgument", "The continuation token provided is incorrect", 400
        ) from None
