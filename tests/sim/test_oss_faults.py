"""The seeded cross-region download fault: presigned GETs from another region's function cut."""

from __future__ import annotations

import os

import aiohttp
import pytest

from aliasync.sim import Simulator, profile
from tests.sim.test_oss import REGION, s3_client

pytestmark = pytest.mark.anyio

SIZE = 512 * 1024


async def _setup(sim: Simulator) -> tuple[str, str, bytes]:
    """A bucket with one object; presigned GET URLs for its public and internal endpoints."""
    data = os.urandom(SIZE)
    async with s3_client(sim, "aiobotocore") as s3:
        await s3("create_bucket", Bucket="source")
        await s3("put_object", Bucket="source", Key="disk.raw", Body=data)
        public = await s3.presign("get_object", Bucket="source", Key="disk.raw")
    async with s3_client(sim, "aiobotocore", internal=True) as s3:
        internal = await s3.presign("get_object", Bucket="source", Key="disk.raw")
    return public, internal, data


async def _download(sim: Simulator, url: str, origin: str | None) -> tuple[bool, bytes]:
    """GET through the proxy as a function in ``origin`` would: (completed, bytes received)."""
    # The emulator tells a function's traffic by its proxy credentials (user fc-<region>).
    # Sent as a plain header: over an http:// proxy it reaches the proxy with the request.
    headers = {"Proxy-Authorization": aiohttp.encode_basic_auth(f"fc-{origin}", "x")}
    received = bytearray()
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, proxy=sim.proxy_url, headers=headers if origin else None) as response,
    ):
        assert response.status == 200
        try:
            async for chunk in response.content.iter_any():
                received += chunk
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            return False, bytes(received)
    return True, bytes(received)


async def test_cross_region_presigned_download_is_cut() -> None:
    """At rate 1 a presigned public GET from another region sends headers, part, then drops."""
    faulty = profile("none").with_(download_failure_rate=1.0)
    async with Simulator(seed=1, profile=faulty) as sim:
        public, internal, data = await _setup(sim)
        completed, received = await _download(sim, public, "ap-southeast-1")
        assert not completed and 0 < len(received) < SIZE
        assert received == data[: len(received)]
        cuts = [f for f in sim.ctx.faults.injected if f.kind == "download_cut"]
        assert [(f.service, f.action, f.region) for f in cuts] == [("oss", "GetObject", REGION)]
        # Unaffected: same-region callers, the internal endpoint, and callers outside the cloud.
        for url, origin in ((public, REGION), (internal, REGION), (public, None)):
            assert await _download(sim, url, origin) == (True, data)
        assert sum(f.kind == "download_cut" for f in sim.ctx.faults.injected) == 1


async def test_download_faults_are_seeded_per_attempt() -> None:
    """The same seed cuts the same attempts; each retry draws afresh (so retries can succeed)."""
    outcomes = []
    for _ in range(2):
        async with Simulator(
            seed=7, profile=profile("none").with_(download_failure_rate=0.5)
        ) as sim:
            public, _, data = await _setup(sim)
            results = [await _download(sim, public, "ap-southeast-1") for _ in range(8)]
            assert all(r[1] == data for r in results if r[0])
            outcomes.append([r[0] for r in results])
    assert outcomes[0] == outcomes[1]
    assert True in outcomes[0] and False in outcomes[0]


async def test_no_download_faults_by_default_profile_none(sim: Simulator) -> None:
    """With profile 'none' cross-region presigned downloads always complete."""
    public, _, data = await _setup(sim)
    for _ in range(3):
        assert await _download(sim, public, "ap-southeast-1") == (True, data)
