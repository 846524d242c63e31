"""The native OSS API driven by ``oss2`` (the older official SDK), V1 and V4, with STS.

oss2 is synchronous: each test runs its calls in a worker thread while the emulator serves
them from the test's event loop.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import anyio.to_thread
import oss2
import pytest

from aliasync.sim import Simulator
from tests.clients import oss2_bucket, oss2_service, temporary_key

pytestmark = pytest.mark.anyio

REGION = "ap-southeast-1"
KB = 1024
ODD_KEY = "dir/a b+c.raw"  # encoded differently in paths, V1 and V4 resources, listings


@pytest.fixture(params=["v4", "v1", "v4-sts", "v1-sts"])
def signing(request: pytest.FixtureRequest) -> str:
    """Which signature version, with the account key or an STS key."""
    return str(request.param)


def _opts(sim: Simulator, signing: str) -> dict[str, Any]:
    version = signing.split("-")[0]
    return {"version": version, "key": temporary_key(sim) if signing.endswith("-sts") else None}


def _urlopen(sim: Simulator, url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": sim.proxy_url}))
    try:
        with opener.open(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def every_operation(bucket: Any, service: Any) -> dict[str, Any]:
    """Every native operation on a new bucket ``bucket`` (an oss2 Bucket), then its deletion;
    what the SDK got back (checked by :func:`check_every_operation`)."""
    odd = ODD_KEY
    seen: dict[str, Any] = {}
    name = bucket.bucket_name
    bucket.create_bucket()
    seen["info"] = bucket.get_bucket_info().location
    seen["location"] = bucket.get_bucket_location().location
    seen["buckets"] = [(b.name, b.location) for b in service.list_buckets(prefix=name).buckets]
    rule = oss2.models.LifecycleRule(
        "tmp", "", status=oss2.models.LifecycleRule.ENABLED,
        expiration=oss2.models.LifecycleExpiration(days=1),
        abort_multipart_upload=oss2.models.AbortMultipartUpload(days=1),
    )  # fmt: skip
    bucket.put_bucket_lifecycle(oss2.models.BucketLifecycle([rule]))
    seen["rules"] = [
        (r.id, r.expiration.days, r.abort_multipart_upload.days)
        for r in bucket.get_bucket_lifecycle().rules
    ]
    bucket.put_object(odd, b"0123456789", headers={"x-oss-meta-sha256": "abc"})
    seen["range"] = bucket.get_object(odd, byte_range=(2, 5)).read()
    seen["meta"] = bucket.head_object(odd).headers.get("x-oss-meta-sha256")
    bucket.copy_object(name, odd, "copy")
    seen["v1"] = [o.key for o in oss2.ObjectIterator(bucket)]
    seen["v2"] = [o.key for o in oss2.ObjectIteratorV2(bucket, prefix="dir/")]
    upload_id = bucket.init_multipart_upload("mp/image").upload_id
    first = bucket.upload_part("mp/image", upload_id, 1, b"a" * (100 * KB))
    last = bucket.upload_part("mp/image", upload_id, 2, b"end")
    seen["uploads"] = [u.key for u in bucket.list_multipart_uploads().upload_list]
    seen["parts"] = [p.part_number for p in bucket.list_parts("mp/image", upload_id).parts]
    parts = [oss2.models.PartInfo(1, first.etag), oss2.models.PartInfo(2, last.etag)]
    bucket.complete_multipart_upload("mp/image", upload_id, parts)
    spare = bucket.init_multipart_upload("mp/spare").upload_id
    bucket.abort_multipart_upload("mp/spare", spare)
    seen["size"] = bucket.head_object("mp/image").content_length
    bucket.delete_object("copy")
    result = bucket.batch_delete_objects([odd, "mp/image"])
    seen["deleted"] = sorted(result.deleted_keys)
    bucket.delete_bucket_lifecycle()
    bucket.delete_bucket()
    return seen


def check_every_operation(sim: Simulator, region: str, name: str, seen: dict[str, Any]) -> None:
    """What :func:`every_operation` must have seen, and left behind (nothing)."""
    assert seen["info"] == seen["location"] == f"oss-{region}"
    assert seen["buckets"] == [(name, f"oss-{region}")]
    assert seen["rules"] == [("tmp", 1, 1)]
    assert (seen["range"], seen["meta"]) == (b"2345", "abc")
    assert seen["v1"] == ["copy", ODD_KEY] and seen["v2"] == [ODD_KEY]
    assert (seen["uploads"], seen["parts"]) == (["mp/image"], [1, 2])
    assert seen["size"] == 100 * KB + 3
    assert seen["deleted"] == sorted([ODD_KEY, "mp/image"])
    assert name not in {b["name"] for b in sim.ctx.models["oss"].buckets()}
    assert sim.ctx.models["oss"].open_uploads() == []


async def test_every_operation(sim: Simulator, signing: str) -> None:
    """Buckets, lifecycle, objects, copies, listings, batch delete and multipart, with oss2."""
    opts = _opts(sim, signing)
    bucket = oss2_bucket(sim, REGION, "o2-every", **opts)
    service = oss2_service(sim, REGION, **opts)
    seen = await anyio.to_thread.run_sync(every_operation, bucket, service)
    check_every_operation(sim, REGION, "o2-every", seen)


async def test_presigned_and_tampered(sim: Simulator, signing: str) -> None:
    """oss2's signed URLs work from urllib; altered ones, and wrong secrets, are refused."""
    opts = _opts(sim, signing)

    def work() -> tuple[str, Any]:
        bucket = oss2_bucket(sim, REGION, "o2-signed", **opts)
        bucket.create_bucket()
        bucket.put_object("a b", b"payload")
        url = bucket.sign_url("GET", "a b", 300)
        key = opts["key"]
        wrong = oss2_bucket(
            sim, REGION, "o2-signed", version=opts["version"],
            key=None if key is None else type(key)(key.access_key_id, "x" * 30, key.security_token),
        )  # fmt: skip
        if key is None:
            wrong.auth = type(wrong.auth)(sim.access_key_id, "x" * 30)
        with pytest.raises(oss2.exceptions.OssError) as caught:
            wrong.put_object("other", b"x")
        return url, caught.value

    url, refused = await anyio.to_thread.run_sync(work)
    assert await anyio.to_thread.run_sync(_urlopen, sim, url) == (200, b"payload")
    status, body = await anyio.to_thread.run_sync(_urlopen, sim, url.replace("/a%20b", "/a%20c"))
    assert status == 403 and b"SignatureDoesNotMatch" in body
    assert (refused.status, refused.code) == (403, "SignatureDoesNotMatch")
    assert sim.ctx.models["oss"].object_info(REGION, "o2-signed", "other") is None
