"""OssApi uploads under one buffer budget, against the emulator over real loopback sockets."""

from __future__ import annotations

import hashlib
import os
from functools import partial
from pathlib import Path

import anyio
import pytest

from aliasync._exceptions import PermanentCloudError, TransientCloudError
from aliasync.cloud._credentials import CredentialSource
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._oss import OssApi
from aliasync.cloud._oss_upload import part_size_for
from aliasync.cloud._upload_memory import UploadBudget
from aliasync.sim import FaultRule, Simulator, profile

# A lost or leaked lease shows as a hang: fail fast instead.
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

MiB = 2**20
KiB = 2**10
# Regions whose public endpoint takes data (mainland China's refuses it).
REGIONS = (
    "ap-southeast-1", "ap-northeast-1", "us-west-1", "eu-central-1", "ap-southeast-3", "us-east-1",
)  # fmt: skip


def _oss(sim: Simulator, budget: int) -> OssApi:
    endpoints = Endpoints.from_dict(sim.endpoints)
    return OssApi(endpoints, CredentialSource(endpoints), upload_buffer_bytes=budget)


def _write(path: Path, size: int, seed: int) -> str:
    """``size`` bytes, different in every KiB; return their sha256."""
    data = b"".join(
        hashlib.sha256(f"{seed}:{n}".encode()).digest() * (KiB // 32)
        for n in range(-(-size // KiB))
    )[:size]
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _stored(sim: Simulator, region: str, key: str) -> str | None:
    info = sim.ctx.models["oss"].object_info(region, f"aliasync-{region}", key)
    return None if info is None else str(info.sha256)


async def _buckets(oss: OssApi, regions: tuple[str, ...] = REGIONS) -> None:
    for region in regions:
        await oss.create_bucket(region, f"aliasync-{region}")


async def test_concurrent_multipart_uploads_stay_within_a_two_part_budget(
    sim: Simulator, tmp_path: Path
) -> None:
    """Six uploads of five parts each, two parts of budget: all land intact, never over budget."""
    path = tmp_path / "disk.raw"
    expected = _write(path, 4 * MiB + 300 * KiB, seed=1)
    async with _oss(sim, budget=2 * MiB) as oss:
        await _buckets(oss)
        digests: dict[str, str] = {}

        async def upload(region: str) -> None:
            digests[region] = await oss.upload_file(
                region, f"aliasync-{region}", "disk.raw", path, part_size=MiB
            )

        async with anyio.create_task_group() as group:
            for region in REGIONS:
                group.start_soon(upload, region)
        assert oss.upload_buffer_high_water == 2 * MiB  # saturated, never more
        assert oss.upload_buffer_in_use == 0
    assert digests == dict.fromkeys(REGIONS, expected)
    assert all(_stored(sim, region, "disk.raw") == expected for region in REGIONS)
    assert sim.calls.count("UploadPart") == 5 * len(REGIONS)
    assert sim.leaks()["multipart_uploads"] == []


async def test_parts_and_files_larger_than_the_budget_still_upload(
    sim: Simulator, tmp_path: Path
) -> None:
    """With 256 KiB of budget, 1 MiB parts and a 700 KiB single PUT go up, each alone and
    counted in full (what is held is what is counted)."""
    big, small = tmp_path / "big.raw", tmp_path / "small.raw"
    big_sha, small_sha = _write(big, 2 * MiB + 5, seed=2), _write(small, 700 * KiB, seed=3)
    region = REGIONS[0]
    async with _oss(sim, budget=256 * KiB) as oss:
        await _buckets(oss, (region,))
        bucket = f"aliasync-{region}"
        async with anyio.create_task_group() as group:
            group.start_soon(partial(oss.upload_file, region, bucket, "big", big, part_size=MiB))
            group.start_soon(oss.upload_file, region, bucket, "small", small)
        assert oss.upload_buffer_high_water == MiB  # one part at a time, counted whole
        assert oss.upload_buffer_in_use == 0
    assert (_stored(sim, region, "big"), _stored(sim, region, "small")) == (big_sha, small_sha)
    assert sim.calls.count("UploadPart") == 3


async def test_concurrent_uploads_of_a_small_file_hold_one_copy(
    sim: Simulator, tmp_path: Path
) -> None:
    """Six regions PUT the same 3 MiB file at once; the budget only ever holds it once."""
    path = tmp_path / "disk.raw"
    expected = _write(path, 3 * MiB, seed=4)
    landed: list[int] = []
    async with _oss(sim, budget=64 * MiB) as oss:
        await _buckets(oss)
        async with anyio.create_task_group() as group:
            for region in REGIONS:
                group.start_soon(
                    partial(
                        oss.upload_file, region, f"aliasync-{region}", "disk.raw", path,
                        on_progress=landed.append,
                    )
                )  # fmt: skip
        assert oss.upload_buffer_high_water == 3 * MiB
        assert oss.upload_buffer_in_use == 0
    assert landed == [3 * MiB] * len(REGIONS)
    assert all(_stored(sim, region, "disk.raw") == expected for region in REGIONS)


async def test_failing_uploads_return_their_budget(tmp_path: Path) -> None:
    """Uploads failing for good in one region give all budget back; the others still land."""
    failing = REGIONS[0]
    rules = (
        FaultRule(f"oss:UploadPart:{failing}", transient_rate=1.0),
        FaultRule(f"oss:PutObject:{failing}", transient_rate=1.0),
    )
    big, small = tmp_path / "big.raw", tmp_path / "small.raw"
    big_sha, small_sha = _write(big, 3 * MiB, seed=5), _write(small, 500 * KiB, seed=6)
    async with Simulator(seed=0, profile=profile("none").with_(rules=rules)) as sim:
        async with _oss(sim, budget=2 * MiB) as oss:
            await _buckets(oss, REGIONS[:3])
            errors: dict[str, BaseException] = {}

            async def upload(region: str, key: str, path: Path) -> None:
                try:
                    await oss.upload_file(region, f"aliasync-{region}", key, path, part_size=MiB)
                except TransientCloudError as exc:
                    errors[f"{region}/{key}"] = exc

            async with anyio.create_task_group() as group:
                for region in REGIONS[:3]:
                    group.start_soon(upload, region, "big", big)
                    group.start_soon(upload, region, "small", small)
            assert sorted(errors) == [f"{failing}/big", f"{failing}/small"]
            assert oss.upload_buffer_in_use == 0
            assert oss.upload_buffer_high_water <= 2 * MiB
            # The whole budget can be taken again: one reservation of all of it succeeds.
            await oss.upload_file(REGIONS[1], f"aliasync-{REGIONS[1]}", "again", big)
            assert oss.upload_buffer_in_use == 0
        for region in REGIONS[1:3]:
            assert (_stored(sim, region, "big"), _stored(sim, region, "small")) == (
                big_sha,
                small_sha,
            )
        assert _stored(sim, failing, "big") is None and _stored(sim, failing, "small") is None
        assert sim.leaks()["multipart_uploads"] == []


async def test_retries_resend_the_held_part_without_more_budget(tmp_path: Path) -> None:
    """Lost UploadPart answers under a one-part budget: retries re-send, no deadlock, intact."""
    rules = (FaultRule("oss:UploadPart:*", lost_response_rate=0.5),)
    path = tmp_path / "disk.raw"
    expected = _write(path, 4 * MiB, seed=7)
    region = REGIONS[0]
    async with Simulator(seed=3, profile=profile("none").with_(rules=rules)) as sim:
        async with _oss(sim, budget=MiB) as oss:
            await _buckets(oss, (region,))
            with anyio.fail_after(60):
                digest = await oss.upload_file(
                    region, f"aliasync-{region}", "disk.raw", path, part_size=MiB
                )
            assert oss.upload_buffer_high_water == MiB
            assert oss.upload_buffer_in_use == 0
        lost = [r for r in sim.calls.records if r.action == "UploadPart" and r.fault == "lost"]
        assert lost, "the rule should have lost some UploadPart answers"
        assert digest == expected == _stored(sim, region, "disk.raw")


async def test_cancelled_uploads_return_their_budget(sim: Simulator, tmp_path: Path) -> None:
    """Cancelled mid-upload (parts in flight, readers queued): budget back, uploads aborted."""
    path = tmp_path / "disk.raw"
    expected = _write(path, 6 * MiB, seed=8)
    async with _oss(sim, budget=2 * MiB) as oss:
        await _buckets(oss)
        landed: list[int] = []
        async with anyio.create_task_group() as group:

            def first_part_landed(size: int) -> None:
                landed.append(size)
                group.cancel_scope.cancel()

            for region in REGIONS:
                group.start_soon(
                    partial(
                        oss.upload_file, region, f"aliasync-{region}", "disk.raw", path,
                        part_size=MiB, on_progress=first_part_landed,
                    )
                )  # fmt: skip
        assert group.cancel_scope.cancelled_caught and landed
        assert oss.upload_buffer_in_use == 0
        assert sim.leaks()["multipart_uploads"] == []
        assert all(_stored(sim, region, "disk.raw") is None for region in REGIONS)
        region = REGIONS[0]
        with anyio.fail_after(30):
            digest = await oss.upload_file(
                region, f"aliasync-{region}", "disk.raw", path, part_size=MiB
            )
        assert digest == expected == _stored(sim, region, "disk.raw")
        assert oss.upload_buffer_in_use == 0


@pytest.mark.parametrize("change", ["grow", "shrink"])
async def test_a_file_changing_size_mid_upload_fails_and_returns_its_budget(
    sim: Simulator, tmp_path: Path, change: str
) -> None:
    """A file growing or shrinking mid-upload: FileChanged, upload aborted, budget returned."""
    path = tmp_path / "disk.raw"
    _write(path, 3 * MiB, seed=9)
    region = REGIONS[0]

    def alter(_: int) -> None:
        if change == "grow":
            with path.open("ab") as f:
                f.write(b"x")
        else:
            os.truncate(path, 2 * MiB - 1)

    async with _oss(sim, budget=MiB) as oss:
        await _buckets(oss, (region,))
        with pytest.raises(PermanentCloudError) as caught:
            await oss.upload_file(
                region, f"aliasync-{region}", "disk.raw", path,
                part_size=MiB, parallel=1, on_progress=alter,
            )  # fmt: skip
        assert caught.value.code == "FileChanged"
        assert oss.upload_buffer_in_use == 0
    assert _stored(sim, region, "disk.raw") is None
    assert sim.leaks()["multipart_uploads"] == []


async def test_budget_grants_whole_reservations_in_arrival_order() -> None:
    """Waiters get whole grants in arrival order; an oversized one runs alone, counted whole."""
    budget = UploadBudget(10)
    first = await budget.reserve(6)
    order: list[str] = []

    async def take(name: str, size: int, hold: anyio.Event) -> None:
        lease = await budget.reserve(size)
        order.append(name)
        assert budget.in_use <= max(budget.total, size)  # alone when larger than the budget
        await hold.wait()
        lease.release()

    release = {name: anyio.Event() for name in ("big", "small", "huge")}
    async with anyio.create_task_group() as group:
        group.start_soon(take, "big", 8, release["big"])
        await anyio.wait_all_tasks_blocked()
        group.start_soon(take, "small", 2, release["small"])  # fits now, but queues behind big
        group.start_soon(take, "huge", 25, release["huge"])  # more than the whole budget
        await anyio.wait_all_tasks_blocked()
        assert order == [] and budget.in_use == 6
        first.release()
        first.release()  # a second release gives nothing back twice
        await anyio.wait_all_tasks_blocked()
        assert order == ["big", "small"] and budget.in_use == 10
        release["big"].set()
        release["small"].set()
        await anyio.wait_all_tasks_blocked()
        assert order == ["big", "small", "huge"] and budget.in_use == 25
        release["huge"].set()
    assert budget.in_use == 0 and budget.high_water == 25


async def test_budget_waiter_cancelled_at_the_head_lets_the_next_in() -> None:
    """A large waiter cancelled while queued gives way at once to a smaller one behind it."""
    budget = UploadBudget(10)
    held = await budget.reserve(5)
    got: list[int] = []

    async def take(size: int) -> None:
        lease = await budget.reserve(size)
        got.append(size)
        lease.release()

    async with anyio.create_task_group() as group:
        async with anyio.create_task_group() as big:
            big.start_soon(take, 8)
            await anyio.wait_all_tasks_blocked()
            group.start_soon(take, 4)
            await anyio.wait_all_tasks_blocked()
            assert got == []  # 4 would fit, but it queues behind 8
            big.cancel_scope.cancel()
        await anyio.wait_all_tasks_blocked()
    assert got == [4]
    held.release()
    assert budget.in_use == 0


def test_part_size_grows_with_the_image() -> None:
    """8 MiB parts up to 80,000 MiB; beyond, whole MiB parts that keep within 10,000 parts."""
    assert part_size_for(1) == part_size_for(10000 * 8 * MiB) == 8 * MiB
    largest = 2048 * 2**30  # ECS's largest DiskImageSize
    assert part_size_for(largest) == 210 * MiB
    for size in (10000 * 8 * MiB + 1, 3 * 2**40 // 2, largest):
        assert -(-size // part_size_for(size)) <= 10000
