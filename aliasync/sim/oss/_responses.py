"""OSS on both of its faces: routing, authentication, the mainland rule, errors.

The S3-compatible API answers on ``[<bucket>.]s3.oss-<region>[-internal].aliyuncs.com`` with
SigV4; the native API on ``[<bucket>.]oss-<region>[-internal].aliyuncs.com`` with OSS V1 and
V4 signatures. One bucket store is behind both: an object written through one face is read
through the other. Every fault of the core applies to both (they are one service, ``oss``).

Choices (beyond those in ``_models``):

* Internal endpoints answer only requests from inside their region (the functions the
  emulator runs there); from anywhere else the connection is dropped, as an unreachable host.
* Path-style requests (bucket in the path on the bare endpoint) are refused with 403
  ``SecondLevelDomainForbidden``, as OSS does, for every operation; only virtual-hosted style
  works. An invalid bucket name is reported as 400 ``InvalidBucketName`` (botocore sends such
  names path style).
* The S3 face serves only OSS's documented subset: ListBuckets, ListMultipartUploads and the
  sub-resources outside it are 400 ``NotImplemented`` (a guess; see the facts file, 12.4).
* Every account key may use every bucket of the account (no RAM policy evaluation).
* An expired presigned URL is 403 ``AccessDenied`` "Request has expired."; a header-signed
  request more than 15 minutes off is 403 ``RequestTimeTooSkewed``.
* ``PublicEndpointForbidden`` applies to every account (all are "new users" since 2025-03-20),
  on both faces, to every operation outside ``CONTROL_ACTIONS``.
* Native errors carry ``EC`` where its value is known (:data:`_EC`), and on HEAD, whose answer
  has no body, the error document base64-encoded in ``x-oss-err``, which the v2 SDK reads.
* ListBuckets lists the account's buckets of all regions, from any region's endpoint.
  GetBucketLocation answers from any region's endpoint, with ``oss-<region>``.
* ListMultipartUploads ignores ``delimiter``. Conditional GETs (If-Match, ...) are ignored.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from aliasync.sim import _signing as sig
from aliasync.sim._errors import DropConnection, SimError
from aliasync.sim._service import Route, SimRequest
from aliasync.sim.oss import _signing as oss_sig
from aliasync.sim.oss import _xml as x
from aliasync.sim.oss._bucket_ops import BucketOps
from aliasync.sim.oss._http import base_headers
from aliasync.sim.oss._models import OssError, valid_bucket_name
from aliasync.sim.oss._routing import (
    CONTROL_ACTIONS,
    S3_NOT_OFFERED,
    S3_NOT_OFFERED_ACTIONS,
    Target,
    action,
    target,
)

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

# OSS's EC detail codes, where public answers show them (docs/alibaba-api-facts.md section 12).
_EC = {
    "AccessDenied": "0003-00000001",
    "NoSuchKey": "0026-00000001",
    "NoSuchBucket": "0015-00000101",
    "InvalidAccessKeyId": "0002-00000902",
    "PublicEndpointForbidden": "0048-00000401",
    "MissingArgument": "0016-00000502",
}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


class OssService(BucketOps):
    """OSS in every region: the S3-compatible endpoints and the native ones."""

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
        if t.internal and request.origin_region != t.region:
            raise DropConnection  # an internal VIP: unreachable from outside its region
        params = dict(request.query)
        name, mutating = action(request.method, t, params, request.headers)
        endpoint = "internal" if t.internal else "public"
        return Route("oss", name, t.region, mutating, endpoint)

    async def handle(self, request: SimRequest, route: Route) -> web.StreamResponse:
        t = target(request.host, request.path)
        assert t is not None
        if t.path_style:
            # botocore falls back to path style for names that are not DNS labels: report
            # the name itself.
            if t.bucket is not None and not valid_bucket_name(t.bucket):
                raise OssError(
                    "InvalidBucketName",
                    "The specified bucket is not valid.",
                    400,
                    extra={"BucketName": t.bucket},
                )
            raise SimError(
                "SecondLevelDomainForbidden", "Please use virtual hosted style to access.", 403
            )
        if t.native:
            self._authenticate_native(request, t)
        else:
            self._authenticate(request)
            offered = route.action not in S3_NOT_OFFERED_ACTIONS
            if not offered or S3_NOT_OFFERED.intersection(dict(request.query)):
                raise SimError(
                    "NotImplemented",
                    "OSS's S3-compatible API does not support this operation.",
                    400,
                )
        info = self.ctx.regions.get(t.region)
        if (
            info is not None
            and info.mainland
            and not t.internal
            and route.action not in CONTROL_ACTIONS
        ):
            raise SimError(
                "PublicEndpointForbidden",
                "Not allowed using the OSS public endpoint, please use CNAME instead.",
                400,
                ec="0048-00000401",
            )
        handler: Handler = getattr(self, _snake(route.action))
        return await handler(request, route, t)

    def error_response(self, request: SimRequest, error: SimError) -> web.Response:
        t = target(request.host, request.path)
        native = t is not None and t.native
        code, message, status = error.code, error.message, error.status
        if code == "Throttling":
            code, message, status = "SlowDown", "Please reduce your request rate.", 503
        ec = error.ec or (_EC.get(code) if native else None)
        headers = {**base_headers(request, native), **error.headers}
        if ec:
            headers["x-oss-ec"] = ec
        extra = error.extra if isinstance(error, OssError) else {}
        root = x.node(
            "Error",
            x.el("Code", code),
            x.el("Message", message),
            x.el("RequestId", request.request_id),
            x.el("HostId", request.host),
            [x.el(k, v) for k, v in extra.items()],
            x.el("EC", ec) if ec else None,
        )
        body = x.document(root, namespaced=False)
        if request.method.upper() == "HEAD":
            if native:
                headers["x-oss-err"] = base64.b64encode(body).decode()
            return web.Response(status=status, headers=headers)
        return web.Response(
            status=status, body=body, headers=headers, content_type="application/xml"
        )

    # --- authentication ------------------------------------------------------------------

    def _authenticate(self, request: SimRequest) -> None:
        """The S3 face: SigV4 in the Authorization header or the query."""
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
        except sig.AuthFailure as exc:
            code = "AuthorizationHeaderMalformed" if "Authorization" in request.headers else None
            raise self._auth_error(exc, code) from None
        self._check_expiry(record.expires_at)

    def _authenticate_native(self, request: SimRequest, t: Target) -> None:
        """The native face: OSS V1 or V4, in the Authorization header or the query."""
        try:
            signed = oss_sig.verify_oss(
                request.method,
                t.bucket,
                t.key,
                t.region,
                request.query_string,
                request.headers,
                self.ctx.keys.lookup,
            )
        except oss_sig.WrongSigningRegion as exc:
            raise SimError("InvalidArgument", exc.reason, 400, ec="0002-00000226") from None
        except sig.AuthFailure as exc:
            raise self._auth_error(exc, "InvalidArgument") from None
        self._check_expiry(signed.record.expires_at)

    @staticmethod
    def _auth_error(exc: sig.AuthFailure, malformed_code: str | None) -> SimError:
        if isinstance(exc, sig.ExpiredRequest):
            if "presigned" in exc.reason:
                return SimError("AccessDenied", "Request has expired.", 403)
            return SimError(
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                403,
            )
        if isinstance(exc, sig.MalformedAuth):
            # The reason names what is wrong and never holds a secret.
            return SimError(malformed_code or "InvalidArgument", exc.reason, 400)
        for kind, (code, message, status) in _AUTH_ERRORS.items():
            if isinstance(exc, kind):
                return SimError(code, message, status)
        return SimError("AccessDenied", exc.reason, 403)

    def _check_expiry(self, expires_at: float | None) -> None:
        if expires_at is not None and expires_at <= self.ctx.clock.now():
            raise SimError(
                "InvalidSecurityToken", "The security token you provided has expired.", 403
            )
