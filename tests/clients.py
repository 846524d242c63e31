"""The official clients, configured to reach the emulator through its proxy port.

The emulator runs in the test's own event loop, so synchronous clients (boto3) must be called
from a worker thread: ``await anyio.to_thread.run_sync(lambda: s3.list_buckets())``.
"""

from __future__ import annotations

import inspect
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio.to_thread
import boto3
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_fc20230330.client import Client as FcClient
from alibabacloud_ram20150501.client import Client as RamClient
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi.models import Config
from botocore.config import Config as BotoConfig

from aliasync.sim import Simulator


def tea_config(sim: Simulator, endpoint: str, **overrides: Any) -> Config:
    """A tea-openapi Config that sends everything through the emulator."""
    options: dict[str, Any] = {
        "access_key_id": sim.access_key_id,
        "access_key_secret": sim.access_key_secret,
        "endpoint": endpoint,
        "protocol": "http",
        "http_proxy": sim.proxy_url,
        "read_timeout": 60000,
        "connect_timeout": 10000,
    }
    options.update(overrides)
    return Config(**options)


def ecs_client(sim: Simulator, region: str | None = None, **overrides: Any) -> EcsClient:
    endpoint = f"ecs.{region}.aliyuncs.com" if region else "ecs.aliyuncs.com"
    return EcsClient(tea_config(sim, endpoint, **overrides))


def fc_client(sim: Simulator, region: str, **overrides: Any) -> FcClient:
    return FcClient(tea_config(sim, f"{sim.account_id}.{region}.fc.aliyuncs.com", **overrides))


def sts_client(sim: Simulator, **overrides: Any) -> StsClient:
    return StsClient(tea_config(sim, "sts.aliyuncs.com", **overrides))


def ram_client(sim: Simulator, **overrides: Any) -> RamClient:
    return RamClient(tea_config(sim, "ram.aliyuncs.com", **overrides))


def s3_endpoint(region: str, internal: bool = False) -> str:
    return f"http://s3.oss-{region}{'-internal' if internal else ''}.aliyuncs.com"


def _boto_options(sim: Simulator, proxy: str = "") -> dict[str, Any]:
    return {
        "signature_version": "s3v4",
        "s3": {"addressing_style": "virtual"},
        "proxies": {"http": proxy or sim.proxy_url},
        # Plain bodies: OSS refuses aws-chunked uploads.
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "retries": {"max_attempts": 1},
    }


def boto3_s3(
    sim: Simulator,
    region: str,
    internal: bool = False,
    *,
    key: str | None = None,
    secret: str | None = None,
    token: str | None = None,
    proxy: str = "",
) -> Any:
    """A synchronous boto3 S3 client for one region's OSS endpoint (``proxy``: another proxy
    URL, e.g. :func:`inside_proxy`)."""
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint(region, internal),
        region_name=region,
        aws_access_key_id=key or sim.access_key_id,
        aws_secret_access_key=secret or sim.access_key_secret,
        aws_session_token=token,
        config=BotoConfig(**_boto_options(sim, proxy)),
    )


@asynccontextmanager
async def aio_s3(
    sim: Simulator,
    region: str,
    internal: bool = False,
    *,
    secret: str | None = None,
    proxy: str = "",
) -> AsyncIterator[Any]:
    """An aiobotocore S3 client for one region's OSS endpoint (``proxy`` as for boto3_s3)."""
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=s3_endpoint(region, internal),
        region_name=region,
        aws_access_key_id=sim.access_key_id,
        aws_secret_access_key=secret or sim.access_key_secret,
        config=AioConfig(**_boto_options(sim, proxy)),
    ) as client:
        yield client


def inside_proxy(sim: Simulator, region: str) -> str:
    """The proxy URL a function running in ``region`` uses: requests through it come from
    inside the cloud there (internal endpoints answer them)."""
    host = sim.proxy_url.removeprefix("http://")
    return f"http://fc-{region}:x@{host}"


async def put_object(sim: Simulator, region: str, bucket: str, key: str, data: bytes) -> None:
    """Create ``bucket`` (if needed) in ``region`` and store ``data`` under ``key``.

    Uses the internal endpoint from inside the region (as a function there would), which
    works in every region with OSS, mainland China included.
    """
    s3 = boto3_s3(sim, region, internal=True, proxy=inside_proxy(sim, region))

    def work() -> None:
        with suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    await anyio.to_thread.run_sync(work)


def oss_endpoint(region: str, internal: bool = False) -> str:
    return f"http://oss-{region}{'-internal' if internal else ''}.aliyuncs.com"


# A key's lifetime is virtual time: 3600 s last 3.6 real seconds at 1000x, which a slow test
# can outlive. A year is still 8.8 hours at 1000x, beyond any test's timeout.
KEY_LIFETIME = 365 * 86400.0


def temporary_key(sim: Simulator, seconds: float = KEY_LIFETIME) -> Any:
    """An STS key the emulator issued (as a function's role gets), valid ``seconds``."""
    return sim.ctx.keys.issue_temporary("role/AliasyncRelayRole", sim.clock.now() + seconds)


def oss_v2_config(
    sim: Simulator, region: str, version: str, key: Any, proxy: str, internal: bool
) -> Any:
    import alibabacloud_oss_v2 as oss

    config = oss.config.load_default()
    token = getattr(key, "security_token", None)
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(
        key.access_key_id if key else sim.access_key_id,
        key.secret if key else sim.access_key_secret,
        token,
    )
    config.region = region
    config.endpoint = oss_endpoint(region, internal)
    config.signature_version = version
    config.retry_max_attempts = 1
    config.proxy_host = proxy or sim.proxy_url
    return config


@asynccontextmanager
async def oss_v2(
    sim: Simulator,
    region: str,
    *,
    version: str = "v4",
    key: Any = None,
    proxy: str = "",
    internal: bool = False,
) -> AsyncIterator[Any]:
    """An ``alibabacloud-oss-v2`` asyncio client for one region's native endpoint.

    ``key``: a temporary key (:func:`temporary_key`) instead of the account's; ``proxy``:
    another proxy URL (e.g. one naming a function's region, to stand inside the cloud).
    """
    import alibabacloud_oss_v2.aio as oss_aio

    config = oss_v2_config(sim, region, version, key, proxy, internal)
    async with oss_aio.AsyncClient(config) as client:
        yield client


def oss2_auth(sim: Simulator, version: str = "v4", key: Any = None) -> Any:
    """oss2 credentials: V1 or V4, long-lived or STS."""
    import oss2

    if key is not None:
        return oss2.StsAuth(key.access_key_id, key.secret, key.security_token, auth_version=version)
    if version == "v4":
        return oss2.AuthV4(sim.access_key_id, sim.access_key_secret)
    return oss2.Auth(sim.access_key_id, sim.access_key_secret)


def oss2_bucket(
    sim: Simulator, region: str, bucket: str, *, version: str = "v4", key: Any = None
) -> Any:
    """A synchronous oss2 Bucket on one region's native endpoint (call it from a thread)."""
    import oss2

    extra = {"region": region} if version == "v4" else {}
    return oss2.Bucket(
        oss2_auth(sim, version, key),
        oss_endpoint(region),
        bucket,
        proxies={"http": sim.proxy_url},
        **extra,
    )


def oss2_service(sim: Simulator, region: str, *, version: str = "v4", key: Any = None) -> Any:
    import oss2

    extra = {"region": region} if version == "v4" else {}
    return oss2.Service(
        oss2_auth(sim, version, key),
        oss_endpoint(region),
        proxies={"http": sim.proxy_url},
        **extra,
    )


# -- HTTPS, configured as users configure the OSS SDKs (README, "HTTPS: any client") ------


def oss_v2_credentials(sim: Simulator, signing: str) -> Any:
    """The environment's OSS key (``signing`` "v4", "v1"), or a new STS key ("v4-sts", ...)."""
    import alibabacloud_oss_v2 as oss

    if not signing.endswith("-sts"):
        return oss.credentials.EnvironmentVariableCredentialsProvider()
    key = temporary_key(sim)
    return oss.credentials.StaticCredentialsProvider(
        key.access_key_id, key.secret, key.security_token
    )


def oss_v2_https_config(sim: Simulator, signing: str, region: str) -> Any:
    """alibabacloud-oss-v2's defaults (the HTTPS endpoint of ``region``), one attempt a call."""
    import alibabacloud_oss_v2 as oss

    config = oss.config.load_default()
    config.credentials_provider = oss_v2_credentials(sim, signing)
    config.region = region
    config.signature_version = signing.split("-")[0]
    config.retry_max_attempts = 1
    return config


OssCall = Callable[[str, Any], Awaitable[Any]]


@asynccontextmanager
async def oss_v2_https(config: Any, kind: str, proxy: str = "") -> AsyncIterator[OssCall]:
    """``call(operation, request)`` on the sync client (in a worker thread) or the asyncio one.

    The sync client finds the proxy and the CA bundle in the environment; the asyncio one gets
    ``proxy_host``, and a session verifying with the default context. aiohttp built its own
    default context when first imported, before this test set ``SSL_CERT_FILE``; a process
    started with the variable, as a user's is, gets exactly this one. Call it with the
    environment of ``sim.client_env`` set.
    """
    import aiohttp
    import alibabacloud_oss_v2 as oss
    import alibabacloud_oss_v2.aio as oss_aio
    from alibabacloud_oss_v2.aio.transport import AioHttpClient

    if kind == "sync":
        if proxy:
            config.proxy_host = {"https": proxy}  # the sync client's proxy takes a dict
        client = oss.Client(config)

        async def call_sync(operation: str, request: Any) -> Any:
            return await anyio.to_thread.run_sync(lambda: getattr(client, operation)(request))

        yield call_sync
        return
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        config.http_client = AioHttpClient(
            session=session, proxy_host=proxy or os.environ["HTTPS_PROXY"]
        )
        async with oss_aio.AsyncClient(config) as client:

            async def call_async(operation: str, request: Any) -> Any:
                return await getattr(client, operation)(request)

            yield call_async


async def oss_v2_body(result: Any) -> bytes:
    """The body of a GetObject result (the sync client's reads in a worker thread too)."""
    if inspect.iscoroutinefunction(result.body.read):
        return bytes(await result.body.read())
    return bytes(await anyio.to_thread.run_sync(result.body.read))


def urlopen_https(sim: Simulator, url: str) -> tuple[int, bytes]:
    """Plain urllib over HTTPS through the proxy, trusting the emulator's CA bundle."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"https": sim.proxy_url}),
        urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=sim.ca_bundle_path)),
    )
    try:
        with opener.open(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
