"""The importer side of a benchmark, in its own process (so its CPU and memory are its own).

    python -m benchmarks._child lib OUT.json ENDPOINTS.json IMAGE...   # import_images()
    python -m benchmarks._child cli OUT.json -- import --endpoints F IMAGE...  # the CLI
    python -m benchmarks._child calibrate OUT.json ENDPOINTS.json REGION TARGET IMAGE...
    python -m benchmarks._child throughput OUT.json ENDPOINTS.json FILE
    python -m benchmarks._child sdk OUT.json ENDPOINTS.json CALLS CONCURRENCY

Each writes OUT.json: its own CPU seconds and peak RSS, and what the mode measured. Times are
``time.monotonic()`` readings, which every process on the machine shares, so the parent can
turn them into the emulator's virtual time.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

STARTED = time.monotonic()
ROUNDS = 6  # throughput: rounds of uploads per client


def _usage() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    status = Path("/proc/self/status").read_text()
    hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return {
        "cpu_user": own.ru_utime,
        "cpu_system": own.ru_stime,
        "peak_rss_mb": int(hwm.split()[1]) / 1024,
    }


def _identity(path: str) -> tuple[int, str]:
    """Size and SHA-256 of a file, as the relay's event needs them."""
    from aliasync.pipeline._prepare import file_sha256

    return Path(path).stat().st_size, file_sha256(Path(path))


async def _lib(
    endpoints_file: str, copy_slots: int, public: bool, paths: list[str]
) -> dict[str, Any]:
    from aliasync import ImportOptions, import_images
    from aliasync.cloud._endpoints import Endpoints

    events: list[tuple[float, str, str, str | None, str]] = []
    endpoints = Endpoints.load(Path(endpoints_file))
    ready = time.monotonic()
    report = await import_images(
        paths,
        endpoints=endpoints,
        options=ImportOptions(name="bench", copy_concurrency=copy_slots, public=public),
        on_event=lambda e: events.append((time.monotonic(), e.region, e.stage, e.image, e.message)),
    )
    return {
        "ready": ready,
        "end": time.monotonic(),
        "events": events,
        "report": report.to_dict(),
        "run_id": report.run_id,
    }


def _cli(argv: list[str]) -> dict[str, Any]:
    from aliasync.cli._main import main

    ready = time.monotonic()
    code = main(argv)
    return {"ready": ready, "end": time.monotonic(), "exit_code": code}


async def _calibrate(
    endpoints_file: str, source: str, target: str, paths: list[str]
) -> dict[str, Any]:
    """Each image uploaded alone (best of 3), then relayed alone (warm function, best of 2)."""
    from aliasync.cloud._credentials import CredentialSource
    from aliasync.cloud._endpoints import Endpoints
    from aliasync.cloud._fc import FcApi
    from aliasync.cloud._oss import OssApi
    from aliasync.relay.package import HANDLER, relay_event, relay_zip

    endpoints = Endpoints.load(Path(endpoints_file))
    credentials = CredentialSource(endpoints)
    account = endpoints.account_id or "0"
    fc = FcApi(endpoints, credentials, account_id=account)
    upload: dict[str, float] = {}
    relay: dict[str, float] = {}
    async with OssApi(endpoints, credentials, account_id=account) as oss:
        await oss.create_bucket(source, "bench-src")
        await oss.create_bucket(target, "bench-dst")
        await fc.create_function(
            target,
            "bench-relay",
            code_zip=relay_zip(),
            handler=HANDLER,
            timeout=900,
            memory_mb=512,
            role_arn=f"acs:ram::{account}:role/aliasyncrelayrole",
        )
        internal = endpoints.region(target, account).oss_internal
        for path in paths:
            key = f"bench/{Path(path).name}"
            times = []
            for _ in range(3):
                start = time.monotonic()
                await oss.upload_file(source, "bench-src", key, path)
                times.append(time.monotonic() - start)
            upload[path] = min(times)
            size, digest = await anyio.to_thread.run_sync(_identity, path)
            url = await oss.presign_get(source, "bench-src", key)
            times = []
            for attempt in range(3):
                event = relay_event(
                    sources=[url],
                    size=size,
                    sha256=digest,
                    host=f"bench-dst.{internal}",
                    bucket="bench-dst",
                    key=f"bench/{attempt}/{Path(path).name}",
                    region=target,
                    key_prefix="bench/",
                    protocol=endpoints.protocol,
                )
                start = time.monotonic()
                await fc.invoke(target, "bench-relay", event, timeout=900)
                times.append(time.monotonic() - start)
            relay[path] = min(times[1:])  # the first one was the cold start
        await _empty_inside(fc, endpoints, account, target, "bench-dst")
        await fc.delete_function(target, "bench-relay")
        await oss.delete_bucket(source, "bench-src")
        await oss.delete_bucket(target, "bench-dst")
    return {"upload": upload, "relay": relay}


async def _empty_inside(fc: Any, endpoints: Any, account: str, target: str, bucket: str) -> None:
    """The relay's cleanup mode: a mainland bucket is emptied from inside its region."""
    from aliasync.relay.package import cleanup_event

    internal = endpoints.region(target, account).oss_native_internal
    event = cleanup_event(
        host=f"{bucket}.{internal}", bucket=bucket, region=target,
        protocol=endpoints.protocol, bucket_prefix="bench-",
    )  # fmt: skip
    await fc.invoke(target, "bench-relay", event, timeout=900)


def _boto3_client(endpoints_file: str, region: str) -> Any:
    """A boto3 S3 client for the region's OSS endpoint, configured as tests/clients.py does."""
    import boto3
    from botocore.config import Config

    from aliasync.cloud._endpoints import Endpoints

    endpoints = Endpoints.load(Path(endpoints_file))
    host = endpoints.region(region, endpoints.account_id or "0").oss_public
    return boto3.client(
        "s3",
        endpoint_url=endpoints.url(host),
        region_name=region,
        aws_access_key_id=endpoints.access_key_id,
        aws_secret_access_key=endpoints.access_key_secret,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "virtual"},
            proxies={"http": endpoints.proxy or ""},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
        ),
    )


async def _throughput(endpoints_file: str, path: str) -> dict[str, Any]:
    """aliasync's and boto3's uploads of one file, alternated; then the relay of it."""
    from aliasync.cloud._credentials import CredentialSource
    from aliasync.cloud._endpoints import Endpoints
    from aliasync.cloud._fc import FcApi
    from aliasync.cloud._oss import OssApi
    from aliasync.relay.package import HANDLER, relay_event, relay_zip

    endpoints = Endpoints.load(Path(endpoints_file))
    credentials = CredentialSource(endpoints)
    account = endpoints.account_id or "0"
    size, digest = await anyio.to_thread.run_sync(_identity, path)
    sources = ("ap-southeast-1", "cn-hongkong", "eu-central-1")
    result: dict[str, Any] = {
        "bytes": size,
        "aliasync": [],
        "boto3": [],
        "aliasync-10": [],
        "relay": {},
    }

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return own.ru_utime + own.ru_stime

    async with OssApi(endpoints, credentials, account_id=account) as oss:
        for region in sources:
            await oss.create_bucket(region, f"bench-{region}")
        boto3 = _boto3_client(endpoints_file, sources[0])
        for attempt in range(ROUNDS):
            order = ["aliasync", "boto3", "aliasync-10"]
            for client in order[attempt % 3 :] + order[: attempt % 3]:  # no one always first
                key = f"bench/{client}-{attempt % 2}"
                start, used = time.monotonic(), cpu()
                if client.startswith("aliasync"):
                    parallel = 10 if client == "aliasync-10" else 4  # 4: the importer's setting
                    await oss.upload_file(
                        sources[0], f"bench-{sources[0]}", key, path, parallel=parallel
                    )
                else:
                    # The managed transfer: multipart, 10 threads, 8 MiB parts (its defaults).
                    await anyio.to_thread.run_sync(
                        boto3.upload_file, path, f"bench-{sources[0]}", key
                    )
                result[client].append((start, time.monotonic() - start, cpu() - used))
        urls = []
        for region in sources:
            if region != sources[0]:
                await oss.upload_file(region, f"bench-{region}", "bench/aliasync-0", path)
            urls.append(await oss.presign_get(region, f"bench-{region}", "bench/aliasync-0"))
        target = "cn-beijing"
        await oss.create_bucket(target, "bench-dst")
        fc = FcApi(endpoints, credentials, account_id=account)
        await fc.create_function(
            target,
            "bench-relay",
            code_zip=relay_zip(),
            handler=HANDLER,
            timeout=900,
            memory_mb=512,
            role_arn=f"acs:ram::{account}:role/aliasyncrelayrole",
        )
        internal = endpoints.region(target, account).oss_internal
        for label, chosen in (("1 source", urls[:1]), ("3 sources", urls)):
            event = relay_event(
                sources=chosen,
                size=size,
                sha256=digest,
                host=f"bench-dst.{internal}",
                bucket="bench-dst",
                key=f"bench/{label[0]}",
                region=target,
                key_prefix="bench/",
                protocol=endpoints.protocol,
            )
            start = time.monotonic()
            await fc.invoke(target, "bench-relay", event, timeout=900)
            result["relay"][label] = (start, time.monotonic() - start)
        await _empty_inside(fc, endpoints, account, target, "bench-dst")
        await fc.delete_function(target, "bench-relay")
        for region in sources:
            await oss.delete_bucket(region, f"bench-{region}")
        await oss.delete_bucket(target, "bench-dst")
    return result


async def _sdk(endpoints_file: str, calls: int, concurrency: int) -> dict[str, Any]:
    """Per-call wall time and CPU of DescribeRegions: stock SDK, aliasync's shared session
    (:mod:`aliasync.cloud._teasession`, as shipped), raw aiohttp."""
    import ssl
    import statistics

    import aiohttp
    import certifi
    import darabonba.core
    from alibabacloud_ecs20140526 import models as ecs_models
    from alibabacloud_ecs20140526.client import Client

    from aliasync.cloud._credentials import CredentialSource, tea_config
    from aliasync.cloud._endpoints import Endpoints
    from aliasync.cloud._teasession import TeaSession

    endpoints = Endpoints.load(Path(endpoints_file))
    config = tea_config(
        endpoints, CredentialSource(endpoints), "ecs.cn-hangzhou.aliyuncs.com", region="cn-hangzhou"
    )
    client = Client(config)
    original = darabonba.core.DaraCore.async_do_action
    captured: list[tuple[Any, Any]] = []

    async def capture(request: Any, runtime_option: Any = None) -> Any:
        captured.append((request, runtime_option))
        return await original(request, runtime_option)

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return own.ru_utime + own.ru_stime

    async def measure(call: Any) -> dict[str, float]:
        for _ in range(10):  # warm up
            await call()
        walls: list[float] = []

        async def timed() -> None:
            start = time.perf_counter()
            await call()
            walls.append(time.perf_counter() - start)

        used, start = cpu(), time.perf_counter()
        for _ in range(calls):
            await timed()
        sequential = {
            "wall_ms": statistics.median(walls) * 1000,
            "cpu_ms": (cpu() - used) * 1000 / calls,
        }
        walls.clear()
        used, start = cpu(), time.perf_counter()
        async with anyio.create_task_group() as group:
            limiter = anyio.CapacityLimiter(concurrency)

            async def limited() -> None:
                async with limiter:
                    await timed()

            for _ in range(calls):
                group.start_soon(limited)
        elapsed = time.perf_counter() - start
        return sequential | {
            "concurrent_calls_per_s": calls / elapsed,
            "concurrent_cpu_ms": (cpu() - used) * 1000 / calls,
        }

    async def sdk_call() -> None:
        await client.describe_regions_async(ecs_models.DescribeRegionsRequest())

    result: dict[str, Any] = {"calls": calls, "concurrency": concurrency}
    # Stock first, before aliasync's replacement is even installed.
    result["stock SDK (session per call)"] = await measure(sdk_call)
    tea = TeaSession()
    tea.activate()  # what Cloud.open does: this task and the tasks it starts share a session
    try:
        result["SDK, one shared session"] = await measure(sdk_call)
        https: dict[str, Any] = {}  # the runtime options a default HTTPS client passes
        start = time.perf_counter()
        tea.ssl_context(https, True)  # built on the session's first HTTPS call, and only then
        result["tls_context_first_ms"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        for _ in range(1000):  # what every later HTTPS call pays: a lookup
            tea.ssl_context(https, True)
        result["tls_context_shared_us"] = (time.perf_counter() - start) * 1e6 / 1000
    finally:
        await tea.aclose()
    routed = darabonba.core.DaraCore.__dict__["async_do_action"]
    darabonba.core.DaraCore.async_do_action = staticmethod(capture)  # type: ignore[method-assign]
    try:
        await sdk_call()  # one signed request to replay (the emulator does not check nonces)
    finally:
        darabonba.core.DaraCore.async_do_action = routed  # type: ignore[method-assign]
    request, runtime = captured[0]
    url, body = darabonba.core.DaraCore.compose_url(request), request.body or b""
    async with aiohttp.ClientSession() as session:

        async def raw_call() -> None:
            async with session.request(
                request.method,
                url,
                data=body,
                headers=request.headers,
                proxy=runtime.get("httpProxy"),
            ) as response:
                await response.read()
                assert response.status == 200, response.status

        result["raw aiohttp, one session"] = await measure(raw_call)
    start = time.perf_counter()
    for _ in range(50):  # what the SDK does per HTTPS call before connecting
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.load_verify_locations(certifi.where())
    result["tls_context_ms"] = (time.perf_counter() - start) * 1000 / 50
    return result


def main(argv: list[str]) -> None:
    mode, out, *rest = argv
    if mode == "lib":
        result = anyio.run(_lib, rest[0], int(rest[1]), rest[2] == "public", rest[3:])
    elif mode == "cli":
        result = _cli(rest[1:] if rest[:1] == ["--"] else rest)
    elif mode == "calibrate":
        result = anyio.run(_calibrate, rest[0], rest[1], rest[2], rest[3:])
    elif mode == "sdk":
        result = anyio.run(_sdk, rest[0], int(rest[1]), int(rest[2]))
    elif mode == "throughput":
        result = anyio.run(_throughput, rest[0], rest[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result.update(started=STARTED, **_usage())
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
