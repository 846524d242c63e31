"""The OSS emulator driven by the real S3 clients (boto3 and aiobotocore) through its proxy.

Every operation aliasync relies on runs once per client library (the ``kind`` fixture); the
presigned URLs are fetched with aiohttp, as a relay function would.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import pytest
from botocore.exceptions import ClientError
from yarl import URL

from aliasync.sim import Simulator
from tests.clients import aio_s3, boto3_s3

pytestmark = pytest.mark.anyio

REGION = "eu-central-1"
KB = 1024


class S3:
    """One S3 client, boto3 (run in a worker thread) or aiobotocore, behind one interface."""

    def __init__(self, kind: str, client: Any) -> None:
        self.kind = kind
        self.client = client

    async def __call__(self, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(self.client, operation)
        if self.kind == "boto3":
            result: dict[str, Any] = await anyio.to_thread.run_sync(lambda: method(**params))
        else:
            result = await method(**params)
        return result

    async def get(self, **params: Any) -> tuple[dict[str, Any], bytes]:
        """GetObject and its whole body."""
        if self.kind == "boto3":

            def work() -> tuple[dict[str, Any], bytes]:
                response = self.client.get_object(**params)
                return response, response["Body"].read()

            return await anyio.to_thread.run_sync(work)
        response = await self.client.get_object(**params)
        async with response["Body"] as body:
            return response, await body.read()

    async def error(self, operation: str, **params: Any) -> dict[str, Any]:
        """The error answer of a call that must fail: ``{Code, Message, ...}`` plus status."""
        with pytest.raises(ClientError) as caught:
            await self(operation, **params)
        response: dict[str, Any] = caught.value.response
        return {
            **response["Error"],
            "Status": response["ResponseMetadata"]["HTTPStatusCode"],
            "Headers": response["ResponseMetadata"]["HTTPHeaders"],
        }

    async def presign(self, operation: str, expires: int = 600, **params: Any) -> str:
        url: str
        if self.kind == "boto3":
            url = await anyio.to_thread.run_sync(
                lambda: self.client.generate_presigned_url(
                    operation, Params=params, ExpiresIn=expires
                )
            )
        else:
            url = await self.client.generate_presigned_url(
                operation, Params=params, ExpiresIn=expires
            )
        return url


@asynccontextmanager
async def s3_client(
    sim: Simulator, kind: str, region: str = REGION, internal: bool = False, **kw: Any
) -> AsyncIterator[S3]:
    """A configured client of either library for one region's endpoint."""
    if kind == "boto3":
        yield S3(kind, boto3_s3(sim, region, internal, **kw))
    else:
        async with aio_s3(sim, region, internal, **kw) as client:
            yield S3(kind, client)


@pytest.fixture(params=["boto3", "aiobotocore"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which client library drives the test."""
    return str(request.param)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def etag_of(value: str) -> str:
    """An ETag without quotes, lower case (OSS answers upper-case hex)."""
    return value.strip('"').lower()


async def fetch(sim: Simulator, method: str, url: str | URL, **kw: Any) -> tuple[int, bytes, Any]:
    """Send a plain HTTP request through the emulator's proxy (status, body, headers)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, proxy=sim.proxy_url, **kw) as response,
    ):
        return response.status, await response.read(), response.headers


# --- buckets ---------------------------------------------------------------------------------


async def test_bucket_lifecycle(sim: Simulator, kind: str) -> None:
    """CreateBucket, HeadBucket and DeleteBucket; what S3's subset lacks is refused."""
    async with s3_client(sim, kind) as s3:
        await s3("create_bucket", Bucket="alpha-bucket")
        await s3(
            "create_bucket",
            Bucket="beta-bucket",
            CreateBucketConfiguration={"LocationConstraint": REGION},
        )
        head = await s3("head_bucket", Bucket="alpha-bucket")
        assert head["ResponseMetadata"]["HTTPHeaders"]["x-oss-bucket-region"] == REGION
        assert "x-amz-bucket-region" not in head["ResponseMetadata"]["HTTPHeaders"]
        # botocore sends GetBucketLocation path style, which OSS refuses for every operation.
        location = await s3.error("get_bucket_location", Bucket="alpha-bucket")
        assert (location["Code"], location["Status"]) == ("SecondLevelDomainForbidden", 403)
        listing = await s3.error("list_buckets")  # not in OSS's S3 subset
        assert (listing["Code"], listing["Status"]) == ("NotImplemented", 400)
        deleted = await s3("delete_bucket", Bucket="alpha-bucket")
        assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
        error = await s3.error("head_bucket", Bucket="alpha-bucket")
        assert error["Status"] == 404
    assert [b["name"] for b in sim.ctx.models["oss"].buckets()] == ["beta-bucket"]


# --- objects ---------------------------------------------------------------------------------


async def test_object_round_trip_and_ranges(sim: Simulator, kind: str) -> None:
    """PutObject, HeadObject, GetObject (whole and ranged: 206/416) and idempotent DeleteObject."""
    data = bytes(range(256)) * 40
    async with s3_client(sim, kind) as s3:
        await s3("create_bucket", Bucket="objects")
        put = await s3(
            "put_object",
            Bucket="objects",
            Key="dir/disk image.raw",
            Body=data,
            ContentType="application/x-raw-disk-image",
            Metadata={"purpose": "test"},
        )
        assert etag_of(put["ETag"]) == md5_hex(data)
        head = await s3("head_object", Bucket="objects", Key="dir/disk image.raw")
        assert head["ContentLength"] == len(data)
        assert head["ContentType"] == "application/x-raw-disk-image"
        assert head["Metadata"] == {"purpose": "test"}
        assert etag_of(head["ETag"]) == md5_hex(data)
        assert head["LastModified"].year >= 2024
        whole, body = await s3.get(Bucket="objects", Key="dir/disk image.raw")
        assert body == data and whole["ContentLength"] == len(data)
        part, body = await s3.get(Bucket="objects", Key="dir/disk image.raw", Range="bytes=100-199")
        assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert part["ContentRange"] == f"bytes 100-199/{len(data)}"
        assert body == data[100:200]
        _, body = await s3.get(Bucket="objects", Key="dir/disk image.raw", Range="bytes=-10")
        assert body == data[-10:]
        _, body = await s3.get(Bucket="objects", Key="dir/disk image.raw", Range="bytes=10000-")
        assert body == data[10000:]
        error = await s3.error(
            "get_object", Bucket="objects", Key="dir/disk image.raw", Range=f"bytes={len(data)}-"
        )
        assert (error["Code"], error["Status"]) == ("InvalidRange", 416)
        for _ in range(2):
            gone = await s3("delete_object", Bucket="objects", Key="dir/disk image.raw")
            assert gone["ResponseMetadata"]["HTTPStatusCode"] == 204
        error = await s3.error("get_object", Bucket="objects", Key="dir/disk image.raw")
        assert (error["Code"], error["Status"], error["Key"]) == (
            "NoSuchKey",
            404,
            "dir/disk image.raw",
        )
        assert (await s3.error("head_object", Bucket="objects", Key="nope"))["Status"] == 404


async def test_large_object_round_trip(sim: Simulator) -> None:
    """A 20 MB object round-trips byte for byte; the model records its size and SHA-256."""
    data = os.urandom(20 * 2**20)
    async with s3_client(sim, "aiobotocore") as s3:
        await s3("create_bucket", Bucket="large")
        await s3("put_object", Bucket="large", Key="disk.img", Body=data)
        _, body = await s3.get(Bucket="large", Key="disk.img")
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    info = sim.ctx.models["oss"].object_info(REGION, "large", "disk.img")
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.etag == md5_hex(data).upper()
    assert (await anyio.Path(info.path).stat()).st_size == len(data)


async def test_list_objects_v2_paging_and_delimiter(sim: Simulator, kind: str) -> None:
    """ListObjectsV2: prefix, delimiter/CommonPrefixes, max-keys paging, start-after, KeyCount."""
    keys = [f"images/{i:02d}.raw" for i in range(7)] + ["logs/a.txt", "logs/b.txt", "top+level"]
    keys.append("unicode/é ß.txt")
    async with s3_client(sim, kind) as s3:
        await s3("create_bucket", Bucket="listing")
        for key in keys:
            await s3("put_object", Bucket="listing", Key=key, Body=key.encode())
        top = await s3("list_objects_v2", Bucket="listing", Delimiter="/")
        assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["images/", "logs/", "unicode/"]
        assert [o["Key"] for o in top["Contents"]] == ["top+level"]
        assert top["KeyCount"] == 4 and top["IsTruncated"] is False
        seen: list[str] = []
        params: dict[str, Any] = {"Bucket": "listing", "Prefix": "images/", "MaxKeys": 3}
        while True:
            page = await s3("list_objects_v2", **params)
            assert page["KeyCount"] == len(page.get("Contents", []))
            seen += [o["Key"] for o in page.get("Contents", [])]
            if not page["IsTruncated"]:
                break
            params["ContinuationToken"] = page["NextContinuationToken"]
        assert seen == keys[:7]
        after = await s3("list_objects_v2", Bucket="listing", StartAfter="logs/b.txt")
        assert [o["Key"] for o in after["Contents"]] == ["top+level", "unicode/é ß.txt"]
        assert after["Contents"][0]["Size"] == len(b"top+level")
        prefixes: list[str] = []
        params = {"Bucket": "listing", "Delimiter": "/", "MaxKeys": 1}
        while True:
            page = await s3("list_objects_v2", **params)
            prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            prefixes += [o["Key"] for o in page.get("Contents", [])]
            if not page["IsTruncated"]:
                break
            params["ContinuationToken"] = page["NextContinuationToken"]
        assert prefixes == ["images/", "logs/", "top+level", "unicode/"]


async def test_list_objects_v1_marker(sim: Simulator, kind: str) -> None:
    """ListObjects (V1) pages with Marker/NextMarker and returns owners."""
    async with s3_client(sim, kind) as s3:
        await s3("create_bucket", Bucket="listing-v1")
        for i in range(5):
            await s3("put_object", Bucket="listing-v1", Key=f"k{i}", Body=b"x")
        first = await s3("list_objects", Bucket="listing-v1", MaxKeys=2)
        assert [o["Key"] for o in first["Contents"]] == ["k0", "k1"]
        assert first["IsTruncated"] is True and first["NextMarker"] == "k1"
        assert first["Contents"][0]["Owner"]["ID"] == sim.account_id
        rest = await s3("list_objects", Bucket="listing-v1", Marker=first["NextMarker"])
        assert [o["Key"] for o in rest["Contents"]] == ["k2", "k3", "k4"]
        assert rest["IsTruncated"] is False


async def test_delete_objects(sim: Simulator, kind: str) -> None:
    """DeleteObjects deletes several keys (missing ones count as deleted); Quiet lists none."""
    async with s3_client(sim, kind) as s3:
        await s3("create_bucket", Bucket="deleting")
        for key in ("a", "b", "c", "d"):
            await s3("put_object", Bucket="deleting", Key=key, Body=b"1")
        result = await s3(
            "delete_objects",
            Bucket="deleting",
            Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "missing"}]},
        )
        assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "b", "missing"]
        quiet = await s3(
            "delete_objects", Bucket="deleting", Delete={"Objects": [{"Key": "c"}], "Quiet": True}
        )
        assert "Deleted" not in quiet and "Errors" not in quiet
        left = await s3("list_objects_v2", Bucket="deleting")
        assert [o["Key"] for o in left["Contents"]] == ["d"]


# --- multipart -------------------------------------------------------------------------------


async def test_multipart_upload(sim: Simulator, kind: str) -> None:
    """Create/UploadPart x4/ListParts/Complete assemble the object; ListMultipartUploads refused."""
    sizes = [150 * KB, 120 * KB, 100 * KB, 7]
    chunks = [os.urandom(n) for n in sizes]
    data = b"".join(chunks)
    async with s3_client(sim, kind) as s3:
        await s3("create_bucket", Bucket="multi")
        upload_id = (await s3("create_multipart_upload", Bucket="multi", Key="big/disk.vhd"))[
            "UploadId"
        ]
        other = (await s3("create_multipart_upload", Bucket="multi", Key="other"))["UploadId"]
        parts = []
        for number, chunk in enumerate(chunks, 1):
            answer = await s3(
                "upload_part",
                Bucket="multi",
                Key="big/disk.vhd",
                UploadId=upload_id,
                PartNumber=number,
                Body=chunk,
            )
            assert etag_of(answer["ETag"]) == md5_hex(chunk)
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        refused = await s3.error("list_multipart_uploads", Bucket="multi", Prefix="big/")
        assert (refused["Code"], refused["Status"]) == ("NotImplemented", 400)
        listed = await s3(
            "list_parts", Bucket="multi", Key="big/disk.vhd", UploadId=upload_id, MaxParts=3
        )
        assert [p["Size"] for p in listed["Parts"]] == sizes[:3]
        assert listed["IsTruncated"] is True and listed["NextPartNumberMarker"] == 3
        done = await s3(
            "complete_multipart_upload",
            Bucket="multi",
            Key="big/disk.vhd",
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
        expected = hashlib.md5(b"".join(hashlib.md5(c).digest() for c in chunks)).hexdigest()
        assert etag_of(done["ETag"]) == f"{expected}-4"
        _, body = await s3.get(Bucket="multi", Key="big/disk.vhd")
        assert body == data
        aborted = await s3("abort_multipart_upload", Bucket="multi", Key="other", UploadId=other)
        assert aborted["ResponseMetadata"]["HTTPStatusCode"] == 204
        error = await s3.error("list_parts", Bucket="multi", Key="other", UploadId=other)
        assert (error["Code"], error["Status"]) == ("NoSuchUpload", 404)
    info = sim.ctx.models["oss"].object_info(REGION, "multi", "big/disk.vhd")
    assert info.sha256 == hashlib.sha256(data).hexdigest() and info.size == len(data)
    assert sim.leaks()["multipart_uploads"] == []
    assert len(os.listdir(os.path.join(sim.ctx.data_dir, "oss"))) == 1  # parts cleaned up


async def test_multipart_errors(sim: Simulator, kind: str) -> None:
    """EntityTooSmall, InvalidPartOrder, InvalidPart and a part number out of range."""
    async with s3_client(sim, kind) as s3:
        await s3("create_bucket", Bucket="multi-errors")
        upload_id = (await s3("create_multipart_upload", Bucket="multi-errors", Key="k"))[
            "UploadId"
        ]
        common = {"Bucket": "multi-errors", "Key": "k", "UploadId": upload_id}
        small = await s3("upload_part", PartNumber=1, Body=b"s" * 1000, **common)
        second = await s3("upload_part", PartNumber=2, Body=b"t" * 10, **common)
        tags = [{"PartNumber": 1, "ETag": small["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
        error = await s3.error(
            "complete_multipart_upload", MultipartUpload={"Parts": tags}, **common
        )
        assert (error["Code"], error["Status"]) == ("EntityTooSmall", 400)
        error = await s3.error(
            "complete_multipart_upload", MultipartUpload={"Parts": tags[::-1]}, **common
        )
        assert error["Code"] == "InvalidPartOrder"
        wrong = [{"PartNumber": 1, "ETag": second["ETag"]}]
        error = await s3.error(
            "complete_multipart_upload", MultipartUpload={"Parts": wrong}, **common
        )
        assert error["Code"] == "InvalidPart"
        error = await s3.error("upload_part", PartNumber=10001, Body=b"x", **common)
        assert (error["Code"], error["Status"]) == ("InvalidArgument", 400)
        # A single small part is a valid (last) part.
        only = [{"PartNumber": 2, "ETag": second["ETag"]}]
        await s3("complete_multipart_upload", MultipartUpload={"Parts": only}, **common)
        _, body = await s3.get(Bucket="multi-errors", Key="k")
        assert body == b"t" * 10


# --- presigned URLs --------------------------------------------------------------------------


async def test_presigned_get_and_put(sim: Simulator, kind: str) -> None:
    """Presigned PUT and GET URLs work when fetched with aiohttp through the proxy."""
    async with s3_client(sim, kind) as s3:
        await s3("create_bucket", Bucket="presigned")
        put_url = await s3.presign("put_object", Bucket="presigned", Key="a b/c.raw")
        assert "X-Amz-Signature=" in put_url and put_url.startswith("http://presigned.s3.oss-")
        status, _, _ = await fetch(sim, "PUT", put_url, data=b"presigned body")
        assert status == 200
        get_url = await s3.presign("get_object", Bucket="presigned", Key="a b/c.raw")
        status, body, headers = await fetch(sim, "GET", get_url)
        assert (status, body) == (200, b"presigned body")
        assert headers["x-oss-request-id"] == headers["x-amz-request-id"]
        status, body, _ = await fetch(sim, "GET", get_url, headers={"Range": "bytes=0-8"})
        assert (status, body) == (206, b"presigned")
        status, body, _ = await fetch(
            sim, "GET", get_url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        )
        assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body


async def test_concurrent_part_uploads(sim: Simulator) -> None:
    """Parts uploaded concurrently (arriving in any order) assemble in part-number order."""
    chunks = [os.urandom(100 * KB + i) for i in range(6)]
    etags: dict[int, str] = {}
    async with s3_client(sim, "aiobotocore") as s3:
        await s3("create_bucket", Bucket="parallel")
        upload_id = (await s3("create_multipart_upload", Bucket="parallel", Key="k"))["UploadId"]

        async def send(number: int) -> None:
            answer = await s3(
                "upload_part",
                Bucket="parallel",
                Key="k",
                UploadId=upload_id,
                PartNumber=number,
                Body=chunks[number - 1],
            )
            etags[number] = answer["ETag"]

        async with anyio.create_task_group() as group:
            for number in range(len(chunks), 0, -1):
                group.start_soon(send, number)
        parts = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
        await s3(
            "complete_multipart_upload",
            Bucket="parallel",
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
        _, body = await s3.get(Bucket="parallel", Key="k")
    assert body == b"".join(chunks)


async def test_introspection_views(sim: Simulator) -> None:
    """state(), buckets(), open_uploads(), object_info() and bucket_exists() describe the model."""
    async with s3_client(sim, "aiobotocore") as s3:
        await s3("create_bucket", Bucket="seen")
        await s3("put_object", Bucket="seen", Key="a", Body=b"abc")
        upload_id = (await s3("create_multipart_upload", Bucket="seen", Key="b"))["UploadId"]
        await s3("upload_part", Bucket="seen", Key="b", UploadId=upload_id, PartNumber=1, Body=b"1")
    model = sim.ctx.models["oss"]
    state = sim.state()["oss"]
    bucket = state["buckets"][REGION]["seen"]
    assert bucket["objects"] == {"a": {"size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}}
    assert bucket["uploads"] == [{"key": "b", "upload_id": upload_id, "parts": [1]}]
    assert [(b["name"], b["region"]) for b in model.buckets()] == [("seen", REGION)]
    assert [(u["bucket"], u["key"], u["parts"]) for u in model.open_uploads()] == [("seen", "b", 1)]
    assert model.bucket_exists(REGION, "seen") and not model.bucket_exists("cn-beijing", "seen")
    assert model.object_info("cn-beijing", "seen", "a") is None
    assert model.object_info(REGION, "seen", "missing") is None
    assert sim.leaks()["buckets"][0]["name"] == "seen"
