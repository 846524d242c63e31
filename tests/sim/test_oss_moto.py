"""The S3 calls aliasync makes, with one set of expectations, against the emulator AND moto.

``exercise`` is plain S3 (no OSS extensions). Passing against moto's standalone server, an
independent S3 implementation, shows the expectations are S3's and not the emulator's own.
Moto is reached directly with path-style addressing; its minimum part size is lowered to OSS's
100 KB so the same multipart upload is valid on both.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import boto3
import moto.s3.models
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from aliasync.sim import Simulator
from tests.sim.test_oss import REGION, S3, fetch, s3_client

pytestmark = pytest.mark.anyio

Fetch = Callable[[str], Awaitable[tuple[int, bytes]]]
KB = 1024


async def _error(call: Awaitable[Any]) -> str:
    with pytest.raises(ClientError) as caught:
        await call
    return str(caught.value.response["Error"]["Code"])


async def exercise(s3: S3, bucket: str, fetch_url: Fetch) -> None:
    """Create, put, head, ranged get, list, multipart (complete and abort), presigned GET,
    delete objects and delete the bucket, checking what S3 defines."""
    rng = random.Random(5)
    await s3(
        "create_bucket", Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    await s3("head_bucket", Bucket=bucket)

    data = rng.randbytes(300 * KB)
    put = await s3("put_object", Bucket=bucket, Key="images/disk.raw", Body=data)
    assert put["ETag"].strip('"').lower() == hashlib.md5(data).hexdigest()
    head = await s3("head_object", Bucket=bucket, Key="images/disk.raw")
    assert head["ContentLength"] == len(data)
    ranged, body = await s3.get(Bucket=bucket, Key="images/disk.raw", Range="bytes=1000-1999")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["ContentRange"] == f"bytes 1000-1999/{len(data)}"
    assert body == data[1000:2000]
    with pytest.raises(ClientError) as caught:
        await s3("get_object", Bucket=bucket, Key="images/missing")
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"

    chunks = [rng.randbytes(n) for n in (150 * KB, 120 * KB, 110 * KB, 99)]
    upload = await s3("create_multipart_upload", Bucket=bucket, Key="images/multi.raw")
    spare = await s3("create_multipart_upload", Bucket=bucket, Key="images/spare.raw")
    parts = []
    for number, chunk in enumerate(chunks, 1):
        answer = await s3(
            "upload_part",
            Bucket=bucket,
            Key="images/multi.raw",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=chunk,
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    listed = await s3(
        "list_parts", Bucket=bucket, Key="images/multi.raw", UploadId=upload["UploadId"]
    )
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3, 4]
    await s3(
        "abort_multipart_upload", Bucket=bucket, Key="images/spare.raw", UploadId=spare["UploadId"]
    )
    done = await s3(
        "complete_multipart_upload",
        Bucket=bucket,
        Key="images/multi.raw",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    assert done["ETag"].strip('"').endswith("-4")
    gone = await _error(
        s3("list_parts", Bucket=bucket, Key="images/multi.raw", UploadId=upload["UploadId"])
    )
    assert gone == "NoSuchUpload"
    _, body = await s3.get(Bucket=bucket, Key="images/multi.raw")
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()

    for i in range(3):
        await s3("put_object", Bucket=bucket, Key=f"logs/{i}.txt", Body=b"log")
    top = await s3("list_objects_v2", Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["images/", "logs/"]
    first = await s3("list_objects_v2", Bucket=bucket, Prefix="logs/", MaxKeys=2)
    assert first["IsTruncated"] is True and first["KeyCount"] == 2
    rest = await s3(
        "list_objects_v2",
        Bucket=bucket,
        Prefix="logs/",
        ContinuationToken=first["NextContinuationToken"],
    )
    assert [o["Key"] for o in first["Contents"] + rest["Contents"]] == [
        "logs/0.txt",
        "logs/1.txt",
        "logs/2.txt",
    ]

    url = await s3.presign("get_object", Bucket=bucket, Key="images/disk.raw")
    assert await fetch_url(url) == (200, data)

    everything = await s3("list_objects_v2", Bucket=bucket)
    keys = [{"Key": o["Key"]} for o in everything["Contents"]]
    deleted = await s3("delete_objects", Bucket=bucket, Delete={"Objects": keys})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == sorted(k["Key"] for k in keys)
    assert "Contents" not in await s3("list_objects_v2", Bucket=bucket)
    await s3("delete_bucket", Bucket=bucket)
    with pytest.raises(ClientError) as caught:
        await s3("head_bucket", Bucket=bucket)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port, with OSS's 100 KB part minimum."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 100 * KB)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@asynccontextmanager
async def moto_client(endpoint: str, kind: str) -> AsyncIterator[S3]:
    options: dict[str, Any] = {
        "signature_version": "s3v4",
        "s3": {"addressing_style": "path"},
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "retries": {"max_attempts": 1},
    }
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if kind == "boto3":
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            config=BotoConfig(**options),
            **credentials,
        )
        yield S3(kind, client)
        return
    async with get_session().create_client(
        "s3", endpoint_url=endpoint, region_name=REGION, config=AioConfig(**options), **credentials
    ) as aio:
        yield S3(kind, aio)


async def _fetch_direct(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


@pytest.fixture(params=["boto3", "aiobotocore"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which client library drives the test."""
    return str(request.param)


async def test_s3_calls_against_emulator(sim: Simulator, kind: str) -> None:
    """The shared S3 scenario passes against the OSS emulator (virtual-hosted, via the proxy)."""

    async def via_proxy(url: str) -> tuple[int, bytes]:
        status, body, _ = await fetch(sim, "GET", url)
        return status, body

    async with s3_client(sim, kind) as s3:
        await exercise(s3, "aliasync-shared", via_proxy)
    assert sim.leaks()["buckets"] == [] and sim.leaks()["multipart_uploads"] == []
    assert os.listdir(os.path.join(sim.ctx.data_dir, "oss")) == []


async def test_s3_calls_against_moto(moto_endpoint: str, kind: str) -> None:
    """The same scenario passes against moto's independent S3 server (path style)."""
    async with moto_client(moto_endpoint, kind) as s3:
        await exercise(s3, f"aliasync-shared-{kind}", _fetch_direct)
