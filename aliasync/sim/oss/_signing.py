"""OSS's own request signatures: V1 (``OSS <id>:<sig>``) and V4 (``OSS4-HMAC-SHA256``).

Both are verified from the bucket and key a request addresses (OSS signs those, never the
host), in the header form and the presigned (query) form, and raise the neutral failures of
:mod:`aliasync.sim._signing`, which the OSS service names. Canonical forms follow what the
official SDKs send (``alibabacloud-oss-v2`` ``signer/v1.py`` and ``signer/v4.py``, ``oss2``
``auth.py``); docs/alibaba-api-facts.md section 12 has the test vectors.

Choices:

* V1's canonical resource takes the query parameters of a known sub-resource list: the union
  of the two SDKs' lists (``lifecycle`` and ``bucketInfo`` included), so that either SDK's
  signature verifies; ``prefix``, ``max-keys``, ``encoding-type`` and the like are unsigned.
* V1 takes the STS token from ``x-oss-security-token`` (oss2, signed), ``security-token``
  (alibabacloud-oss-v2 sends it as an unsigned header) or the presigned ``security-token``.
* V4's credential scope must name the endpoint's region and the product ``oss``; another
  region is 400 "Invalid signing region" (:class:`WrongSigningRegion`).
* V4 query canonicalisation: the decoded pairs re-encoded (RFC 3986), then, failing that,
  the pairs exactly as sent (oss2 and the v2 SDK encode alike, other clients may not).
"""

from __future__ import annotations

import base64
import calendar
import email.utils
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, quote

from aliasync.sim._keys import KeyRecord
from aliasync.sim._signing import (
    MAX_PRESIGN_EXPIRES,
    MAX_SKEW,
    ExpiredRequest,
    Lookup,
    MalformedAuth,
    MalformedTimestamp,
    MissingAuth,
    SignatureMismatch,
    check_token,
    find_key,
)
from aliasync.sim._signing import InvalidSecurityToken as InvalidSecurityToken

__all__ = ["OssScheme", "WrongSigningRegion", "oss_scheme", "verify_oss"]

OssScheme = Literal["v1_header", "v1_query", "v4_header", "v4_query", "none"]

_V4 = "OSS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# alibabacloud-oss-v2 signer/v1.py _subresource_key_set, oss2 auth.py _subresource_key_set,
# and the per-operation sub-resources the v2 SDK adds (lifecycle, ...): their union.
V1_SUBRESOURCES = frozenset(
    {
        "acl", "append", "asyncFetch", "bucketInfo", "callback", "callback-var", "cloudboxes",
        "cname", "comp", "continuation-token", "cors", "delete", "encryption", "endTime",
        "group", "inventory", "inventoryId", "lifecycle", "link", "live", "location",
        "logging", "metaQuery", "objectInfo", "objectMeta", "partNumber", "policy", "position",
        "qos", "qosInfo", "referer", "regionList", "replication", "replicationLocation",
        "replicationProgress", "requestPayment", "resourceGroup", "response-cache-control",
        "response-content-disposition", "response-content-encoding",
        "response-content-language", "response-content-type", "response-expires", "restore",
        "security-token", "sequential", "startTime", "stat", "status", "symlink", "tagging",
        "transferAcceleration", "uploadId", "uploads", "versionId", "versioning", "versions",
        "vod", "website", "worm", "wormExtend", "wormId", "x-oss-process",
        "x-oss-request-payer", "x-oss-traffic-limit",
    }
)  # fmt: skip


class WrongSigningRegion(MalformedAuth):
    """A V4 credential scope naming another region (or product) than the endpoint's."""


@dataclass(frozen=True)
class Signed:
    """What a verified request was signed with."""

    record: KeyRecord
    scheme: OssScheme
    presigned: bool


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        out.setdefault(name.lower(), value)
    return out


def _pairs(query_string: str) -> list[tuple[str, str]]:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        raise MalformedAuth("a query parameter is repeated")
    return pairs


def oss_scheme(query_string: str, headers: Mapping[str, str]) -> OssScheme:
    """Which OSS signature a request carries (an Authorization header wins)."""
    auth = _lower(headers).get("authorization")
    if auth is not None:
        return "v4_header" if auth.lstrip().startswith(_V4) else "v1_header"
    names = {k for k, _ in parse_qsl(query_string, keep_blank_values=True)}
    if "x-oss-signature-version" in names or "x-oss-signature" in names:
        return "v4_query"
    if names & {"OSSAccessKeyId", "Signature"}:
        return "v1_query"
    return "none"


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _skew(signed_at: float, now: float | None) -> None:
    if abs(_now(now) - signed_at) > MAX_SKEW:
        raise ExpiredRequest("the request time differs from the server time by over 15 minutes")


def verify_oss(
    method: str,
    bucket: str | None,
    key: str,
    region: str,
    query_string: str,
    headers: Mapping[str, str],
    lookup: Lookup,
    now: float | None = None,
) -> Signed:
    """Verify an OSS V1 or V4 request addressing ``bucket``/``key`` in ``region``."""
    scheme = oss_scheme(query_string, headers)
    if scheme == "none":
        raise MissingAuth("the request carries no OSS signature")
    hdrs = _lower(headers)
    pairs = _pairs(query_string)
    if scheme.startswith("v4"):
        raw = [(k, v) for k, _, v in (p.partition("=") for p in query_string.split("&") if p)]
        record = _verify_v4(method, bucket, key, region, pairs, raw, hdrs, lookup, scheme, now)
    else:
        record = _verify_v1(method, bucket, key, pairs, hdrs, lookup, scheme, now)
    return Signed(record, scheme, scheme.endswith("query"))


# --- V1 ------------------------------------------------------------------------------------


def _v1_resource(bucket: str | None, key: str, pairs: list[tuple[str, str]]) -> str:
    uri = "/" if bucket is None else f"/{bucket}/{key}"
    signed = sorted((k, v) for k, v in pairs if k in V1_SUBRESOURCES)
    if not signed:
        return uri
    return uri + "?" + "&".join(f"{k}={v}" if v else k for k, v in signed)


def v1_string_to_sign(
    method: str, bucket: str | None, key: str, pairs: list[tuple[str, str]],
    headers: Mapping[str, str], date: str,
) -> str:  # fmt: skip
    """VERB, Content-MD5, Content-Type, Date, the x-oss-* headers and the resource."""
    hdrs = _lower(headers)
    oss_headers = "".join(f"{n}:{hdrs[n]}\n" for n in sorted(hdrs) if n.startswith("x-oss-"))
    return "\n".join(
        [
            method.upper(),
            hdrs.get("content-md5", ""),
            hdrs.get("content-type", ""),
            date,
            oss_headers + _v1_resource(bucket, key, pairs),
        ]
    )


def _v1_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _verify_v1(
    method: str,
    bucket: str | None,
    key: str,
    pairs: list[tuple[str, str]],
    hdrs: dict[str, str],
    lookup: Lookup,
    scheme: OssScheme,
    now: float | None,
) -> KeyRecord:
    params = dict(pairs)
    if scheme == "v1_header":
        name, _, credential = hdrs["authorization"].strip().partition(" ")
        access_key_id, sep, signature = credential.rpartition(":")
        if name != "OSS" or not sep or not access_key_id or not signature:
            raise MalformedAuth("the Authorization header must be 'OSS <AccessKeyId>:<Signature>'")
        date = hdrs.get("x-oss-date") or hdrs.get("date")
        if not date:
            raise MissingAuth("a V1 signed request needs a Date header")
        stamp = email.utils.parsedate_tz(date)
        if stamp is None:
            raise MalformedTimestamp("the Date header is not an RFC 1123 date")
        signed_at: float = email.utils.mktime_tz(stamp)
        token = hdrs.get("x-oss-security-token") or hdrs.get("security-token")
    else:
        access_key_id = params.get("OSSAccessKeyId", "")
        signature, date = params.get("Signature", ""), params.get("Expires", "")
        if not access_key_id or not signature or not date:
            raise MissingAuth("a V1 presigned URL needs OSSAccessKeyId, Expires and Signature")
        if not (date.isascii() and date.isdigit() and len(date) <= 12):
            raise MalformedTimestamp("Expires must be epoch seconds")
        signed_at = float(date)
        token = params.get("security-token")
        pairs = [(k, v) for k, v in pairs if k not in ("OSSAccessKeyId", "Expires", "Signature")]
    record = find_key(lookup, access_key_id)
    text = v1_string_to_sign(method, bucket, key, pairs, hdrs, date)
    if not _same(_v1_signature(record.secret, text), signature):
        raise SignatureMismatch("the OSS V1 signature does not match")
    if scheme == "v1_header":
        _skew(signed_at, now)
    elif _now(now) > signed_at:
        raise ExpiredRequest("the presigned URL has expired")
    check_token(record, token)
    return record


# --- V4 ------------------------------------------------------------------------------------


def _canonical_queries(pairs: list[tuple[str, str]], raw: list[tuple[str, str]]) -> list[str]:
    def join(items: list[tuple[str, str]]) -> str:
        return "&".join(f"{k}={v}" if v else k for k, v in sorted(items))

    encoded = [(quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs]
    return list(dict.fromkeys([join(encoded), join(raw)]))


def v4_canonical_request(
    method: str,
    bucket: str | None,
    key: str,
    query: str,
    headers: Mapping[str, str],
    additional: list[str],
    payload: str,
) -> str:
    """The V4 canonical request (signer/v4.py ``_calc_canonical_request``)."""
    hdrs = _lower(headers)
    uri = quote("/" if bucket is None else f"/{bucket}/{key}", safe="/")
    names = sorted(
        n
        for n in hdrs
        if n.startswith("x-oss-") or n in ("content-type", "content-md5") or n in additional
    )
    lines = "".join(f"{n}:{hdrs[n]}\n" for n in names)
    return f"{method.upper()}\n{uri}\n{query}\n{lines}\n{';'.join(additional)}\n{payload}"


def v4_signature(secret: str, date: str, region: str, product: str, text: str) -> str:
    """hex(HMAC-SHA256) with the key derived from ``aliyun_v4`` + secret and the scope."""
    k = hmac.new(f"aliyun_v4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, product, "aliyun_v4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return hmac.new(k, text.encode(), hashlib.sha256).hexdigest()


def _auth_fields(auth: str) -> dict[str, str]:
    name, _, rest = auth.strip().partition(" ")
    if name != _V4:
        raise MalformedAuth(f"unsupported signature algorithm {name[:40]!r}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        field, sep, value = part.strip().partition("=")
        if not sep:
            raise MalformedAuth("the Authorization header is not of the form Name=value,…")
        fields[field] = value.strip()
    return fields


def _verify_v4(
    method: str,
    bucket: str | None,
    key: str,
    region: str,
    pairs: list[tuple[str, str]],
    raw: list[tuple[str, str]],
    hdrs: dict[str, str],
    lookup: Lookup,
    scheme: OssScheme,
    now: float | None,
) -> KeyRecord:
    params = dict(pairs)
    expires: int | None = None
    if scheme == "v4_header":
        fields = _auth_fields(hdrs["authorization"])
        credential, signature = fields.get("Credential", ""), fields.get("Signature", "")
        extra = fields.get("AdditionalHeaders", "")
        stamp = hdrs.get("x-oss-date", "")
        payload = hdrs.get("x-oss-content-sha256", UNSIGNED_PAYLOAD)
        token = hdrs.get("x-oss-security-token")
    else:
        if params.get("x-oss-signature-version") != _V4:
            raise MalformedAuth("x-oss-signature-version must be OSS4-HMAC-SHA256")
        credential, signature = (
            params.get("x-oss-credential", ""),
            params.get("x-oss-signature", ""),
        )
        extra = params.get("x-oss-additional-headers", "")
        stamp, lifetime = params.get("x-oss-date", ""), params.get("x-oss-expires", "")
        if not (lifetime.isascii() and lifetime.isdigit() and len(lifetime) <= 9):
            raise MissingAuth("a V4 presigned URL needs x-oss-expires in seconds")
        expires = int(lifetime)
        if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
            raise MalformedAuth(f"x-oss-expires must be between 1 and {MAX_PRESIGN_EXPIRES}")
        payload = UNSIGNED_PAYLOAD
        token = params.get("x-oss-security-token")
        pairs = [(k, v) for k, v in pairs if k != "x-oss-signature"]
        raw = [(k, v) for k, v in raw if k != "x-oss-signature"]
    if not credential or not signature or not stamp:
        raise MissingAuth("a V4 signature needs its credential, signature and x-oss-date")
    try:
        signed_at = float(calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        raise MalformedTimestamp("x-oss-date is not YYYYMMDDTHHMMSSZ") from None
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aliyun_v4_request" or not scope[0]:
        raise MalformedAuth("the credential must be AKID/date/region/oss/aliyun_v4_request")
    if scope[1] != stamp[:8]:
        raise MalformedAuth("the credential scope date differs from x-oss-date")
    if scope[2] != region or scope[3] != "oss":
        raise WrongSigningRegion("Invalid signing region in Authorization header.")
    additional = [h for h in extra.split(";") if h]
    if additional != sorted({h.lower() for h in additional}):
        raise MalformedAuth("AdditionalHeaders must be sorted, distinct lower-case names")
    record = find_key(lookup, scope[0])
    date_scope = "/".join(scope[1:])
    for query in _canonical_queries(pairs, raw):
        canonical = v4_canonical_request(method, bucket, key, query, hdrs, additional, payload)
        digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
        text = f"{_V4}\n{stamp}\n{date_scope}\n{digest}"
        if _same(v4_signature(record.secret, scope[1], scope[2], scope[3], text), signature):
            break
    else:
        raise SignatureMismatch("the OSS4-HMAC-SHA256 signature does not match")
    if expires is None:
        _skew(signed_at, now)
    elif _now(now) > signed_at + expires:
        raise ExpiredRequest("the presigned URL has expired")
    elif signed_at > _now(now) + MAX_SKEW:
        raise ExpiredRequest("the presigned URL is not valid yet")
    check_token(record, token)
    return record
