"""The official clients, configured to reach the emulator through its proxy port.

The emulator runs in the test's own event loop, so synchronous clients (boto3) must be called
from a worker thread: ``await anyio.to_thread.run_sync(lambda: s3.list_buckets())``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


def _boto_options(sim: Simulator) -> dict[str, Any]:
    return {
        "signature_version": "s3v4",
        "s3": {"addressing_style": "virtual"},
        "proxies": {"http": sim.proxy_url},
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
) -> Any:
    """A synchronous boto3 S3 client for one region's OSS endpoint."""
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint(region, internal),
        region_name=region,
        aws_access_key_id=key or sim.access_key_id,
        aws_secret_access_key=secret or sim.access_key_secret,
        aws_session_token=token,
        config=BotoConfig(**_boto_options(sim)),
    )


@asynccontextmanager
async def aio_s3(
    sim: Simulator, region: str, internal: bool = False, *, secret: str | None = None
) -> AsyncIterator[Any]:
    """An aiobotocore S3 client for one region's OSS endpoint."""
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=s3_endpoint(region, internal),
        region_name=region,
        aws_access_key_id=sim.access_key_id,
        aws_secret_access_key=secret or sim.access_key_secret,
        config=AioConfig(**_boto_options(sim)),
    ) as client:
        yield client


async def put_object(sim: Simulator, region: str, bucket: str, key: str, data: bytes) -> None:
    """Create ``bucket`` (if needed) in ``region`` and store ``data`` under ``key``.

    Uses the internal endpoint, which works in every region with OSS, mainland China included.
    """
    s3 = boto3_s3(sim, region, internal=True)

    def work() -> None:
        names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in names:
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    await anyio.to_thread.run_sync(work)
