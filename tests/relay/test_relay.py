"""The relay function, deployed to the emulator's Function Compute and run for real."""

from __future__ import annotations

import hashlib
import json
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from alibabacloud_ram20150501 import models as ram_models

from aliasync.cloud._credentials import CredentialSource
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._fc import FcApi, FunctionFailedError
from aliasync.cloud._oss import EmptiedInsideOnlyError, OssApi
from aliasync.relay.package import HANDLER, cleanup_event, relay_event, relay_zip
from aliasync.sim import PROFILES, FaultProfile, Simulator
from tests.clients import ram_client

pytestmark = pytest.mark.anyio

KiB = 1024
SOURCES = ("ap-southeast-1", "cn-hongkong", "eu-central-1")
TARGET = "cn-beijing"
FUNCTION = "aliasync-relay-test"
PREFIX = "aliasync-tmp/run-1/"
SEED_HANG = 9  # the first invocation of the relay hangs until its timeout


async def _relay_role(sim: Simulator) -> str:
    """A RAM role Function Compute may assume, allowed to use OSS; returns its ARN."""
    trust = {
        "Statement": [
            {
                "Action": "sts:AssumeRole",
                "Effect": "Allow",
                "Principal": {"Service": ["fc.aliyuncs.com"]},
            }
        ],
        "Version": "1",
    }
    ram = ram_client(sim)
    created = await ram.create_role_async(
        ram_models.CreateRoleRequest(
            role_name="aliasync-relay", assume_role_policy_document=json.dumps(trust)
        )
    )
    await ram.attach_policy_to_role_async(
        ram_models.AttachPolicyToRoleRequest(
            policy_type="System", policy_name="AliyunOSSFullAccess", role_name="aliasync-relay"
        )
    )
    return str(created.body.role.arn)


def test_relay_zip_holds_the_handler() -> None:
    """The package is a stable ZIP with index.py = handler.py, so FC finds index.handler."""
    first, second = relay_zip(), relay_zip()
    assert first == second  # deterministic: same code checksum on every deployment
    with zipfile.ZipFile(BytesIO(first)) as archive:
        assert archive.namelist() == ["index.py"]
        source = archive.read("index.py").decode()
    assert "def handler(event: bytes, context: Any)" in source
    assert HANDLER == "index.handler"
    # Standard library only: nothing from aliasync or third parties.
    assert "import aliasync" not in source and "from aliasync" not in source


async def test_relay_copies_into_a_mainland_bucket_despite_cut_downloads(tmp_path: Path) -> None:
    """Half the cross-region GETs are cut, yet the object lands intact; bad requests are refused."""
    data = hashlib.sha256(b"relay").digest() * (3 * 2**20 // 32) + b"tail-bytes"
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / "disk.raw"
    path.write_bytes(data)
    profile = PROFILES["none"].with_(download_failure_rate=0.5)
    async with Simulator(seed=7, profile=profile, time_scale=1000.0) as sim:
        endpoints = Endpoints.from_dict(sim.endpoints)
        credentials = CredentialSource(endpoints)
        fc = FcApi(endpoints, credentials, account_id=sim.account_id)
        async with OssApi(endpoints, credentials) as oss:
            urls = []
            for region in SOURCES:
                bucket = f"aliasync-src-{region}"
                await oss.create_bucket(region, bucket)
                await oss.upload_file(region, bucket, PREFIX + "disk.raw", path)
                urls.append(await oss.presign_get(region, bucket, PREFIX + "disk.raw"))
            await oss.create_bucket(TARGET, "aliasync-dst")
            await fc.create_function(
                TARGET, FUNCTION, code_zip=relay_zip(), handler=HANDLER, timeout=600,
                memory_mb=256, role_arn=await _relay_role(sim),
            )  # fmt: skip
            await fc.create_function(  # idempotent
                TARGET, FUNCTION, code_zip=relay_zip(), handler=HANDLER, timeout=600,
                memory_mb=256, role_arn=None,
            )  # fmt: skip
            assert await fc.list_functions(TARGET, "aliasync-") == [FUNCTION]

            def event(key: str = PREFIX + "disk.raw", sha256: str = digest) -> bytes:
                host = f"aliasync-dst.{endpoints.region(TARGET, sim.account_id).oss_internal}"
                return relay_event(
                    sources=urls, size=len(data), sha256=sha256, host=host,
                    bucket="aliasync-dst", key=key, region=TARGET, key_prefix=PREFIX,
                    protocol=endpoints.protocol, part_size=256 * KiB, parallel=4,
                )  # fmt: skip

            answer = json.loads(await fc.invoke(TARGET, FUNCTION, event(), timeout=600))
            assert answer["ok"] and answer["bytes"] == len(data) and answer["sha256"] == digest
            assert answer["retries"] > 0 and not answer["skipped"]
            assert set(answer["sources_used"]) <= set(SOURCES)
            assert sum(answer["sources_used"].values()) == -(-len(data) // (256 * KiB))
            info = sim.ctx.models["oss"].object_info(TARGET, "aliasync-dst", PREFIX + "disk.raw")
            assert info.sha256 == digest
            assert any(f.kind == "download_cut" for f in sim.ctx.faults.injected)

            again = json.loads(await fc.invoke(TARGET, FUNCTION, event(), timeout=600))
            assert again["skipped"]  # already there, same size and sha256: nothing copied

            with pytest.raises(FunctionFailedError, match="outside the allowed prefix"):
                await fc.invoke(TARGET, FUNCTION, event(key="elsewhere/disk.raw"), timeout=600)
            with pytest.raises(FunctionFailedError, match="sha256 mismatch") as caught:
                await fc.invoke(TARGET, FUNCTION, event(PREFIX + "x.raw", "0" * 64), timeout=600)
            for url in urls:  # presigned URLs never reach the error text
                assert url.split("?")[1] not in str(caught.value)
            # The bad copy was aborted: neither an object at the key it was to have, nor a part.
            assert (
                sim.ctx.models["oss"].object_info(TARGET, "aliasync-dst", PREFIX + "x.raw") is None
            )
            stored = sim.ctx.models["oss"].snapshot()["buckets"][TARGET]["aliasync-dst"]
            assert list(stored["objects"]) == [PREFIX + "disk.raw"]
            assert sim.leaks()["multipart_uploads"] == []

            await _clean_up(oss, fc, endpoints, sim, SOURCES)
            await fc.delete_function(TARGET, FUNCTION)
            await fc.delete_function(TARGET, FUNCTION)
        leaks = sim.leaks()
        assert leaks["buckets"] == [] and leaks["functions"] == []


async def _clean_up(
    oss: OssApi, fc: FcApi, endpoints: Endpoints, sim: Simulator, sources: tuple[str, ...]
) -> None:
    """Remove the buckets: the mainland one is emptied by the relay's cleanup mode first."""
    for region in sources:
        await oss.delete_bucket(region, f"aliasync-src-{region}")
    with pytest.raises(EmptiedInsideOnlyError):
        await oss.delete_bucket(TARGET, "aliasync-dst")  # not from outside the cloud
    internal = endpoints.region(TARGET, sim.account_id).oss_native_internal
    event = cleanup_event(
        host=f"aliasync-dst.{internal}", bucket="aliasync-dst", region=TARGET,
        protocol=endpoints.protocol, bucket_prefix="aliasync-",
    )  # fmt: skip
    answer = json.loads(await fc.invoke(TARGET, FUNCTION, event, timeout=600))
    assert answer["ok"]  # a retried invocation may find the work done: the state tells
    snapshot = sim.ctx.models["oss"].snapshot()["buckets"][TARGET]["aliasync-dst"]
    assert snapshot["objects"] == {} and snapshot["uploads"] == []
    await oss.delete_bucket(TARGET, "aliasync-dst")


LOSSY = PROFILES["none"].with_(
    transient_rate=0.15, lost_response_rate=0.15, download_failure_rate=0.2
)
HANGING = PROFILES["none"].with_(function_timeout_rate=0.5)


@pytest.mark.parametrize(
    ("seed", "profile", "evidence"),
    [
        (23, LOSSY, "lost:CreateMultipartUpload"),
        (27, LOSSY, "lost:InvokeFunction"),
        (SEED_HANG, HANGING, "function_timeout:InvokeFunction"),
    ],
    ids=["lost-create-and-complete", "lost-invocations", "hung-invocation"],
)
async def test_relay_is_idempotent_under_lossy_apis(
    tmp_path: Path, seed: int, profile: FaultProfile, evidence: str
) -> None:
    """Lost answers or a hung invocation are retried, and still give one intact object."""
    data = hashlib.sha256(b"relay").digest() * (3 * 2**20 // 32) + b"tail-bytes"
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / "disk.raw"
    path.write_bytes(data)
    sources = SOURCES[:2]
    async with Simulator(seed=seed, profile=profile, time_scale=1000.0) as sim:
        endpoints = Endpoints.from_dict(sim.endpoints)
        credentials = CredentialSource(endpoints)
        fc = FcApi(endpoints, credentials, account_id=sim.account_id)
        # Set-up, not under test: the role straight into the emulator, past its faults.
        role = sim.ctx.models["ram"].ensure_role(
            "aliasync-relay", ("fc.aliyuncs.com",), ("AliyunOSSFullAccess",)
        )
        async with OssApi(endpoints, credentials) as oss:
            urls = []
            for region in sources:
                await oss.create_bucket(region, f"aliasync-src-{region}")
                await oss.upload_file(region, f"aliasync-src-{region}", PREFIX + "d.raw", path)
                urls.append(
                    await oss.presign_get(region, f"aliasync-src-{region}", PREFIX + "d.raw")
                )
            await oss.create_bucket(TARGET, "aliasync-dst")
            await fc.create_function(
                TARGET, FUNCTION, code_zip=relay_zip(), handler=HANDLER, timeout=300,
                memory_mb=256, role_arn=role.arn,
            )  # fmt: skip
            event = relay_event(
                sources=urls, size=len(data), sha256=digest,
                host=f"aliasync-dst.{endpoints.region(TARGET, sim.account_id).oss_internal}",
                bucket="aliasync-dst", key=PREFIX + "d.raw", region=TARGET, key_prefix=PREFIX,
                protocol=endpoints.protocol, part_size=256 * KiB, parallel=3,
            )  # fmt: skip
            answer = json.loads(await fc.invoke(TARGET, FUNCTION, event, timeout=300))
            assert answer["ok"] and answer["sha256"] == digest
            info = sim.ctx.models["oss"].object_info(TARGET, "aliasync-dst", PREFIX + "d.raw")
            assert info.sha256 == digest
            seen = {f"{r.fault}:{r.action}" for r in sim.calls.records if r.region == TARGET}
            seen |= {f"{f.kind}:{f.action}" for f in sim.ctx.faults.injected}
            assert evidence in seen
            await _clean_up(oss, fc, endpoints, sim, sources)  # aborts lost creates' orphans
            await fc.delete_function(TARGET, FUNCTION)
        assert not sim.has_leaks()
