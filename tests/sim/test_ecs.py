"""The emulated ECS driven by the official async ECS client: auth, import, describe, tasks.

Helpers defined here are shared by the other ``test_ecs_*`` modules.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import aiohttp
import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

from aliasync.sim import Simulator, profile
from tests.clients import ecs_client, put_object

pytestmark = pytest.mark.anyio

REGION, OTHER, THIRD = "cn-hangzhou", "cn-shanghai", "ap-southeast-1"
DATA = b"\x00" * 4096 + b"aliasync emulator test disk"
IMPORT_S = 200.0  # a small image imports in 180 virtual seconds


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(
    sim: Simulator, region: str, key: str = "disk.raw", data: bytes = DATA
) -> tuple[str, str]:
    """Put ``data`` into this region's source bucket; return (bucket, key)."""
    bucket = f"src-{region}"
    await put_object(sim, region, bucket, key, data)
    return bucket, key


def import_request(region: str, bucket: str, key: str, name: str, **kw: Any) -> Any:
    mapping = m.ImportImageRequestDiskDeviceMapping(
        ossbucket=bucket, ossobject=key, format="RAW", disk_image_size=kw.pop("size", 1)
    )
    return m.ImportImageRequest(
        region_id=region, image_name=name, disk_device_mapping=[mapping], **kw
    )


async def imported(
    sim: Simulator, client: EcsClient, region: str, name: str, *, wait: bool = True, **kw: Any
) -> str:
    """Import a small image (uploading its source); return its ID, Available if ``wait``.

    Waiting moves the emulator's clock on by the import's time, held or running.
    """
    bucket, key = await upload(sim, region)
    response = await client.import_image_async(import_request(region, bucket, key, name, **kw))
    if wait:
        sim.clock.advance(IMPORT_S)
    return str(response.body.image_id)


async def describe(client: EcsClient, region: str, **kw: Any) -> list[Any]:
    kw.setdefault("status", "ALL")
    response = await client.describe_images_async(m.DescribeImagesRequest(region_id=region, **kw))
    return list(response.body.images.image)


async def fails(call: Any) -> AlibabaCloudException:
    """Await ``call``, which must fail with an API error; return the error."""
    with pytest.raises(AlibabaCloudException) as info:
        await call
    return info.value


def ecs_state(sim: Simulator) -> dict[str, Any]:
    state: dict[str, Any] = sim.state()["ecs"]
    return state


def region_images(sim: Simulator, region: str) -> dict[str, dict[str, Any]]:
    images = ecs_state(sim)["regions"].get(region, {}).get("images", [])
    return {i["id"]: i for i in images}


# --- authentication and the wire --------------------------------------------------------------


async def test_describe_regions_lists_every_region(sim: Simulator) -> None:
    """DescribeRegions (no RegionId) answers with every region of the emulator's map."""
    response = await ecs_client(sim).describe_regions_async(m.DescribeRegionsRequest())
    regions = {r.region_id: r for r in response.body.regions.region}
    assert set(regions) == set(sim.ctx.regions.ids())
    assert regions[REGION].region_endpoint == f"ecs.{REGION}.aliyuncs.com"
    assert regions[REGION].status == "available"
    assert response.body.request_id


async def test_rpc_v1_signature_is_accepted(sim: Simulator) -> None:
    """A client signing with RPC V1 (HMAC-SHA1, signature_algorithm v2) is served too."""
    client = ecs_client(sim, REGION, signature_algorithm="v2")
    response = await client.describe_images_async(m.DescribeImagesRequest(region_id=REGION))
    assert response.body.total_count == 0


@pytest.mark.parametrize("algorithm", [None, "v2"])
async def test_wrong_secret_is_signature_mismatch(sim: Simulator, algorithm: str | None) -> None:
    """A wrong secret fails with 400 SignatureDoesNotMatch under both signature schemes."""
    client = ecs_client(
        sim, REGION, access_key_secret="not-the-secret", signature_algorithm=algorithm
    )
    error = await fails(client.describe_images_async(m.DescribeImagesRequest(region_id=REGION)))
    assert (error.code, error.status_code) == ("SignatureDoesNotMatch", 400)
    # The SDK adds "statusCode" to the body it parsed.
    assert set(error.data) - {"statusCode"} == {
        "RequestId",
        "HostId",
        "Code",
        "Message",
        "Recommend",
    }


async def test_unknown_access_key_is_not_found(sim: Simulator) -> None:
    """An access key ID the emulator never issued fails with 404 InvalidAccessKeyId.NotFound."""
    client = ecs_client(sim, REGION, access_key_id="LTAI-nobody")
    error = await fails(client.describe_regions_async(m.DescribeRegionsRequest()))
    assert (error.code, error.status_code) == ("InvalidAccessKeyId.NotFound", 404)
    assert error.data["Message"] == "Specified access key is not found."


async def test_expired_sts_key_is_refused(sim: Simulator) -> None:
    """A temporary key past its (virtual) expiry fails with InvalidSecurityToken.Expired."""
    key = sim.ctx.keys.issue_temporary("role/test", expires_at=sim.clock.now() - 1)
    client = ecs_client(
        sim,
        REGION,
        access_key_id=key.access_key_id,
        access_key_secret=key.secret,
        security_token=key.security_token,
        type="sts",
    )
    error = await fails(client.describe_regions_async(m.DescribeRegionsRequest()))
    assert (error.code, error.status_code) == ("InvalidSecurityToken.Expired", 400)


async def test_unknown_action_and_missing_region(sim: Simulator) -> None:
    """An unknown Action is 404 InvalidAction.NotFound; a missing RegionId is MissingParameter."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            "http://ecs.aliyuncs.com/?Action=RunInstances&Version=2014-05-26", proxy=sim.proxy_url
        ) as response,
    ):
        body = await response.json(content_type=None)
        assert response.status == 404
        assert response.headers["Content-Type"] == "application/json;charset=utf-8"
    assert body["Code"] == "InvalidAction.NotFound"
    client = ecs_client(sim)
    error = await fails(client.describe_images_async(m.DescribeImagesRequest()))
    assert (error.code, error.status_code) == ("MissingParameter", 400)
    assert error.data["Message"] == (
        'The input parameter "RegionId" that is mandatory for processing this request is not '
        "supplied."
    )
    bogus = await fails(client.describe_images_async(m.DescribeImagesRequest(region_id="xx-1")))
    assert (bogus.code, bogus.status_code) == ("InvalidRegionId.NotFound", 404)


# --- ImportImage ------------------------------------------------------------------------------


async def test_import_lifecycle_creating_to_available(sim: Simulator) -> None:
    """An import is Creating with a Processing task, then Available with a snapshot."""
    sim.clock.pause()  # Creating for as long as the test looks, not for 180 ms of real time
    client = ecs_client(sim, REGION)
    bucket, key = await upload(sim, REGION)
    request = import_request(
        REGION,
        bucket,
        key,
        "img-one",
        boot_mode="UEFI",
        features=m.ImportImageRequestFeatures(nvme_support="supported"),
        tag=[m.ImportImageRequestTag(key="app", value="aliasync")],
    )
    answer = (await client.import_image_async(request)).body
    assert answer.image_id.startswith("m-") and len(answer.image_id) == 22
    assert answer.task_id.startswith("t-") and answer.region_id == REGION
    # DescribeImages shows Available images only unless Status says otherwise.
    assert await describe(client, REGION, status=None) == []
    (image,) = await describe(client, REGION, image_id=answer.image_id)
    assert image.status == "Creating" and image.progress != "100%"
    assert image.disk_device_mappings.disk_device_mapping[0].snapshot_id == ""
    tasks = await client.describe_tasks_async(
        m.DescribeTasksRequest(region_id=REGION, task_ids=answer.task_id)
    )
    (task,) = tasks.body.task_set.task
    assert (task.task_status, task.task_action, task.resource_id) == (
        "Processing",
        "ImportImage",
        answer.image_id,
    )

    sim.clock.advance(IMPORT_S)
    (image,) = await describe(client, REGION, status="Available")
    assert (image.image_id, image.image_name, image.status) == (
        answer.image_id,
        "img-one",
        "Available",
    )
    assert (image.progress, image.size, image.boot_mode) == ("100%", 1, "UEFI")
    assert (image.image_owner_alias, image.is_public, image.is_copied) == ("self", False, False)
    assert image.features.nvme_support == "supported"
    assert [(t.tag_key, t.tag_value) for t in image.tags.tag] == [("app", "aliasync")]
    mapping = image.disk_device_mappings.disk_device_mapping[0]
    assert mapping.snapshot_id.startswith("s-")
    assert (mapping.import_ossbucket, mapping.import_ossobject) == (bucket, key)
    assert image.creation_time.startswith("2026-11-24T12:")
    tasks = await client.describe_tasks_async(
        m.DescribeTasksRequest(region_id=REGION, task_status="Finished")
    )
    assert [t.task_id for t in tasks.body.task_set.task] == [answer.task_id]
    snaps = await client.describe_snapshots_async(m.DescribeSnapshotsRequest(region_id=REGION))
    (snap,) = snaps.body.snapshots.snapshot
    assert (snap.snapshot_id, snap.status, snap.usage, snap.source_disk_id) == (
        mapping.snapshot_id,
        "accomplished",
        "image",
        "",
    )
    view = region_images(sim, REGION)[answer.image_id]
    assert view["content_digest"] == sha(DATA)
    assert view["snapshot_ids"] == [mapping.snapshot_id]


async def test_import_validation_errors(sim: Simulator) -> None:
    """Bad names, sizes, sources and regions are refused with the cloud's codes."""
    client = ecs_client(sim, REGION)
    bucket, key = await upload(sim, REGION)
    for bad in ("1starts-with-digit", "aliyun-image", "a", "has space", "x" * 129, "ahttp://x"):
        error = await fails(client.import_image_async(import_request(REGION, bucket, key, bad)))
        assert (error.code, error.status_code) == ("InvalidImageName.Malformed", 400), bad
    cases = [
        (import_request(REGION, bucket, "missing.raw", "ok-name"), "InvalidOSSObject.NotFound"),
        (import_request(REGION, "no-such-bucket", key, "ok-name"), "InvalidOSSBucket.NotFound"),
        # The object exists, but in another region than the import.
        (import_request(OTHER, bucket, key, "ok-name"), "InvalidOSSBucket.NotFound"),
        (import_request(REGION, bucket, key, "ok-name", size=0), "InvalidImageSize"),
        (
            import_request(REGION, bucket, key, "ok-name", architecture="sparc"),
            "InvalidArchitecture.Malformed",
        ),
        (import_request(None, bucket, key, "ok-name"), "MissingParameter"),
    ]
    for request, code in cases:
        error = await fails(client.import_image_async(request))
        assert (error.code, error.status_code) == (code, 400)
    assert ecs_state(sim)["regions"] == {}


async def test_import_duplicate_name_and_quota(sim: Simulator) -> None:
    """A name in use (even by a Creating image) is Duplicated; the region quota is enforced."""
    sim.clock.pause()
    client = ecs_client(sim, REGION)
    creating = await imported(sim, client, REGION, "dup", wait=False)
    bucket, key = await upload(sim, REGION)
    error = await fails(client.import_image_async(import_request(REGION, bucket, key, "dup")))
    assert (error.code, error.status_code) == ("InvalidImageName.Duplicated", 400)
    assert region_images(sim, REGION)[creating]["status"] == "Creating"
    sim.ctx.models["ecs"].image_quota = 1
    error = await fails(client.import_image_async(import_request(REGION, bucket, key, "other")))
    assert (error.code, error.status_code) == ("QuotaExceed.Image", 403)
    assert sim.ctx.models["ecs"].duplicate_images() == []


async def test_import_client_token_is_idempotent(sim: Simulator) -> None:
    """The same ClientToken returns the same image; other parameters with it are refused."""
    client = ecs_client(sim, REGION)
    bucket, key = await upload(sim, REGION)
    first = await client.import_image_async(
        import_request(REGION, bucket, key, "tok", client_token="token-1")
    )
    again = await client.import_image_async(
        import_request(REGION, bucket, key, "tok", client_token="token-1")
    )
    assert (again.body.image_id, again.body.task_id) == (first.body.image_id, first.body.task_id)
    assert list(region_images(sim, REGION)) == [first.body.image_id]
    error = await fails(
        client.import_image_async(
            import_request(REGION, bucket, key, "tok-2", client_token="token-1")
        )
    )
    assert (error.code, error.status_code) == ("IdempotentParameterMismatch", 400)
    # Introspection: the token, its image, answered twice (the mismatch is no answer).
    seen = sim.ctx.models["ecs"].client_tokens()
    assert seen == [
        {"action": "ImportImage", "region": REGION, "token": "token-1",
         "image_id": first.body.image_id, "answers": 2}
    ]  # fmt: skip


async def test_import_needs_the_import_role(sim: Simulator) -> None:
    """Without AliyunECSImageImportDefaultRole (or the RoleName given) ImportImage is 403."""
    client = ecs_client(sim, REGION)
    bucket, key = await upload(sim, REGION)
    error = await fails(
        client.import_image_async(
            import_request(REGION, bucket, key, "role-test", role_name="NoSuchRole")
        )
    )
    assert (error.code, error.status_code) == ("NoSetRoletoECSServiceAccount", 403)


async def test_import_needs_the_default_import_role_in_an_unprepared_account() -> None:
    """An account without AliyunECSImageImportDefaultRole gets 403 from ImportImage."""
    async with Simulator(seed=2, profile="none", preset_roles=False) as sim:
        client = ecs_client(sim, REGION)
        bucket, key = await upload(sim, REGION)
        request = import_request(REGION, bucket, key, "role-test")
        error = await fails(client.import_image_async(request))
        assert (error.code, error.status_code) == ("NoSetRoletoECSServiceAccount", 403)


async def test_failed_import_leaves_create_failed_image() -> None:
    """With import_failure_rate 1 the task ends Failed and the image CreateFailed, no snapshot."""
    failing = profile("none").with_(import_failure_rate=1.0)
    async with Simulator(seed=3, profile=failing, time_scale=1000.0) as sim:
        client = ecs_client(sim, REGION)
        image_id = await imported(sim, client, REGION, "doomed")
        (image,) = await describe(client, REGION)
        assert (image.image_id, image.status) == (image_id, "CreateFailed")
        tasks = await client.describe_tasks_async(m.DescribeTasksRequest(region_id=REGION))
        assert [t.task_status for t in tasks.body.task_set.task] == ["Failed"]
        assert ecs_state(sim)["regions"][REGION]["snapshots"] == []
        assert sim.faults_injected()["counts"] == {"import_failed": 1}


# --- DescribeImages / DescribeTasks -------------------------------------------------------------


async def test_describe_images_filters_and_paging(sim: Simulator) -> None:
    """DescribeImages pages (TotalCount, PageSize<=100) and filters by ID, name, owner, status."""
    client = ecs_client(sim, REGION)
    ids = [await imported(sim, client, REGION, f"page-{n}", wait=False) for n in range(3)]
    first = await describe(client, REGION, page_size=2, page_number=1)
    second = await describe(client, REGION, page_size=2, page_number=2)
    assert len(first) == 2 and len(second) == 1
    assert {i.image_id for i in first + second} == set(ids)
    response = await client.describe_images_async(
        m.DescribeImagesRequest(region_id=REGION, status="ALL", page_size=2)
    )
    assert (response.body.total_count, response.body.page_size) == (3, 2)
    picked = await describe(client, REGION, image_id=f"{ids[0]},{ids[2]}")
    assert {i.image_id for i in picked} == {ids[0], ids[2]}
    assert [i.image_id for i in await describe(client, REGION, image_name="page-1")] == [ids[1]]
    assert await describe(client, REGION, image_owner_alias="system") == []
    assert len(await describe(client, REGION, image_owner_alias="self")) == 3
    assert len(await describe(client, REGION, status="Creating,Available")) == 3
    for bad in ({"status": "ALL,Available"}, {"status": "Nope"}, {"page_size": 101}):
        error = await fails(describe(client, REGION, **bad))
        assert error.status_code == 400, bad


async def test_describe_tasks_filters_and_dry_run(sim: Simulator) -> None:
    """DescribeTasks filters by action, status and time; DryRun validates without importing."""
    sim.clock.pause()  # task-b stays Processing
    client = ecs_client(sim, REGION)
    first = await imported(sim, client, REGION, "task-a")
    await imported(sim, client, REGION, "task-b", wait=False)
    tasks = await client.describe_tasks_async(
        m.DescribeTasksRequest(region_id=REGION, task_action="ImportImage", page_size=1)
    )
    assert (tasks.body.total_count, len(tasks.body.task_set.task)) == (2, 1)
    done = await client.describe_tasks_async(
        m.DescribeTasksRequest(region_id=REGION, task_status="Finished")
    )
    assert [t.resource_id for t in done.body.task_set.task] == [first]
    assert done.body.task_set.task[0].finished_time.endswith("Z")
    late = await client.describe_tasks_async(
        m.DescribeTasksRequest(region_id=REGION, start_time="2030-01-01T00:00:00Z")
    )
    assert late.body.total_count == 0
    bucket, key = await upload(sim, REGION)
    dry = import_request(REGION, bucket, key, "dry-run", dry_run=True)
    error = await fails(client.import_image_async(dry))
    assert (error.code, error.status_code) == ("DryRunOperation", 400)
    assert len(region_images(sim, REGION)) == 2


async def test_error_response_shape_and_headers(sim: Simulator) -> None:
    """Injected errors (Throttling) use ECS's JSON error body and keep the error's headers."""
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDictProxy

    from aliasync.sim._errors import SimError
    from aliasync.sim._service import SimRequest
    from aliasync.sim.ecs import EcsService

    raw = make_mocked_request("POST", "/")
    request = SimRequest(
        "POST",
        "ecs.cn-hangzhou.aliyuncs.com",
        "/",
        "",
        CIMultiDictProxy(raw.headers),
        raw,
        request_id="ABC-1",
    )
    error = SimError("Throttling", "Request was denied due to request throttling.", 400)
    error.headers["x-acs-retry-after"] = "1000"
    response = EcsService(sim.ctx).error_response(request, error)
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json;charset=utf-8"
    assert response.headers["x-acs-retry-after"] == "1000"
    assert isinstance(response.body, bytes)
    body = json.loads(response.body)
    assert body["Code"] == "Throttling" and body["RequestId"] == "ABC-1"
    assert body["HostId"] == "ecs.cn-hangzhou.aliyuncs.com" and "Recommend" in body


def test_copy_queue_cancellation_frees_the_slot() -> None:
    """A cancelled running copy frees its slot at once; one cancelled while queued takes none."""
    from aliasync.sim.ecs._state import CopyJob, CopyQueue

    q = CopyQueue()
    for n in range(3):
        q.submit(CopyJob(f"m{n}", "r", "src", 0.0, 100.0), 1)
    assert [(j.start, j.end) for j in q.jobs] == [(0, 100), (100, 200), (200, 300)]
    q.cancel("m0", 40.0, 1)
    q.cancel("m2", 45.0, 1)
    assert (q.job("m1").start, q.job("m1").end) == (40, 140)  # type: ignore[union-attr]
    q.submit(CopyJob("m3", "r", "src", 50.0, 100.0), 1)
    assert q.job("m3").start == 140  # type: ignore[union-attr]
    q.submit(CopyJob("m4", "r", "src", 1000.0, 10.0), 2)  # slots grew: starts at once
    assert q.job("m4").start == 1000  # type: ignore[union-attr]
