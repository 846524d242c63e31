"""OSS through its S3-compatible API: routing, authentication, bucket operations, errors.

Choices (beyond those in ``_models``):

* Path-style requests (bucket in the path on the bare endpoint) are refused with 403
  ``SecondLevelDomainForbidden``, as OSS does; only virtual-hosted style works. Two
  exceptions: an invalid bucket name is reported as 400 ``InvalidBucketName`` (botocore sends
  such names path style), and GetBucketLocation, which botocore always sends path style, is
  served.
* Every account key may use every bucket of the account (no RAM policy evaluation).
* An expired presigned URL is 403 ``AccessDenied`` "Request has expired."; a header-signed
  request more than 15 minutes off is 403 ``RequestTimeTooSkewed``.
* ``PublicEndpointForbidden`` applies to every account (all are "new users" since 2025-03-20).
* ListBuckets lists the account's buckets of all regions, from any region's endpoint; it pages
  with OSS's ``marker``/``max-keys`` or S3's ``continuation-token``/``max-buckets``.
* GetBucketLocation answers from any region's endpoint, with ``oss-<region>``.
* ListMultipartUploads ignores ``delimiter``. Conditional GETs (If-Match, ...) are ignored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from aliasync.sim import _signing as sig
from aliasync.sim._errors import DropConnection, SimError
from aliasync.sim._service import Route, SimRequest
from aliasync.sim.oss import _xml as x
from aliasync.sim.oss._http import base_headers, empty_response, small_body, xml_response
from aliasync.sim.oss._models import OssError, valid_bucket_name
from aliasync.sim.oss._objects import ObjectOps, encode_flag, max_param
from aliasync.sim.oss._routing import CONTROL_ACTIONS, Target, action, target

if TYPE_CHECKING:
    from aliasync.sim._context import SimContext

Handler = Callable[[SimRequest, Route, Target], Awaitable[web.StreamResponse]]

_AUTH_ERRORS: dict[type[sig.AuthFailure], tuple[str, str, int]] = {
    sig.UnknownAccessKey: (
        "InvalidAccessKeyId",
        "The OSS Access Key Id you provided does not exist in our records.",
        403,
    ),
    sig.SignatureMismatch: (
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        403,
    ),
    sig.MissingAuth: ("AccessDenied", "AccessDenied: anonymous access is not allowed.", 403),
    sig.InvalidSecurityToken: (
        "InvalidSecurityToken",
        "The security token you provided is invalid.",
        403,
    ),
}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


class OssService(ObjectOps):
    """The OSS S3-compatible endpoints of every region (``s3.oss-<region>[-internal]…``)."""

    name = "oss"

    def __init__(self, ctx: SimContext) -> None:
        super().__init__(ctx)
        ctx.models["oss"] = self.model

    # --- the Service protocol ------------------------------------------------------------

    def route(self, request: SimRequest) -> Route | None:
        t = target(request.host, request.path)
        if t is None:
            return None
        info = self.ctx.regions.get(t.region)
        if info is None or not info.oss:
            raise DropConnection  # no such endpoint: as if its DNS name did not resolve
        params = dict(request.query)
        name, mutating = action(request.method, t, params, request.headers)
        endpoint = "internal" if t.internal else "public"
        return Route("oss", name, t.region, mutating, endpoint)

    async def handle(self, request: SimRequest, route: Route) -> web.StreamResponse:
        t = target(request.host, request.path)
        assert t is not None
        if t.path_style:
            # botocore falls back to path style for names that are not DNS labels: report
            # the name itself. It also always sends GetBucketLocation path style: allowed.
            if t.bucket is not None and not valid_bucket_name(t.bucket):
                raise OssError(
                    "InvalidBucketName",
                    "The specified bucket is not valid.",
                    400,
                    extra={"BucketName": t.bucket},
                )
            if route.action != "GetBucketLocation":
                raise SimError(
                    "SecondLevelDomainForbidden", "Please use virtual hosted style to access.", 403
                )
        self._authenticate(request)
        info = self.ctx.regions.get(t.region)
        if (
            info is not None
            and info.mainland
            and not t.internal
            and route.action not in CONTROL_ACTIONS
        ):
            raise SimError(
                "PublicEndpointForbidden",
                "Data API access through the default public endpoint of a Chinese mainland "
                "region is forbidden. Use a custom domain name or the internal endpoint.",
                400,
                ec="0048-00000401",
            )
        handler: Handler = getattr(self, _snake(route.action))
        return await handler(request, route, t)

    def error_response(self, request: SimRequest, error: SimError) -> web.Response:
        code, message, status = error.code, error.message, error.status
        if code == "Throttling":
            code, message, status = "SlowDown", "Please reduce your request rate.", 503
        headers = {**base_headers(request), **error.headers}
        if error.ec:
            headers["x-oss-ec"] = error.ec
        if request.method.upper() == "HEAD":
            return web.Response(status=status, headers=headers)
        extra = error.extra if isinstance(error, OssError) else {}
        root = x.node(
            "Error",
            x.el("Code", code),
            x.el("Message", message),
            x.el("RequestId", request.request_id),
            x.el("HostId", request.host),
            x.el("EC", error.ec) if error.ec else None,
            [x.el(k, v) for k, v in extra.items()],
        )
        return web.Response(
            status=status,
            body=x.document(root, namespaced=False),
            headers=headers,
            content_type="application/xml",
        )

    # --- authentication ------------------------------------------------------------------

    def _authenticate(self, request: SimRequest) -> None:
        try:
            record = sig.verify_sigv4(
                request.method,
                request.path,
                request.query_string,
                request.headers,
                self.ctx.keys.lookup,
            )
        except sig.ChunkedUploadRefused:
            raise SimError(
                "InvalidArgument",
                "aws-chunked encoding is not supported with the specified "
                "x-amz-content-sha256 value.",
                400,
                ec="0017-00000804",
            ) from None
        except sig.ExpiredRequest as exc:
            if "presigned" in exc.reason:
                raise SimError("AccessDenied", "Request has expired.", 403) from None
            raise SimError(
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                403,
            ) from None
        except sig.MalformedAuth as exc:
            # The reason names what is wrong and never holds a secret.
            code = (
                "AuthorizationHeaderMalformed"
                if "Authorization" in request.headers
                else ("InvalidArgument")
            )
            raise SimError(code, exc.reason, 400) from None
        except sig.AuthFailure as exc:
            for kind, (code, message, status) in _AUTH_ERRORS.items():
                if isinstance(exc, kind):
                    raise SimError(code, message, status) from None
            raise SimError("AccessDenied", exc.reason, 403) from None
        if record.expires_at is not None and record.expires_at <= self.ctx.clock.now():
            raise SimError(
                "InvalidSecurityToken", "The security token you provided has expired.", 403
            )

    # --- service and bucket operations ---------------------------------------------------

    async def list_buckets(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        prefix = request.param("prefix") or ""
        marker = request.param("marker") or ""
        token = request.param("continuation-token")
        oss_paging = request.param("max-keys") is not None or bool(marker)
        limit = max_param(request, "max-keys" if oss_paging else "max-buckets", 10000)
        if token:
            marker = _decode_token(token)
        found = self.model.list_buckets(prefix, request.param("bucket-region") or None)
        found = [b for b in found if b.name > marker] if marker else found
        page, truncated = found[:limit], len(found) > limit
        owner = x.owner_fields(self.ctx.account_id)
        buckets = [
            x.node(
                "Bucket",
                x.el("Name", b.name),
                x.el("CreationDate", x.iso8601(self.model.wall(b.created_at))),
                x.el("BucketRegion", b.region),
                x.el("Location", f"oss-{b.region}"),
            )
            for b in page
        ]
        next_name = page[-1].name if truncated else None
        return xml_response(
            request,
            x.node(
                "ListAllMyBucketsResult",
                x.node("Owner", owner),
                x.node("Buckets", buckets),
                x.el("Prefix", prefix) if prefix else None,
                x.el("Marker", marker) if oss_paging else None,
                x.el("MaxKeys", limit) if oss_paging else None,
                x.el("IsTruncated", truncated) if oss_paging else None,
                x.el("NextMarker", next_name) if oss_paging and next_name else None,
                x.el("ContinuationToken", _encode_token(next_name))
                if next_name and not oss_paging
                else None,
            ),
        )

    async def create_bucket(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        assert t.bucket is not None
        location = x.location_constraint(await small_body(request))
        self.model.create_bucket(t.region, t.bucket, location)
        return empty_response(request, headers={"Location": f"/{t.bucket}"})

    async def delete_bucket(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        assert t.bucket is not None
        self.model.delete_bucket(t.region, t.bucket)
        return empty_response(request, 204)

    async def head_bucket(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        assert t.bucket is not None
        bucket = self.model.bucket(t.region, t.bucket)
        return empty_response(
            request,
            headers={"x-amz-bucket-region": bucket.region, "x-oss-bucket-region": bucket.region},
        )

    async def get_bucket_location(
        self, request: SimRequest, route: Route, t: Target
    ) -> web.Response:
        assert t.bucket is not None
        bucket = self.model.bucket(None, t.bucket)
        return xml_response(request, x.el("LocationConstraint", f"oss-{bucket.region}"))

    async def list_objects(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        return self._list(request, t, v2=False)

    async def list_objects_v2(self, request: SimRequest, route: Route, t: Target) -> web.Response:
        return self._list(request, t, v2=True)

    def _list(self, request: SimRequest, t: Target, *, v2: bool) -> web.Response:
        assert t.bucket is not None
        encode = encode_flag(request)
        prefix = request.param("prefix") or ""
        delimiter = request.param("delimiter") or ""
        max_keys = max_param(request, "max-keys")
        token = request.param("continuation-token") if v2 else None
        start_after = (request.param("start-after") or "") if v2 else ""
        marker = "" if v2 else (request.param("marker") or "")
        after = _decode_token(token) if token else (start_after if v2 else marker)
        listing = self.model.list_objects(t.region, t.bucket, prefix, delimiter, after, max_keys)
        owner = x.owner_fields(self.ctx.account_id)
        with_owner = not v2 or request.param("fetch-owner") == "true"
        contents = [
            x.node(
                "Contents",
                x.el("Key", x.url_encode(o.key, encode)),
                x.el("LastModified", x.iso8601(self.model.wall(o.last_modified))),
                x.el("ETag", f'"{o.etag}"'),
                x.el("Size", o.size),
                x.el("StorageClass", "STANDARD"),
                x.node("Owner", owner) if with_owner else None,
            )
            for o in listing.objects
        ]
        prefixes = [
            x.node("CommonPrefixes", x.el("Prefix", x.url_encode(p, encode)))
            for p in listing.prefixes
        ]
        nxt = listing.next_marker
        if v2:
            paging: list[x.Element | None] = [
                x.el("KeyCount", len(listing.objects) + len(listing.prefixes)),
                x.el("ContinuationToken", token) if token else None,
                x.el("NextContinuationToken", _encode_token(nxt)) if nxt else None,
                x.el("StartAfter", x.url_encode(start_after, encode)) if start_after else None,
            ]
        else:
            paging = [
                x.el("Marker", x.url_encode(marker, encode)),
                x.el("NextMarker", x.url_encode(nxt, encode)) if nxt else None,
            ]
        return xml_response(
            request,
            x.node(
                "ListBucketResult",
                x.el("Name", t.bucket),
                x.el("Prefix", x.url_encode(prefix, encode)),
                x.el("Delimiter", x.url_encode(delimiter, encode)) if delimiter else None,
                x.el("MaxKeys", max_keys),
                x.el("EncodingType", "url") if encode else None,
                x.el("IsTruncated", listing.truncated),
                [p for p in paging if p is not None],
                contents,
                prefixes,
            ),
        )


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SimError(
            "InvalidArgument", "The continuation token provided is incorrect", 400
        ) from None
