"""The tea SDK's calls reuse connections inside a Cloud, and behave as before everywhere else.

Official clients only, over real loopback sockets against the emulator (and, for HTTPS, a small
TLS server): connections are counted where they are accepted, errors where aliasync maps them.
"""

from __future__ import annotations

import datetime
import gc
import socket
import ssl
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_tea_openapi.models import Config
from darabonba.runtime import RuntimeOptions

from aliasync._exceptions import AliasyncError, TransientCloudError
from aliasync.cloud._cloud import Cloud
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._transport import boundary
from aliasync.sim import PROFILES, FaultRule, Simulator
from tests.clients import ecs_client, fc_client

pytestmark = pytest.mark.anyio

CALLS = 50


async def _open(sim: Simulator) -> Cloud:
    return await Cloud.open(Endpoints.from_dict(sim.endpoints))


async def _new_connections(sim: Simulator, calls: Callable[[], Awaitable[object]]) -> int:
    before = sim.connections_accepted
    await calls()
    return sim.connections_accepted - before


def _stock_calls(sim: Simulator, n: int = CALLS) -> Callable[[], Awaitable[None]]:
    """``n`` DescribeRegions through an official ECS client that aliasync did not build."""
    client = ecs_client(sim, "cn-hangzhou")

    async def calls() -> None:
        for _ in range(n):
            await client.describe_regions_async(ecs_models.DescribeRegionsRequest())

    return calls


def _cloud_calls(cloud: Cloud, n: int = CALLS) -> Callable[[], Awaitable[None]]:
    async def calls() -> None:
        for _ in range(n):
            assert "cn-hangzhou" in await cloud.ecs("cn-hangzhou").describe_regions()

    return calls


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    """Every aiohttp session made while the test runs (by aliasync, darabonba or anyone),
    recorded as it is made: sessions other tests left open are not counted."""
    made: list[aiohttp.ClientSession] = []
    make = aiohttp.ClientSession.__init__

    def recording(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        make(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", recording)
    return made


def _still_open(sessions: list[aiohttp.ClientSession]) -> list[aiohttp.ClientSession]:
    return [session for session in sessions if not session.closed]


async def test_calls_through_a_cloud_reuse_one_connection(sim: Simulator) -> None:
    """50 sequential ECS calls through a Cloud use at most 2 connections; stock ones use 50."""
    cloud = await _open(sim)
    try:
        assert await _new_connections(sim, _cloud_calls(cloud)) <= 2
    finally:
        await cloud.aclose()
    assert await _new_connections(sim, _stock_calls(sim)) >= CALLS - 2


async def test_a_stock_client_outside_the_cloud_task_keeps_its_own_path(sim: Simulator) -> None:
    """While a Cloud is open in another task, a foreign tea client still connects per call."""
    opened, done = anyio.Event(), anyio.Event()
    pooled: list[int] = []

    async def aliasync_side() -> None:
        cloud = await _open(sim)
        try:
            pooled.append(await _new_connections(sim, _cloud_calls(cloud, 20)))
            opened.set()
            await done.wait()
        finally:
            await cloud.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(aliasync_side)
        await opened.wait()
        assert await _new_connections(sim, _stock_calls(sim, 20)) >= 18
        done.set()
    assert pooled == [1]


async def test_tasks_started_inside_a_cloud_share_its_session(sim: Simulator) -> None:
    """Task-group tasks started after Cloud.open inherit the session: 5 workers, 5 connections."""
    cloud = await _open(sim)
    try:

        async def workers() -> None:
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(_cloud_calls(cloud, 10))

        assert await _new_connections(sim, workers) <= 5
        fc = cloud.fc  # FC (ROA, JSON bodies) goes the same way
        assert await fc.probe("cn-hangzhou") is True
        assert await fc.probe("cn-guangzhou") is False  # no FC there: connection dropped
    finally:
        await cloud.aclose()


async def test_two_clouds_and_a_close_from_another_task(
    sim: Simulator, sessions: list[aiohttp.ClientSession]
) -> None:
    """Nested Clouds, closed out of order and from another task: calls keep working."""
    first, second = await _open(sim), await _open(sim)
    try:
        assert await _new_connections(sim, _cloud_calls(first, 10)) <= 1
        async with anyio.create_task_group() as group:  # closed from a task of its own
            group.start_soon(second.aclose)
        # This task still sees the closed session; it falls back to the first Cloud's.
        assert await _new_connections(sim, _cloud_calls(second, 10)) <= 1
    finally:
        await first.aclose()
    # No open Cloud left: darabonba's own path, a connection per call, and still correct.
    assert await _new_connections(sim, _cloud_calls(first, 10)) >= 9
    assert len(sessions) >= 2 + 9  # the Clouds' two, darabonba's one per call
    assert _still_open(sessions) == []


async def test_aclose_closes_the_session_without_warnings(
    sim: Simulator, recwarn: pytest.WarningsRecorder, sessions: list[aiohttp.ClientSession]
) -> None:
    """After Cloud.aclose no aiohttp session is left open and nothing warns of one unclosed."""
    cloud = await _open(sim)
    await _cloud_calls(cloud, 3)()
    assert len(sessions) == 1 and _still_open(sessions) == sessions  # one, shared, open
    await cloud.aclose()
    await cloud.aclose()  # idempotent
    assert _still_open(sessions) == []
    del cloud, sessions[:]
    gc.collect()  # an unclosed session would warn as it is collected
    assert not [w for w in recwarn if "nclosed" in str(w.message)]


async def test_open_that_fails_leaves_no_session(
    sim: Simulator, sessions: list[aiohttp.ClientSession]
) -> None:
    """A Cloud.open whose STS call fails closes the session it had started."""
    endpoints = Endpoints.from_dict({**sim.endpoints, "sts": "sts.nowhere.example"})
    with pytest.raises(TransientCloudError), anyio.fail_after(30):
        await Cloud.open(endpoints)
    assert sessions and _still_open(sessions) == []


# -- errors map exactly as they did ------------------------------------------------------------


async def _failure(call: Callable[[], Awaitable[object]]) -> tuple[Any, ...]:
    """What aliasync makes of a failing SDK call, and whether it took the shared session."""
    with pytest.raises(AliasyncError) as caught, boundary("test", "Call"):
        await call()
    error = caught.value
    wrapper = error.__cause__
    inner = getattr(wrapper, "inner_exception", None)
    assert isinstance(inner, BaseException)
    frames = {f.name for f in traceback.extract_tb(inner.__traceback__)}
    # darabonba's RetryError wraps the aiohttp error it was raised for.
    kind = (type(error), error.code, type(wrapper), type(inner), type(inner.__context__))
    return kind, "_send" in frames


async def test_failures_map_to_the_same_errors_inside_and_outside(sim: Simulator) -> None:
    """Dropped connection, refused connection, read timeout: same aliasync errors either way."""
    # A port bound and never listened on refuses connections, and nobody else can take it
    # while the test holds it (a port closed after picking it could be anyone's by then).
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        port: int = closed_port.getsockname()[1]
        slow_profile = PROFILES["none"].with_(api_latency_median=0.5, api_latency_sigma=0.0)
        async with Simulator(profile=slow_profile, time_scale=1.0) as slow:
            ecs_request = ecs_models.DescribeRegionsRequest()
            scenarios: dict[str, Callable[[], Awaitable[object]]] = {
                # Guangzhou has no Function Compute: the emulator drops the connection.
                "dropped": lambda: fc_client(sim, "cn-guangzhou").list_functions_async(
                    fc_models.ListFunctionsRequest(limit=1)
                ),
                "refused": lambda: ecs_client(
                    sim, "cn-hangzhou", http_proxy=f"http://127.0.0.1:{port}"
                ).describe_regions_async(ecs_request),
                "read timeout": lambda: ecs_client(
                    slow, "cn-hangzhou"
                ).describe_regions_with_options_async(
                    ecs_request, RuntimeOptions(read_timeout=100)
                ),
            }
            outside = {name: await _failure(call) for name, call in scenarios.items()}
            cloud = await _open(sim)
            try:
                inside = {name: await _failure(call) for name, call in scenarios.items()}
            finally:
                await cloud.aclose()
    for name in scenarios:
        assert outside[name][0] == inside[name][0], name
        assert issubclass(inside[name][0][0], TransientCloudError), name
        assert (outside[name][1], inside[name][1]) == (False, True), name  # the path taken
    assert outside["refused"][0][4] is aiohttp.ClientProxyConnectionError  # refused, truly


async def test_injected_faults_are_still_retried(tmp_path: Path) -> None:
    """Half of DescribeRegions fail (500, 503, Throttling, drops): all succeed after retries."""
    rule = FaultRule("ecs:DescribeRegions:*", transient_rate=0.5)
    profile = PROFILES["none"].with_(rules=(rule,))
    async with Simulator(seed=5, profile=profile, time_scale=1000.0) as sim:
        cloud = await _open(sim)
        try:
            await _cloud_calls(cloud, 20)()
        finally:
            await cloud.aclose()
        records = [r for r in sim.calls.records if r.action == "DescribeRegions"]
    faults = [r.fault for r in records if r.fault]
    assert {"drop", "unavailable", "internal"} <= set(faults)
    assert len(records) == 20 + len(faults)
    # One connection for STS, one for ECS, and a new one after each dropped connection only.
    assert sim.connections_accepted <= 2 + faults.count("drop")


# -- HTTPS: the CA option, one TLS connection, one SSL context -------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@asynccontextmanager
async def _tls_ecs(directory: Path) -> AsyncIterator[tuple[int, Path, list[object]]]:
    """A TLS server answering DescribeRegions; yields its port, its CA file, its connections."""
    cert, key = _self_signed(directory)
    seen: list[object] = []

    async def describe_regions(request: web.Request) -> web.Response:
        if request.transport not in seen:
            seen.append(request.transport)
        return web.json_response({"RequestId": "r-1", "Regions": {"Region": [{"RegionId": "x"}]}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", describe_regions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield runner.addresses[0][1], cert, seen
    finally:
        await runner.cleanup()


async def test_https_honours_ca_and_builds_one_ssl_context(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTPS with a private CA: one TLS connection and one SSL context for 20 calls."""
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    created: list[object] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        created.append(args)
        return real(*args, **kwargs)

    async with _tls_ecs(tmp_path) as (port, ca, seen):

        def client(**extra: Any) -> EcsClient:
            return EcsClient(
                Config(
                    access_key_id="LTAIexample",
                    access_key_secret="not-a-secret-at-all",
                    endpoint=f"localhost:{port}",
                    protocol="https",
                    **extra,
                )
            )

        async def calls(c: EcsClient, n: int = 20) -> tuple[int, int]:
            connections, contexts = len(seen), len(created)
            for _ in range(n):
                await c.describe_regions_async(ecs_models.DescribeRegionsRequest())
            return len(seen) - connections, len(created) - contexts

        untrusted = lambda: client().describe_regions_async(  # noqa: E731
            ecs_models.DescribeRegionsRequest()
        )
        ignore = RuntimeOptions(ignore_ssl=True)
        monkeypatch.setattr(ssl, "create_default_context", counting)
        stock = await calls(client(ca=str(ca)))
        stock_failure = await _failure(untrusted)
        cloud = await _open(sim)
        try:
            shared = await calls(client(ca=str(ca)))
            shared_failure = await _failure(untrusted)
            insecure = await client().describe_regions_with_options_async(
                ecs_models.DescribeRegionsRequest(), ignore
            )
        finally:
            await cloud.aclose()
    assert stock == (20, 20)
    assert shared == (1, 1)
    assert stock_failure[0] == shared_failure[0]  # certificate not trusted, mapped the same
    assert issubclass(shared_failure[0][4], aiohttp.ClientConnectorCertificateError)
    assert insecure.body.regions.region[0].region_id == "x"
