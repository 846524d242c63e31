"""Request-signature verification for the emulator: ACS3, RPC V1 and S3 SigV4.

The verifiers are service-agnostic: they recompute the signature the official client computed
and raise a neutral :class:`AuthFailure` subclass; each service maps those to its own error
codes. Canonical forms follow what the installed SDKs really send (tea-openapi for ACS3 and
RPC V1, botocore for SigV4). Query strings are canonicalised from the *decoded* pairs
(``parse_qsl``: ``+`` is a space), the values a service acts on, so what is verified is what
is executed.

Choices:

* S3 signature V2 (``Authorization: AWS AKID:sig`` or ``?AWSAccessKeyId=…&Signature=…``) is
  refused as :class:`MalformedAuth`: its canonical resource needs the bucket name, which only
  the service can derive from the host, and aliasync signs with SigV4.
* RPC V1 verifies the query string only; form-encoded body parameters (which the SDK would also
  sign) are not supported because the ECS client never sends them.
* SigV4 needs X-Amz-Date: botocore signs with a ``Date`` header instead only when the caller
  set one, and such requests are refused as MissingAuth. The credential scope's region and
  service are not checked against the endpoint.
* ``KeyRecord.expires_at`` runs on the emulator's virtual clock, so the service checks it.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote

from aliasync.sim._keys import KeyRecord

Lookup = Callable[[str], KeyRecord | None]
AuthScheme = Literal["acs3", "rpc_v1", "sigv4_header", "sigv4_query", "none"]

MAX_SKEW = 15 * 60
MAX_PRESIGN_EXPIRES = 604800
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_ACS3 = "ACS3-HMAC-SHA256"
_SIGV4 = "AWS4-HMAC-SHA256"
_ISO_BASIC = "%Y%m%dT%H%M%SZ"
_ISO_EXTENDED = "%Y-%m-%dT%H:%M:%SZ"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class AuthFailure(Exception):
    """The request is not authenticated; ``reason`` is safe to show (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MissingAuth(AuthFailure):
    """No credentials at all, or a required auth parameter or header is missing."""


class MalformedAuth(AuthFailure):
    """The Authorization header or auth parameters cannot be parsed or are unsupported."""


class MalformedTimestamp(MalformedAuth):
    """A signature's date or timestamp is not in the format its scheme prescribes."""


class UnknownAccessKey(AuthFailure):
    """The access key ID is not in the store."""


class SignatureMismatch(AuthFailure):
    """The recomputed signature (or the body hash) differs from what the client sent."""


class ExpiredRequest(AuthFailure):
    """A presigned URL expired, or the request time is skewed more than 15 minutes."""


class InvalidSecurityToken(AuthFailure):
    """An STS key without its security token, or a token that does not belong to the key."""


class ChunkedUploadRefused(AuthFailure):
    """The client announced an aws-chunked (STREAMING-*) body, which OSS does not accept."""


# --- shared helpers --------------------------------------------------------------------------


def _header_lists(headers: Mapping[str, str]) -> dict[str, list[str]]:
    # items() yields every value of a multidict, one per key of a plain dict.
    out: dict[str, list[str]] = {}
    for name, value in headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _unique_params(query_string: str) -> dict[str, str]:
    # The Alibaba SDKs build the query from a dict; a repeated key could make the signed value
    # and the executed value differ, so it is refused.
    params: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key in params:
            raise MalformedAuth(f"query parameter {key[:64]!r} is repeated")
        params[key] = value
    return params


def _raw(text: str) -> bytes:
    # aiohttp decodes header bytes that are not UTF-8 as surrogates: these are the bytes sent.
    return text.encode("utf-8", "surrogateescape")


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(_raw(expected), _raw(given))


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_time(value: str, fmt: str, what: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(value, fmt)))
    except ValueError:
        raise MalformedTimestamp(f"{what} is not a valid timestamp") from None


def _check_skew(signed_at: float, now: float | None) -> None:
    if abs((time.time() if now is None else now) - signed_at) > MAX_SKEW:
        raise ExpiredRequest("the request time differs from the server time by over 15 minutes")


def find_key(lookup: Lookup, access_key_id: str) -> KeyRecord:
    """The key record of ``access_key_id``; UnknownAccessKey if there is none."""
    record = lookup(access_key_id)
    if record is None:
        raise UnknownAccessKey(f"access key ID {access_key_id[:128]!r} does not exist")
    return record


def check_token(record: KeyRecord, token: str | None) -> None:
    """A temporary key comes with its own security token, a long-lived one with none."""
    if record.security_token is None:
        if token:
            raise InvalidSecurityToken("a security token was sent with a long-lived access key")
    elif not token:
        raise InvalidSecurityToken("the temporary access key requires its security token")
    elif not _same(record.security_token, token):
        raise InvalidSecurityToken("the security token does not match the access key")


def _parse_authorization(auth: str, algorithm: str) -> tuple[str, str, list[str], str]:
    """Credential, SignedHeaders (as sent and as a list) and Signature of an auth header."""
    name, _, rest = auth.strip().partition(" ")
    if name != algorithm:
        raise MalformedAuth(f"unsupported signature algorithm {name[:40]!r}")
    fields: dict[str, str] = {}
    # "Credential=…,SignedHeaders=…,Signature=…" with or without spaces after the commas.
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise MalformedAuth("the Authorization header is not of the form Name=value,…")
        fields[key] = value.strip()
    credential, signed = fields.get("Credential"), fields.get("SignedHeaders")
    signature = fields.get("Signature")
    if not credential or not signed or not signature:
        raise MalformedAuth("Authorization needs Credential, SignedHeaders and Signature")
    return credential, signed, _signed_names(signed), signature


def _signed_names(value: str) -> list[str]:
    names = value.split(";")
    if any(not n or n != n.strip().lower() for n in names) or len(set(names)) != len(names):
        raise MalformedAuth("SignedHeaders must be distinct lower-case header names")
    return names


def _canonical_headers(
    hdrs: dict[str, list[str]], names: list[str], value: Callable[[list[str]], str]
) -> str:
    lines = []
    for name in names:
        values = hdrs.get(name)
        if values is None:
            raise SignatureMismatch(f"signed header {name[:64]!r} is missing from the request")
        lines.append(f"{name}:{value(values)}\n")
    return "".join(lines)


def auth_scheme(query_string: str, headers: Mapping[str, str]) -> AuthScheme:
    """Which signature scheme a request uses, to choose the verifier.

    An ``Authorization`` header wins over query parameters. Headers starting with ``AWS``
    (SigV4 or the refused S3 V2) are ``sigv4_header``; any other Authorization header is
    ``acs3`` (``verify_acs3`` reports an unsupported algorithm as MalformedAuth). S3 V2
    presigned parameters count as ``sigv4_query`` so that ``verify_sigv4`` refuses them.
    """
    auth = _first(_header_lists(headers), "authorization")
    if auth is not None:
        return "sigv4_header" if auth.lstrip().startswith("AWS") else "acs3"
    names = {key for key, _ in parse_qsl(query_string, keep_blank_values=True)}
    if names & {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "AWSAccessKeyId"}:
        return "sigv4_query"
    if names & {"Signature", "AccessKeyId"}:
        return "rpc_v1"
    return "none"


# --- ACS3-HMAC-SHA256 (Alibaba OpenAPI V3: ECS RPC over V3, FC ROA) --------------------------


def verify_acs3(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup: Lookup,
    now: float | None = None,
) -> KeyRecord:
    """Verify an ``Authorization: ACS3-HMAC-SHA256 …`` request; return the signing key."""
    hdrs = _header_lists(headers)
    auth = _first(hdrs, "authorization")
    if auth is None:
        raise MissingAuth("the Authorization header is missing")
    credential, signed, names, signature = _parse_authorization(auth, _ACS3)
    if "x-acs-date" not in names:
        raise MalformedAuth("x-acs-date must be a signed header")
    date, content_sha = _first(hdrs, "x-acs-date"), _first(hdrs, "x-acs-content-sha256")
    if date is None or content_sha is None:
        raise MissingAuth("the x-acs-date and x-acs-content-sha256 headers are required")
    signed_at = _parse_time(date, _ISO_EXTENDED, "x-acs-date")
    key_header = _first(hdrs, "x-acs-accesskey-id")
    if key_header is not None and key_header != credential:
        raise MalformedAuth("x-acs-accesskey-id differs from the Authorization credential")
    record = find_key(lookup, credential)

    params = _unique_params(query_string)
    # tea-openapi leaves keys unencoded and encodes values with quote(safe='~').
    query = "&".join(f"{k}={quote(params[k], safe='~')}" for k in sorted(params))
    # tea-openapi strips each value and joins repeated headers sorted.
    lines = _canonical_headers(hdrs, names, lambda vs: ",".join(sorted(v.strip() for v in vs)))
    canonical = f"{method.upper()}\n{path or '/'}\n{query}\n{lines}\n{signed}\n{content_sha}"
    string_to_sign = f"{_ACS3}\n{_sha256_hex(_raw(canonical))}"
    expected = hmac.new(record.secret.encode(), string_to_sign.encode(), hashlib.sha256)
    if not _same(expected.hexdigest(), signature.lower()):
        raise SignatureMismatch("the ACS3-HMAC-SHA256 signature does not match")
    # The signature only covers the claimed hash; the body itself must match the claim.
    if not _same(_sha256_hex(body), content_sha.lower()):
        raise SignatureMismatch("the body does not match x-acs-content-sha256")
    _check_skew(signed_at, now)
    check_token(record, _first(hdrs, "x-acs-security-token"))
    return record


# --- RPC V1 (HMAC-SHA1, Signature in the query) ---------------------------------------------


def verify_rpc_v1(
    method: str, query_string: str, lookup: Lookup, now: float | None = None
) -> KeyRecord:
    """Verify an RPC request signed with ``SignatureMethod=HMAC-SHA1``; return the key."""
    params = _unique_params(query_string)
    signature = params.pop("Signature", None)
    access_key_id, stamp = params.get("AccessKeyId"), params.get("Timestamp")
    if signature is None or access_key_id is None or stamp is None:
        raise MissingAuth("the Signature, AccessKeyId and Timestamp parameters are required")
    if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
        raise MalformedAuth("SignatureMethod must be HMAC-SHA1 and SignatureVersion 1.0")
    signed_at = _parse_time(stamp, _ISO_EXTENDED, "Timestamp")
    record = find_key(lookup, access_key_id)

    canonical = "&".join(
        f"{quote(k, safe='~')}={quote(params[k], safe='~')}" for k in sorted(params)
    )
    # The SDK applies quote_plus(safe='~'); nothing in ``canonical`` is a space, so plain
    # quote gives the same string.
    string_to_sign = f"{method.upper()}&%2F&{quote(canonical, safe='~')}"
    digest = hmac.new(f"{record.secret}&".encode(), string_to_sign.encode(), hashlib.sha1)
    if not _same(base64.b64encode(digest.digest()).decode(), signature):
        raise SignatureMismatch("the HMAC-SHA1 signature does not match")
    _check_skew(signed_at, now)
    check_token(record, params.get("SecurityToken"))
    return record


# --- S3 SigV4 (OSS's S3-compatible API) ------------------------------------------------------


def payload_hash_claim(headers: Mapping[str, str]) -> str | None:
    """The lower-case hex SHA-256 the client claims for the body, None if unsigned or absent.

    Raises ChunkedUploadRefused for any ``STREAMING-*`` value and MalformedAuth for anything
    that is neither ``UNSIGNED-PAYLOAD`` nor 64 hex digits.
    """
    value = _first(_header_lists(headers), "x-amz-content-sha256")
    if value is None or value == UNSIGNED_PAYLOAD:
        return None
    if value.startswith("STREAMING-"):
        raise ChunkedUploadRefused("aws-chunked uploads (x-amz-content-sha256: STREAMING-*)")
    if not _HEX64.fullmatch(value):
        raise MalformedAuth("x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256 hex")
    return value.lower()


def verify_sigv4(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    lookup: Lookup,
    now: float | None = None,
) -> KeyRecord:
    """Verify a SigV4 request, by Authorization header or presigned query; return the key.

    The payload hash signed is whatever ``x-amz-content-sha256`` claims; the caller compares a
    hex claim (:func:`payload_hash_claim`) with the streamed body itself.
    """
    hdrs = _header_lists(headers)
    claim = _first(hdrs, "x-amz-content-sha256")
    payload_hash_claim(headers)  # refuses aws-chunked and malformed claims up front
    pairs = parse_qsl(query_string, keep_blank_values=True)
    qnames = {key for key, _ in pairs}
    auth = _first(hdrs, "authorization")
    presigned = bool(qnames & {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"})
    current = time.time() if now is None else now
    if auth is not None and presigned:
        raise MalformedAuth("only one auth mechanism (header or query) is allowed")
    if (auth or "").startswith("AWS ") or (not presigned and "AWSAccessKeyId" in qnames):
        raise MalformedAuth("S3 signature version 2 is not supported; sign with SigV4")

    expires: int | None = None
    if auth is not None:
        credential, signed, names, signature = _parse_authorization(auth, _SIGV4)
        if claim is None:
            raise MissingAuth("the x-amz-content-sha256 header is required")
        amz_date, payload = _first(hdrs, "x-amz-date"), claim
        token = _first(hdrs, "x-amz-security-token")
    elif presigned:
        params = _unique_params(query_string)
        if params.get("X-Amz-Algorithm") != _SIGV4:
            raise MalformedAuth("X-Amz-Algorithm must be AWS4-HMAC-SHA256")
        keys = ("Credential", "SignedHeaders", "Signature", "Expires")
        credential, signed, signature, lifetime = (params.get(f"X-Amz-{k}", "") for k in keys)
        amz_date = params.get("X-Amz-Date")
        if not credential or not signed or not signature or not lifetime:
            raise MissingAuth("a presigned URL needs every X-Amz-* authentication parameter")
        digits = lifetime.isascii() and lifetime.isdigit() and len(lifetime) <= 9
        if not digits or not 1 <= int(lifetime) <= MAX_PRESIGN_EXPIRES:
            raise MalformedAuth(f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES}")
        expires, names = int(lifetime), _signed_names(signed)
        # botocore signs a presigned payload as UNSIGNED-PAYLOAD unless the header was present
        # (and therefore signed) when the URL was made.
        payload = claim if claim and "x-amz-content-sha256" in names else UNSIGNED_PAYLOAD
        pairs = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
        token = params.get("X-Amz-Security-Token")
    else:
        raise MissingAuth("the request carries no SigV4 credentials")

    if amz_date is None:
        raise MissingAuth("the X-Amz-Date header or parameter is required")
    signed_at = _parse_time(amz_date, _ISO_BASIC, "X-Amz-Date")
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not scope[0]:
        raise MalformedAuth("the credential must be AKID/date/region/service/aws4_request")
    if scope[1] != amz_date[:8]:
        raise MalformedAuth("the credential scope date differs from X-Amz-Date")
    if "host" not in names:
        raise MalformedAuth("the host header must be signed")
    record = find_key(lookup, scope[0])

    query = "&".join(
        f"{k}={v}"
        for k, v in sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    )
    # SigV4 "trimall": strip and collapse inner runs of spaces; repeats joined in order.
    lines = _canonical_headers(hdrs, names, lambda vs: ",".join(" ".join(v.split()) for v in vs))
    key = f"AWS4{record.secret}".encode()
    for part in [*scope[1:4], "aws4_request"]:
        key = hmac.new(key, _raw(part), hashlib.sha256).digest()
    # S3 never normalises or double-encodes the path. botocore signs the key encoded once
    # (quote(key, safe='/~')), but clients such as aiohttp re-quote URLs on the way ('%2A'
    # arrives as '*'), so the path as sent and its decode-then-encode-once form are both
    # tried; they name the same object.
    for uri in dict.fromkeys([path or "/", quote(unquote(path or "/"), safe="/~")]):
        canonical = f"{method.upper()}\n{uri}\n{query}\n{lines}\n{signed}\n{payload}"
        text = "\n".join([_SIGV4, amz_date, "/".join(scope[1:]), _sha256_hex(_raw(canonical))])
        if _same(hmac.new(key, _raw(text), hashlib.sha256).hexdigest(), signature.lower()):
            break
    else:
        raise SignatureMismatch("the AWS4-HMAC-SHA256 signature does not match")
    if expires is None:
        _check_skew(signed_at, current)
    elif current > signed_at + expires:
        raise ExpiredRequest("the presigned URL has expired")
    elif signed_at > current + MAX_SKEW:
        raise ExpiredRequest("the presigned URL is not valid yet")
    check_token(record, token)
    return record
