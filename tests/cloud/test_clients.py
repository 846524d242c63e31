"""aliasync's cloud clients (ECS, OSS, FC, STS) against the emulator, over real sockets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import traceback
from pathlib import Path

import anyio
import pytest

from aliasync._exceptions import (
    NotFoundError,
    PermanentCloudError,
    TransientCloudError,
)
from aliasync.cloud._credentials import CredentialSource
from aliasync.cloud._ecs import EcsApi, ImageFailedError, ImageTimeoutError
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._fc import FcApi
from aliasync.cloud._oss import BucketsForbiddenError, OssApi
from aliasync.cloud._sts import caller_account_id
from aliasync.cloud._transport import redact
from aliasync.sim import PROFILES, Simulator

pytestmark = pytest.mark.anyio

MiB = 2**20


def _clients(sim: Simulator, **changes: object) -> tuple[Endpoints, CredentialSource]:
    endpoints = dataclasses.replace(Endpoints.from_dict(sim.endpoints), **changes)  # type: ignore[arg-type]
    return endpoints, CredentialSource(endpoints)


def _random_file(path: Path, size: int, seed: int) -> str:
    """Write ``size`` pseudo-random bytes; return their sha256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    with path.open("wb") as out:
        written = 0
        while written < size:
            chunk = block[: size - written]
            chunk = bytes([written // MiB % 251]) + chunk[1:]  # no two MiB alike
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def _shared_with(sim: Simulator, region: str, image_id: str) -> list[str]:
    """The accounts the emulator's ECS shares the image with."""
    images = sim.ctx.models["ecs"].snapshot()["regions"][region]["images"]
    (image,) = [i for i in images if i["id"] == image_id]
    accounts: list[str] = image["shared_accounts"]
    return accounts


def _full_text(exc: BaseException) -> str:
    """str, repr and the whole formatted traceback, causes included: what a log could show."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


async def test_wrong_secret_is_a_permanent_signature_error_without_the_secret(
    sim: Simulator,
) -> None:
    """A bad secret gives PermanentCloudError SignatureDoesNotMatch; no trace of the secret."""
    wrong = "Wr0ngSecretValue-" + "x" * 16
    endpoints, credentials = _clients(sim, access_key_secret=wrong)
    ecs = EcsApi(endpoints, credentials, "cn-hangzhou")
    with pytest.raises(PermanentCloudError) as ecs_error:
        await ecs.describe_regions()
    assert ecs_error.value.code == "SignatureDoesNotMatch"
    assert ecs_error.value.request_id
    assert isinstance(ecs_error.value.__cause__, Exception)  # raise ... from the SDK's error
    async with OssApi(endpoints, credentials) as oss:
        with pytest.raises(PermanentCloudError) as oss_error:
            await oss.list_buckets()
    assert oss_error.value.code == "SignatureDoesNotMatch"
    for error in (ecs_error.value, oss_error.value):
        assert wrong not in _full_text(error)
        assert "Signature=" not in _full_text(error).replace("Signature=***", "")


async def test_unknown_key_is_not_mistaken_for_a_missing_resource(sim: Simulator) -> None:
    """InvalidAccessKeyId.NotFound must fail an idempotent delete, not pass as 'already gone'."""
    endpoints, credentials = _clients(sim, access_key_id="LTAInobodyhasthiskey")
    with pytest.raises(PermanentCloudError) as caught:
        await EcsApi(endpoints, credentials, "cn-hangzhou").delete_image("m-doesnotexist")
    assert caught.value.code == "InvalidAccessKeyId.NotFound"
    assert not isinstance(caught.value, NotFoundError)


async def test_deletes_of_missing_things_succeed(sim: Simulator) -> None:
    """Deleting an image, snapshot, bucket or function that does not exist is a success: the
    delete is sent, the cloud says it is not there, and that is taken as done."""
    endpoints, credentials = _clients(sim)
    ecs = EcsApi(endpoints, credentials, "cn-hangzhou")
    await ecs.delete_image("m-doesnotexist0000001")
    await ecs.delete_snapshot("s-doesnotexist000001")
    assert await ecs.find_images(image_id="m-doesnotexist0000001") == []
    async with OssApi(endpoints, credentials) as oss:
        await oss.delete_bucket("ap-southeast-1", "aliasync-never-created")
    await FcApi(endpoints, credentials, account_id=sim.account_id).delete_function(
        "cn-hangzhou", "aliasync-never-created"
    )
    answered = {
        (r.action, r.status, r.error)
        for r in sim.calls.records
        if r.action in ("DeleteImage", "DeleteSnapshot", "DeleteBucket", "DeleteFunction")
    }
    assert answered == {
        ("DeleteImage", 404, "InvalidImageId.NotFound"),
        ("DeleteSnapshot", 404, "InvalidSnapshotId.NotFound"),
        ("DeleteBucket", 404, "NoSuchBucket"),
        ("DeleteFunction", 404, "FunctionNotFound"),
    }


def test_redact_masks_presigned_signatures_and_tokens() -> None:
    """Signatures, security tokens and Authorization values are masked in any text."""
    text = (
        "GET http://b.s3.oss-x.aliyuncs.com/k?X-Amz-Security-Token=TOKEN123&"
        "X-Amz-Signature=abcdef0123 Authorization: AWS4-HMAC-SHA256 Credential=LTAI/x, "
        'Signature=ffff {"x-acs-security-token": "TOKEN456"}'
    )
    masked = redact(text)
    for secret in ("TOKEN123", "abcdef0123", "ffff", "TOKEN456"):
        assert secret not in masked


async def test_transient_faults_are_retried_until_success() -> None:
    """With 30% of calls failing transiently, every operation still succeeds, after retries."""
    profile = PROFILES["none"].with_(transient_rate=0.3)
    async with Simulator(seed=3, profile=profile, time_scale=1000.0) as sim:
        endpoints, credentials = _clients(sim)
        assert await caller_account_id(endpoints, credentials) == sim.account_id
        ecs = EcsApi(endpoints, credentials, "ap-southeast-1")
        for _ in range(20):
            assert "cn-hangzhou" in await ecs.describe_regions()
        async with OssApi(endpoints, credentials) as oss:
            for _ in range(4):
                await oss.create_bucket("ap-southeast-1", "aliasync-retry-test")
            listed = await oss.list_buckets("aliasync")
            assert ("aliasync-retry-test", "ap-southeast-1") in [(b.name, b.region) for b in listed]
            await oss.delete_bucket("ap-southeast-1", "aliasync-retry-test")
        faulted = [r for r in sim.calls.records if r.fault]
        assert faulted, "the profile should have injected faults"
        assert sim.calls.count("DescribeRegions") > 20  # attempts beyond the 20 successes
        assert {r.fault for r in faulted} >= {"internal", "unavailable", "throttle", "drop"}
        assert sim.leaks()["buckets"] == []


async def test_multipart_upload_streams_with_the_right_sha256(
    sim: Simulator, tmp_path: Path
) -> None:
    """A 25 MB file goes up in 8 MiB parts; the returned and stored sha256 match the file."""
    path = tmp_path / "disk.raw"
    expected = _random_file(path, 25 * 10**6, seed=1)
    endpoints, credentials = _clients(sim)
    progress: list[int] = []
    async with OssApi(endpoints, credentials) as oss:
        await oss.create_bucket("ap-southeast-1", "aliasync-upload-test")
        digest = await oss.upload_file(
            "ap-southeast-1", "aliasync-upload-test", "tmp/disk.raw", path,
            on_progress=progress.append,
        )  # fmt: skip
        info = sim.ctx.models["oss"].object_info(
            "ap-southeast-1", "aliasync-upload-test", "tmp/disk.raw"
        )
        assert digest == expected == info.sha256
        assert info.size == 25 * 10**6 == sum(progress)
        assert info.etag.endswith("-3")  # multipart: 8 MiB + 8 MiB + the rest
        assert sim.calls.count("UploadPart") == 3
        await oss.delete_bucket("ap-southeast-1", "aliasync-upload-test")
        await oss.delete_bucket("ap-southeast-1", "aliasync-upload-test")  # idempotent
    leaks = sim.leaks()
    assert leaks["buckets"] == [] and leaks["multipart_uploads"] == []


async def test_upload_and_delete_survive_faults_and_lost_answers(tmp_path: Path) -> None:
    """Transient faults and lost answers (committed, then dropped) neither corrupt nor leak."""
    profile = PROFILES["none"].with_(transient_rate=0.2, lost_response_rate=0.25)
    path = tmp_path / "disk.raw"
    expected = _random_file(path, 6 * MiB + 5, seed=2)
    # Seed 2 loses CreateMultipartUpload and CompleteMultipartUpload answers, among others.
    region = "ap-southeast-1"
    async with Simulator(seed=2, profile=profile, time_scale=1000.0) as sim:
        endpoints, credentials = _clients(sim)
        async with OssApi(endpoints, credentials) as oss:
            await oss.create_bucket(region, "aliasync-lossy")
            for key in ("a.raw", "b.raw", "c.raw"):
                digest = await oss.upload_file(region, "aliasync-lossy", key, path, part_size=MiB)
                assert digest == expected
                info = sim.ctx.models["oss"].object_info(region, "aliasync-lossy", key)
                assert info.sha256 == expected
            small = await oss.upload_file(
                region, "aliasync-lossy", "small", path, part_size=8 * MiB
            )
            assert small == expected
            # Uploads started by lost CreateMultipartUpload answers are unknown to us (S3 cannot
            # list them): removing the bucket aborts them, listed natively.
            await oss.delete_bucket(region, "aliasync-lossy")
        lost = {r.action for r in sim.calls.records if r.fault == "lost"}
        assert {"CreateMultipartUpload", "CompleteMultipartUpload", "UploadPart"} <= lost
        leaks = sim.leaks()
        assert leaks["buckets"] == [] and leaks["multipart_uploads"] == []


async def test_bucket_rules_by_region(sim: Simulator) -> None:
    """Zhangjiakou refuses new buckets; Beijing's public endpoint refuses data, Singapore's not."""
    endpoints, credentials = _clients(sim)
    async with OssApi(endpoints, credentials) as oss:
        with pytest.raises(BucketsForbiddenError) as caught:
            await oss.create_bucket("cn-zhangjiakou", "aliasync-zjk")
        assert caught.value.code == "ForbidCreateNewBucket"
        await oss.create_bucket("cn-beijing", "aliasync-bj")
        await oss.create_bucket("ap-southeast-1", "aliasync-sg")
        await oss.create_bucket("ap-southeast-1", "aliasync-sg")  # already ours: fine
        assert await oss.check_public_data_access("cn-beijing", "aliasync-bj") is False
        assert await oss.check_public_data_access("ap-southeast-1", "aliasync-sg") is True
        listed = await oss.list_buckets("aliasync-")
        assert sorted((b.name, b.region) for b in listed) == [
            ("aliasync-bj", "cn-beijing"),
            ("aliasync-sg", "ap-southeast-1"),
        ]
        await oss.delete_bucket("cn-beijing", "aliasync-bj")  # empty: a control call
        await oss.delete_bucket("ap-southeast-1", "aliasync-sg")
    assert sim.leaks()["buckets"] == []


async def test_image_lifecycle(sim: Simulator, tmp_path: Path) -> None:
    """Import, wait, family, sharing (chunked), copy, snapshot tagging and full cleanup."""
    path = tmp_path / "disk.raw"
    _random_file(path, 2 * MiB, seed=3)
    endpoints, credentials = _clients(sim)
    hz = EcsApi(endpoints, credentials, "cn-hangzhou")
    sg = EcsApi(endpoints, credentials, "ap-southeast-1")
    async with OssApi(endpoints, credentials) as oss:
        await oss.create_bucket("ap-southeast-1", "aliasync-import")
        await oss.upload_file("ap-southeast-1", "aliasync-import", "disk.raw", path)
        image_id, task_id = await sg.import_image(
            name="ipxe-test-1", bucket="aliasync-import", key="disk.raw",
            disk_image_size_gib=1, boot_mode="UEFI", architecture="x86_64",
            client_token="tok-import-1", description="test image", tags={"run": "r1"},
        )  # fmt: skip
        again = await sg.import_image(
            name="ipxe-test-1", bucket="aliasync-import", key="disk.raw",
            disk_image_size_gib=1, boot_mode="UEFI", architecture="x86_64",
            client_token="tok-import-1", description="test image", tags={"run": "r1"},
        )  # fmt: skip
        assert again == (image_id, task_id)  # same client token: same image
        info = await sg.wait_available(image_id, timeout=3600, task_id=task_id)
        await oss.delete_bucket("ap-southeast-1", "aliasync-import")
    assert (info.name, info.status, info.boot_mode) == ("ipxe-test-1", "Available", "UEFI")
    assert info.nvme_support and info.snapshot_ids and info.progress == 100
    assert [i.image_id for i in await sg.find_images(name="ipxe-test")] == []  # exact names
    await sg.set_attributes(image_id, family="ipxe-uefi-x86-64")
    accounts = [str(1000000000000000 + n) for n in range(12)]
    await sg.set_sharing(image_id, add_accounts=accounts)
    assert sim.calls.count("ModifyImageSharePermission") == 2  # 10 + 2
    assert _shared_with(sim, "ap-southeast-1", image_id) == accounts  # ten per call, all 12
    await sg.set_sharing(image_id, remove_accounts=accounts)
    assert _shared_with(sim, "ap-southeast-1", image_id) == []
    (found,) = await sg.find_images(family="ipxe-uefi-x86-64")
    assert found.image_id == image_id and found.family == "ipxe-uefi-x86-64"
    copy_id = await sg.copy_image(
        image_id=image_id, destination_region="cn-hangzhou",
        destination_name="ipxe-test-1", client_token="tok-copy-1",
    )  # fmt: skip
    copied = await hz.wait_available(copy_id, timeout=36000)
    for api, image in ((sg, info), (hz, copied)):
        await api.tag_snapshots(image.snapshot_ids, "aliasync-delete", "r1")
        assert sorted(await api.snapshots_tagged("aliasync-delete", "r1")) == sorted(
            image.snapshot_ids
        )
        with pytest.raises(PermanentCloudError, match="SnapshotCreatedImage"):
            await api.delete_snapshot(image.snapshot_ids[0])
        await api.delete_image(image.image_id)
        await api.delete_image(image.image_id)
        for snapshot_id in await api.snapshots_tagged("aliasync-delete", "r1"):
            await api.delete_snapshot(snapshot_id)
    leaks = sim.leaks()
    assert leaks["orphan_snapshots"] == [] and leaks["duplicate_images"] == []


async def test_failed_and_slow_imports_are_reported(tmp_path: Path) -> None:
    """An import that fails raises ImageFailedError; one that takes too long, ImageTimeoutError."""
    path = tmp_path / "disk.raw"
    _random_file(path, MiB, seed=4)
    profile = PROFILES["none"].with_(import_failure_rate=1.0)
    async with Simulator(seed=0, profile=profile, time_scale=1000.0) as sim:
        endpoints, credentials = _clients(sim)
        ecs = EcsApi(endpoints, credentials, "ap-southeast-1")
        async with OssApi(endpoints, credentials) as oss:
            await oss.create_bucket("ap-southeast-1", "aliasync-fail")
            await oss.upload_file("ap-southeast-1", "aliasync-fail", "disk.raw", path)
            sim.clock.pause()  # both imports Creating until the first wait has timed out
            ids = []
            for n in (1, 2):
                image_id, task_id = await ecs.import_image(
                    name=f"ipxe-fail-{n}", bucket="aliasync-fail", key="disk.raw",
                    disk_image_size_gib=1, boot_mode="BIOS", architecture="x86_64",
                    client_token=f"tok-fail-{n}",
                )  # fmt: skip
                ids.append((image_id, task_id))
            with pytest.raises(ImageTimeoutError):
                await ecs.wait_available(ids[0][0], timeout=5, task_id=ids[0][1])
            sim.clock.advance(200)  # the imports' 180 s are over: both have failed
            with pytest.raises(ImageFailedError):
                await ecs.wait_available(ids[1][0], timeout=3600, task_id=ids[1][1])
            await oss.delete_bucket("ap-southeast-1", "aliasync-fail")
            for image_id, _ in ids:
                await ecs.delete_image(image_id)


async def test_fc_probe(sim: Simulator) -> None:
    """Function Compute answers in Hangzhou; Guangzhou (no FC) counts as unavailable."""
    endpoints, credentials = _clients(sim)
    fc = FcApi(endpoints, credentials, account_id=sim.account_id)
    assert await fc.probe("cn-hangzhou") is True
    assert await fc.probe("cn-guangzhou") is False


_CHAIN_SCRIPT = """
import sys, anyio
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._credentials import CredentialSource
from aliasync._exceptions import ConfigurationError
from aliasync.cloud._sts import caller_account_id

async def main():
    endpoints = Endpoints.load(sys.argv[1])
    try:
        print(await caller_account_id(endpoints, CredentialSource(endpoints)))
    except ConfigurationError as exc:
        print("ConfigurationError:", exc)

anyio.run(main)
"""


async def _run_chain(sim: Simulator, tmp_path: Path, env: dict[str, str]) -> str:
    doc = {k: v for k, v in sim.endpoints.items() if k != "credentials"}
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps(doc))
    base = {k: os.environ[k] for k in ("PATH", "LANG") if k in os.environ}
    base.update(HOME=str(tmp_path), ALIBABA_CLOUD_ECS_METADATA_DISABLED="true", **env)
    result = await anyio.run_process(
        [sys.executable, "-c", _CHAIN_SCRIPT, str(path)], env=base, check=True
    )
    return result.stdout.decode().strip()


async def test_credentials_come_from_the_default_chain(sim: Simulator, tmp_path: Path) -> None:
    """Without keys in the endpoints file, the environment variables are used."""
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": sim.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sim.access_key_secret,
    }
    assert await _run_chain(sim, tmp_path, env) == sim.account_id


async def test_no_credentials_anywhere_is_a_configuration_error(
    sim: Simulator, tmp_path: Path
) -> None:
    """No keys in the file, the environment, a profile or the instance: a clear usage error."""
    output = await _run_chain(sim, tmp_path, {})
    assert output.startswith("ConfigurationError:")
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in output


async def test_native_oss_errors_cross_the_boundary_mapped(sim: Simulator) -> None:
    """alibabacloud-oss-v2's failures become aliasync's: no answer is transient, a refusal
    permanent, a missing bucket NotFound; no secret in any of them."""
    endpoints, credentials = _clients(sim)
    async with OssApi(endpoints, credentials) as oss:
        native = oss.native
        with pytest.raises(TransientCloudError) as unanswered:
            await native.list_buckets(via="ap-southeast-8")  # a region without OSS
        assert unanswered.value.code == "ConnectionError"
        await oss.create_bucket("cn-beijing", "aliasync-native-map")
        with pytest.raises(PermanentCloudError) as refused:
            await native.list_uploads("cn-beijing", "aliasync-native-map")  # data, mainland
        assert (refused.value.code, refused.value.status) == ("PublicEndpointForbidden", 400)
        with pytest.raises(NotFoundError) as missing:
            await native.put_expiry_rule("ap-southeast-1", "aliasync-never-made", days=1)
        assert missing.value.code == "NoSuchBucket" and missing.value.request_id
        await oss.delete_bucket("cn-beijing", "aliasync-native-map")
    for error in (unanswered.value, refused.value, missing.value):
        assert sim.access_key_secret not in _full_text(error)
