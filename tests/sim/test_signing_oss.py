"""OSS V1 and V4 verification against the test vectors computed by the official v2 SDK.

The vectors (docs/alibaba-api-facts.md section 12) were produced by ``alibabacloud-oss-v2``'s
signers for a fixed time, key ``AKID`` and secret ``SECRET``; the emulator must accept exactly
those signatures and refuse any request that differs from what was signed.
"""

from __future__ import annotations

import calendar
import time

import pytest

from aliasync.sim import _signing as sig
from aliasync.sim._keys import KeyStore
from aliasync.sim.oss._signing import WrongSigningRegion, verify_oss

NOW = float(calendar.timegm(time.strptime("20250102T030405Z", "%Y%m%dT%H%M%SZ")))
V4_AUTH = (
    "OSS4-HMAC-SHA256 Credential=AKID/20250102/cn-hangzhou/oss/aliyun_v4_request,"
    "Signature=b616ff111e8f8c0df49bd5c0ac1206a546cfebd13ccf61dcb9c902075d5c7472"
)
V4_HEADERS = {
    "Content-Type": "application/octet-stream",
    "x-oss-meta-x": "y",
    "x-oss-content-sha256": "UNSIGNED-PAYLOAD",
    "x-oss-date": "20250102T030405Z",
    "Authorization": V4_AUTH,
}
V1_HEADERS = {
    "Content-Type": "application/octet-stream",
    "x-oss-meta-x": "y",
    "Date": "Thu, 02 Jan 2025 03:04:05 GMT",
    "Authorization": "OSS AKID:ZcuKnx88t5Y4xJ2b1t0gX4hDxro=",
}
QUERY = "uploadId=UP1&partNumber=2"


def _verify(headers: dict[str, str], *, key: str = "dir/a b.raw", region: str = "cn-hangzhou",
            query: str = QUERY, now: float = NOW) -> object:  # fmt: skip
    store = KeyStore("AKID", "SECRET")
    return verify_oss("PUT", "bkt", key, region, query, headers, store.lookup, now=now)


def test_vectors_verify() -> None:
    """The SDK's V4 and V1 signatures of the same request both verify."""
    assert _verify(V4_HEADERS).scheme == "v4_header"  # type: ignore[attr-defined]
    assert _verify(V1_HEADERS).scheme == "v1_header"  # type: ignore[attr-defined]


@pytest.mark.parametrize("headers", [V4_HEADERS, V1_HEADERS], ids=["v4", "v1"])
def test_tampering_refused(headers: dict[str, str]) -> None:
    """Another key, query, signed header or content type than signed: SignatureMismatch."""
    with pytest.raises(sig.SignatureMismatch):
        _verify(headers, key="dir/a c.raw")
    with pytest.raises(sig.SignatureMismatch):
        _verify(headers, query="uploadId=UP1&partNumber=3")
    with pytest.raises(sig.SignatureMismatch):
        _verify({**headers, "x-oss-meta-x": "z"})
    with pytest.raises(sig.SignatureMismatch):
        _verify({**headers, "Content-Type": "text/plain"})


def test_v4_scope_and_time() -> None:
    """V4: another region's endpoint is refused, and so is a request 16 minutes old."""
    with pytest.raises(WrongSigningRegion):
        _verify(V4_HEADERS, region="cn-beijing")
    with pytest.raises(sig.ExpiredRequest):
        _verify(V4_HEADERS, now=NOW + 16 * 60)
    with pytest.raises(sig.ExpiredRequest):
        _verify(V1_HEADERS, now=NOW - 16 * 60)


def test_unknown_key_and_unsigned() -> None:
    """An unknown key ID and a request with no signature at all are told apart."""
    with pytest.raises(sig.UnknownAccessKey):
        _verify({**V1_HEADERS, "Authorization": "OSS NOBODY:ZcuKnx88t5Y4xJ2b1t0gX4hDxro="})
    with pytest.raises(sig.MissingAuth):
        _verify({"Content-Type": "application/octet-stream"})
