"""HTTP helpers of the OSS emulator: answers, body integrity checks, ranges, stored headers."""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import re
import zlib
from collections.abc import Mapping

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from aliasync.sim._errors import DropConnection, SimError
from aliasync.sim._service import SimRequest
from aliasync.sim._signing import payload_hash_claim
from aliasync.sim.oss._models import OssError, StoredObject
from aliasync.sim.oss._storage import Staged
from aliasync.sim.oss._xml import Element, document

MAX_PUT_SIZE = 5 * 2**30  # a simple PutObject, and one part
MAX_XML_BODY = 4 * 2**20  # CreateBucket, CompleteMultipartUpload, DeleteObjects

# Representation headers an object keeps from its upload and returns on GET and HEAD.
STORED_HEADERS = (
    "Content-Type",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Cache-Control",
    "Expires",
)
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
    "response-content-language": "Content-Language",
    "response-cache-control": "Cache-Control",
    "response-expires": "Expires",
}
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def ascii_int(text: str, limit: int = 2**63) -> int | None:
    """A non-negative ASCII decimal number (saturated at ``limit``); None if ``text`` is not one.

    ``str.isdigit`` alone is not enough: it accepts "\u00b2", which ``int`` refuses, and ``int``
    refuses more than 4300 digits.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return min(int(digits), limit) if len(digits) <= 19 else limit


def base_headers(request: SimRequest, native: bool = False) -> dict[str, str]:
    """Headers on every answer: the request ID (also under S3's name on the S3 face)."""
    headers = {"x-oss-request-id": request.request_id, "Server": "AliyunOSS"}
    if not native:
        headers["x-amz-request-id"] = request.request_id
    return headers


def xml_response(
    request: SimRequest, root: Element, status: int = 200, *, native: bool = False
) -> web.Response:
    """An XML answer: with S3's namespace on the S3 face, without it on the native one."""
    return web.Response(
        status=status,
        body=document(root, namespaced=not native),
        headers=base_headers(request, native),
        content_type="application/xml",
    )


def empty_response(
    request: SimRequest,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    native: bool = False,
) -> web.Response:
    return web.Response(status=status, headers={**base_headers(request, native), **(headers or {})})


def meta_prefix(native: bool) -> str:
    """User metadata headers: ``x-oss-meta-*`` natively, ``x-amz-meta-*`` through S3."""
    return "x-oss-meta-" if native else "x-amz-meta-"


def http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


def stored_headers(
    request: SimRequest, native: bool = False
) -> tuple[dict[str, str], dict[str, str]]:
    """(representation headers, user metadata) an upload asks to store."""
    headers = {name: request.headers[name] for name in STORED_HEADERS if name in request.headers}
    headers.setdefault("Content-Type", "application/octet-stream")
    prefix = meta_prefix(native)
    metadata = {
        name.lower()[len(prefix) :]: value
        for name, value in request.headers.items()
        if name.lower().startswith(prefix)
    }
    return headers, metadata


def object_headers(
    request: SimRequest, obj: StoredObject, last_modified: float, native: bool = False
) -> dict[str, str]:
    """The headers of GetObject and HeadObject (without length and range)."""
    headers = {
        **base_headers(request, native),
        **obj.headers,
        "ETag": f'"{obj.etag}"',
        "Last-Modified": http_date(last_modified),
        "Accept-Ranges": "bytes",
        "x-oss-object-type": "Multipart" if "-" in obj.etag else "Normal",
        "x-oss-storage-class": "Standard",
    }
    headers.update({f"{meta_prefix(native)}{k}": v for k, v in obj.metadata.items()})
    for param, header in _RESPONSE_OVERRIDES.items():
        value = request.param(param)
        if value is not None:
            headers[header] = value
    return headers


def too_large(length: int) -> OssError:
    return OssError(
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed size.",
        400,
        extra={"ProposedSize": str(length), "MaxSizeAllowed": str(MAX_PUT_SIZE)},
    )


def content_length(request: SimRequest, native: bool = False) -> int | None:
    """The declared body length of an upload; EntityTooLarge over 5 GiB.

    Without one: 411 through S3; natively a chunked body is accepted (None), as the official
    asyncio client sends every upload chunked.
    """
    length = request.raw.content_length
    if length is None:
        if native and request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return None
        raise SimError(
            "MissingContentLength", "You must provide the Content-Length HTTP header.", 411
        )
    if length > MAX_PUT_SIZE:
        raise too_large(length)
    return length


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range of a ``Range`` header; None to send the whole object.

    A header that does not parse (or lists several ranges) is ignored, as S3 and OSS do; a
    range starting past the end is 416 InvalidRange.
    """
    match = _RANGE.fullmatch(value.strip()) if value else None
    if match is None or match[1] == match[2] == "":
        return None
    if match[1] == "":
        suffix = ascii_int(match[2]) or 0
        if suffix == 0 or size == 0:
            raise _invalid_range(size, value or "")
        return max(0, size - suffix), size - 1
    start = ascii_int(match[1]) or 0
    end = (ascii_int(match[2]) or 0) if match[2] else size - 1
    if match[2] and end < start:
        return None
    if start >= size:
        raise _invalid_range(size, value or "")
    return start, min(end, size - 1)


def _invalid_range(size: int, requested: str) -> OssError:
    return OssError(
        "InvalidRange",
        "The requested range is not satisfiable",
        416,
        headers={"Content-Range": f"bytes */{size}"},
        extra={"RangeRequested": requested, "ActualObjectSize": str(size)},
    )


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SimError("InvalidDigest", f"The {what} you specified was invalid.", 400) from None


def _oss_payload_claim(headers: Mapping[str, str]) -> str | None:
    value = headers.get("x-oss-content-sha256")
    if value is None or value == "UNSIGNED-PAYLOAD":
        return None
    if not _HEX64.fullmatch(value):
        raise SimError("InvalidArgument", "x-oss-content-sha256 is not valid.", 400)
    return value.lower()


def verify_body(
    request: SimRequest, staged: Staged, *, require_digest: bool = False, native: bool = False
) -> None:
    """Check a received body against the claimed SHA-256, Content-MD5 and x-amz-checksum-*.

    The SHA-256 claim is x-amz-content-sha256 on the S3 face, x-oss-content-sha256 natively.
    CRC32, SHA-1 and SHA-256 checksums are verified; CRC32C and CRC64NVME are accepted unchecked.
    ``require_digest``: the operation needs Content-MD5 or a checksum (DeleteObjects).
    """
    headers = request.headers
    claim = _oss_payload_claim(headers) if native else payload_hash_claim(headers)
    if claim is not None and claim != staged.sha256:
        raise OssError(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            400,
            extra={"ClientComputedContentSHA256": claim, "S3ComputedContentSHA256": staged.sha256},
        )
    md5 = headers.get("Content-MD5")
    if md5 is not None:
        digest = _b64(md5, "Content-MD5")
        if len(digest) != 16:
            raise SimError("InvalidDigest", "The Content-MD5 you specified was invalid.", 400)
        if digest.hex() != staged.md5:
            # OSS names a Content-MD5 mismatch InvalidDigest ([D21] UploadPart), S3 BadDigest.
            raise SimError(
                "InvalidDigest" if native else "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
                400,
            )
    computed = {
        "crc32": staged.crc32.to_bytes(4, "big"),
        "sha1": bytes.fromhex(staged.sha1),
        "sha256": bytes.fromhex(staged.sha256),
    }
    checksums = [name for name in headers if name.lower().startswith("x-amz-checksum-")]
    for name in checksums:
        algorithm = name.lower()[len("x-amz-checksum-") :]
        if algorithm in computed and _b64(headers[name], name) != computed[algorithm]:
            raise SimError(
                "BadDigest",
                f"The {algorithm.upper()} you specified did not match the calculated checksum.",
                400,
            )
    if require_digest and md5 is None and not checksums:
        if native:
            raise SimError("MissingArgument", "Missing Some Required Arguments.", 400)
        raise SimError(
            "InvalidRequest", "Missing required header for this request: Content-MD5", 400
        )


async def small_body(
    request: SimRequest, *, require_digest: bool = False, native: bool = False
) -> bytes:
    """An XML request body, size-capped and checked like an upload."""
    length = request.raw.content_length
    if length is not None and length > MAX_XML_BODY:
        raise SimError("MaxMessageLengthExceeded", "Your request was too big.", 400)
    try:
        body = await request.body()
    except (ConnectionError, HttpProcessingError):
        raise DropConnection from None  # the client went away mid-body
    staged = Staged(
        "",
        len(body),
        hashlib.md5(body).hexdigest(),
        hashlib.sha256(body).hexdigest(),
        zlib.crc32(body),
        hashlib.sha1(body).hexdigest(),
    )
    verify_body(request, staged, require_digest=require_digest, native=native)
    return body
