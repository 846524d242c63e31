"""S3 SigV4 verifiers (header and presigned forms), proven against boto3 and aiobotocore."""

from __future__ import annotations

import calendar
import hashlib
import time
from dataclasses import replace
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config as BotoConfig
from multidict import CIMultiDict
from yarl import URL

from aliasync.sim import _signing as sig
from aliasync.sim._keys import KeyStore
from tests.sim.signing_capture import (
    AKID,
    BUCKET,
    REGION,
    S3_ENDPOINT,
    SECRET,
    CaptureServer,
    boto3_s3,
    fails,
    run,
    set_header,
    unknown,
    verify,
    wrong_secret,
)

# --- S3 SigV4, header form ------------------------------------------------------------------


def s3_calls(client: Any) -> None:
    """PutObject, GetObject, ListObjectsV2 and a whole multipart upload with boto3."""
    key = "dir with spaces/disk image*1~+.raw"
    client.put_object(Bucket=BUCKET, Key=key, Body=b"hello oss")
    client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.list_objects_v2(Bucket=BUCKET, Prefix="dir with spaces/")
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    part = client.upload_part(
        Bucket=BUCKET, Key=key, PartNumber=1, UploadId=upload, Body=b"x" * 1000
    )
    parts = [{"ETag": part["ETag"], "PartNumber": 1}]
    client.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    client.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload)


def test_sigv4_boto3_requests_verify(server: CaptureServer, store: KeyStore) -> None:
    """boto3 s3v4 header-signed requests (virtual host, absolute-form via proxy) verify."""
    s3_calls(boto3_s3(server))
    reqs = server.take()
    assert len(reqs) == 7
    put, _, listed, *_ = reqs
    assert put.headers["Host"] == f"{BUCKET}.s3.{REGION}.aliyuncs.com"
    assert put.path == "/dir%20with%20spaces/disk%20image%2A1~%2B.raw"
    assert "prefix=dir%20with%20spaces%2F" in listed.query_string
    for req in reqs:
        assert sig.auth_scheme(req.query_string, req.headers) == "sigv4_header"
        assert verify(req, store.lookup) is store.root
    # The body hash is the caller's job: the claim is the real hash of what was sent.
    assert sig.payload_hash_claim(put.headers) == hashlib.sha256(b"hello oss").hexdigest()
    assert sig.payload_hash_claim(put.headers) != hashlib.sha256(b"hello oss!").hexdigest()
    assert sig.payload_hash_claim(set_header(put, "x-amz-content-sha256", None).headers) is None


def test_sigv4_default_checksums_over_http_verify(server: CaptureServer, store: KeyStore) -> None:
    """boto3's default config over http adds a signed x-amz-checksum-crc32; it still verifies."""
    client = boto3_s3(
        server,
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
    )
    client.put_object(Bucket=BUCKET, Key="k", Body=b"data")
    (put,) = server.take()
    assert "x-amz-checksum-crc32" in put.headers
    assert verify(put, store.lookup) is store.root
    fails(sig.SignatureMismatch, set_header(put, "x-amz-checksum-crc32", "AAAAAA=="), store.lookup)


def test_sigv4_rejections(server: CaptureServer, store: KeyStore) -> None:
    """SigV4 header form: wrong secret, unknown key, tampering, skew, chunked and V2 fail."""
    client = boto3_s3(server)
    client.list_objects_v2(Bucket=BUCKET, Prefix="dir with spaces/")
    client.put_object(Bucket=BUCKET, Key="k", Body=b"data")
    listed, put = server.take()
    fails(sig.SignatureMismatch, listed, wrong_secret(store))
    fails(sig.UnknownAccessKey, listed, unknown)
    other_prefix = listed.query_string.replace("spaces", "tabs")
    fails(sig.SignatureMismatch, replace(listed, query_string=other_prefix), store.lookup)
    fails(
        sig.SignatureMismatch,
        set_header(listed, "Host", f"other.s3.{REGION}.aliyuncs.com"),
        store.lookup,
    )
    fails(sig.SignatureMismatch, replace(put, path="/k2"), store.lookup)
    fails(sig.SignatureMismatch, set_header(put, "x-amz-content-sha256", "0" * 64), store.lookup)
    fails(sig.ExpiredRequest, listed, store.lookup, now=time.time() + 1000)
    chunked = set_header(put, "x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    fails(sig.ChunkedUploadRefused, chunked, store.lookup)
    fails(sig.MalformedAuth, set_header(put, "x-amz-content-sha256", "not-a-hash"), store.lookup)
    fails(sig.MissingAuth, set_header(put, "x-amz-content-sha256", None), store.lookup)
    fails(sig.MissingAuth, set_header(put, "Authorization", None), store.lookup)
    assert (
        sig.auth_scheme(put.query_string, set_header(put, "Authorization", None).headers) == "none"
    )
    assert verify(set_header(put, "User-Agent", "curl/8"), store.lookup) is store.root

    boto3_s3(server, signature_version="s3").put_object(Bucket=BUCKET, Key="k", Body=b"v2")
    (v2,) = server.take()
    assert v2.headers["Authorization"].startswith(f"AWS {AKID}:")
    fails(sig.MalformedAuth, v2, store.lookup)


def test_sigv4_aiobotocore_requests_verify(server: CaptureServer, store: KeyStore) -> None:
    """aiobotocore (aiohttp transport) put/get/list/multipart requests verify."""

    async def calls() -> None:
        config = AioConfig(
            proxies={"http": server.proxy},
            s3={"addressing_style": "virtual"},
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = get_session()
        async with session.create_client(
            "s3",
            region_name=REGION,
            endpoint_url=S3_ENDPOINT,
            aws_access_key_id=AKID,
            aws_secret_access_key=SECRET,
            config=config,
        ) as s3:
            key = "images/disk one*.qcow2"
            await s3.put_object(Bucket=BUCKET, Key=key, Body=b"qcow")
            await (await s3.get_object(Bucket=BUCKET, Key=key))["Body"].read()
            await s3.list_objects_v2(Bucket=BUCKET, Prefix="images/disk one")
            upload = (await s3.create_multipart_upload(Bucket=BUCKET, Key=key))["UploadId"]
            await s3.upload_part(Bucket=BUCKET, Key=key, PartNumber=2, UploadId=upload, Body=b"p")
            await s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload)

    run(calls())
    reqs = server.take()
    assert len(reqs) == 6
    for req in reqs:
        assert verify(req, store.lookup) is store.root
    fails(sig.SignatureMismatch, reqs[0], wrong_secret(store))


def test_sigv4_https_default_sends_chunked_which_is_refused(store: KeyStore) -> None:
    """boto3's defaults over https send an aws-chunked body, and the verifier refuses it."""
    seen: list[Any] = []

    class Stop(Exception):
        pass

    def grab(request: Any, **_: Any) -> None:
        seen.append(request)
        raise Stop

    client = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=S3_ENDPOINT.replace("http:", "https:"),
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        config=BotoConfig(s3={"addressing_style": "virtual"}, signature_version="s3v4"),
    )
    client.meta.events.register("before-send.s3.PutObject", grab)
    with pytest.raises(Stop):
        client.put_object(Bucket=BUCKET, Key="k", Body=b"data")
    headers = CIMultiDict(
        (k, v.decode() if isinstance(v, bytes) else v) for k, v in seen[0].headers.items()
    )
    assert headers["x-amz-content-sha256"].startswith("STREAMING-")
    with pytest.raises(sig.ChunkedUploadRefused):
        sig.verify_sigv4("PUT", "/k", "", headers, store.lookup)


# --- S3 SigV4, presigned query form ---------------------------------------------------------


async def fetch(server: CaptureServer, method: str, url: str, body: bytes = b"") -> None:
    """Use a presigned URL with plain aiohttp, through the proxy."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=body, proxy=server.proxy) as resp,
    ):
        await resp.read()


def test_sigv4_presigned_urls_verify(server: CaptureServer, store: KeyStore) -> None:
    """Presigned GET and PUT URLs fetched by aiohttp verify; expired or tampered ones fail."""
    client = boto3_s3(server)
    key = "dir with spaces/obj*.raw"
    get_url = client.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=60
    )
    put_url = client.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=60
    )
    run(fetch(server, "GET", get_url))
    run(fetch(server, "PUT", put_url, b"uploaded by url"))
    got, put = server.take()
    assert put.body == b"uploaded by url"
    for req in (got, put):
        assert sig.auth_scheme(req.query_string, req.headers) == "sigv4_query"
        assert verify(req, store.lookup) is store.root
    assert sig.payload_hash_claim(put.headers) is None
    fails(sig.SignatureMismatch, got, wrong_secret(store))
    fails(sig.UnknownAccessKey, got, unknown)
    longer = got.query_string.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    fails(sig.SignatureMismatch, replace(got, query_string=longer), store.lookup)
    fails(sig.SignatureMismatch, replace(got, method="DELETE"), store.lookup)
    fails(sig.SignatureMismatch, set_header(got, "Host", "evil.example.com"), store.lookup)
    fails(sig.ExpiredRequest, got, store.lookup, now=time.time() + 61)
    fails(sig.ExpiredRequest, got, store.lookup, now=time.time() - 3600)
    both = set_header(got, "Authorization", "AWS4-HMAC-SHA256 Credential=x")
    fails(sig.MalformedAuth, both, store.lookup)
    too_long = got.query_string.replace("X-Amz-Expires=60", "X-Amz-Expires=604801")
    fails(sig.MalformedAuth, replace(got, query_string=too_long), store.lookup)
    chunked = set_header(put, "x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    fails(sig.ChunkedUploadRefused, chunked, store.lookup)


def test_sigv4_presigned_expiry_and_sts(server: CaptureServer, store: KeyStore) -> None:
    """A 1-second URL expires; an STS presigned URL carries and needs its token."""
    client = boto3_s3(server)
    run(
        fetch(
            server,
            "GET",
            client.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": "k"}, ExpiresIn=1
            ),
        )
    )
    (short,) = server.take()
    # X-Amz-Date has whole seconds, so pin "now" rather than race the wall clock.
    amz_date = URL("/?" + short.query_string, encoded=True).query["X-Amz-Date"]
    signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    assert verify(short, store.lookup, now=signed_at + 1) is store.root
    fails(sig.ExpiredRequest, short, store.lookup, now=signed_at + 2)

    temp = store.issue_temporary("role/r", expires_at=1e12)
    assert temp.security_token is not None
    sts = boto3_s3(server, token=temp.security_token, akid=temp.access_key_id, secret=temp.secret)
    run(
        fetch(
            server,
            "GET",
            sts.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k"}),
        )
    )
    sts.put_object(Bucket=BUCKET, Key="k", Body=b"sts")
    presigned, header = server.take()
    assert "X-Amz-Security-Token=" in presigned.query_string
    assert header.headers["x-amz-security-token"] == temp.security_token
    for req in (presigned, header):
        assert verify(req, store.lookup) is temp
    unsigned = boto3_s3(server, akid=temp.access_key_id, secret=temp.secret)
    unsigned.put_object(Bucket=BUCKET, Key="k", Body=b"sts")
    fails(
        sig.InvalidSecurityToken,
        server.take()[0],
        store.lookup,
        hidden=(temp.security_token, temp.secret),
    )

    v2 = boto3_s3(server, signature_version="s3")
    v2_url = v2.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k"})
    run(fetch(server, "GET", v2_url))
    (legacy,) = server.take()
    assert sig.auth_scheme(legacy.query_string, legacy.headers) == "sigv4_query"
    fails(sig.MalformedAuth, legacy, store.lookup)
