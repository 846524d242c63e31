"""Benchmark 6: what HTTPS through the emulator's proxy costs against plain HTTP.

Outside clients keep their SDKs' HTTPS default (``aliasync sim --env-out``); aliasync's own
runs, tests and the other benchmarks stay on plain HTTP. Measured, each way, with the official
clients in a process of their own (the emulator in this one; no faults, time scale 10000):

* ``DescribeRegions`` through the tea ECS client: its sync path (requests; one pooled
  connection, so one tunnel and handshake for all calls) and its stock async path (a new
  session per call: a new connection, ``CONNECT``, TLS handshake and SSL context every call).
  Blocks of calls alternating HTTP and HTTPS; of the median block: client and emulator CPU
  per call, median latency.
* A 64 MiB object with boto3 (configured as OSS asks: SigV4, virtual hosts, checksums only
  when required): PutObject and GetObject, rounds alternating HTTP and HTTPS, median round:
  MB/s and CPU seconds per GB, client and emulator.

    .venv/bin/python -m benchmarks.run tls
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._harness import busy, cpu_samples, hosted

REGION = "ap-southeast-1"
BLOCKS = 5  # of calls, alternating HTTP and HTTPS; the median block counts
SYNC_CALLS = 200  # per block
ASYNC_CALLS = 40  # per block
SIZE = 64 * 2**20
ROUNDS = 5  # of transfers, alternating too; the median round counts
MEMORY = "/dev/shm" if Path("/dev/shm").is_dir() else None
ROOT = Path(__file__).resolve().parent.parent
Window = tuple[float, float]  # monotonic start and end, comparable across processes


async def run(workdir: Path) -> dict[str, Any]:
    import anyio

    with tempfile.TemporaryDirectory(dir=MEMORY) as memory:
        async with (
            hosted(workdir, profile="none", time_scale=10000.0, data_dir=Path(memory)) as host,
            cpu_samples(interval=0.02) as samples,
        ):
            out = workdir / "tls-child.json"
            command = [sys.executable, "-m", "benchmarks.tls", str(host.endpoints_file)]
            command += [str(host.sim.ca_bundle_path), str(out)]
            done = await anyio.run_process(command, check=False, cwd=ROOT)
            if done.returncode != 0:
                raise RuntimeError(done.stderr.decode(errors="replace")[-3000:])
            result: dict[str, Any] = json.loads(out.read_text())
            certificates = host.sim._server.certificates
            result["tunnels_opened"] = host.sim.tunnels_opened
            result["certificates_issued"] = certificates.issued if certificates else 0
    for name, blocks in result["calls"].items():
        for block in blocks:
            used = _emulator_cpu(samples, block.pop("window"))
            block["emulator_cpu_ms"] = used * 1000 / block["calls"]
        result["calls"][name] = _median(blocks) | {"calls": sum(b["calls"] for b in blocks)}
    for scheme, rounds in result["transfer"].items():
        for row in rounds:
            for op in ("put", "get"):
                used = _emulator_cpu(samples, row.pop(f"{op}_window"))
                row[f"{op}_emulator_cpu_s_per_gb"] = used / (SIZE / 1e9)
        result["transfer"][scheme] = _median(rounds)
    return result


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def _emulator_cpu(samples: list[Any], window: Window) -> float:
    start, end = window
    return busy(samples, start, end) * (end - start)


# -- the client side: python -m benchmarks.tls ENDPOINTS CA_BUNDLE OUT ------------------------


def _cpu() -> float:
    return time.process_time()  # every thread of the process (boto3 and requests included)


def _block(call: Callable[[], Any], calls: int) -> dict[str, Any]:
    walls = []
    used, start = _cpu(), time.monotonic()
    for _ in range(calls):
        began = time.perf_counter()
        call()
        walls.append(time.perf_counter() - began)
    end = time.monotonic()
    return {
        "calls": calls,
        "wall_ms": statistics.median(walls) * 1000,
        "cpu_ms": (_cpu() - used) * 1000 / calls,
        "window": (start, end),
    }


def _run_async(client: Any, request: Any) -> Any:
    import asyncio

    return asyncio.run(client.describe_regions_async(request))


def _transfer(s3: Any, key: str, data: bytes) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for op in ("put", "get"):
        used, start = _cpu(), time.monotonic()
        if op == "put":
            s3.put_object(Bucket="bench-tls", Key=key, Body=data)
        else:
            assert len(s3.get_object(Bucket="bench-tls", Key=key)["Body"].read()) == len(data)
        end = time.monotonic()
        row[f"{op}_mb_s"] = len(data) / 1e6 / (end - start)
        row[f"{op}_cpu_s_per_gb"] = (_cpu() - used) / (len(data) / 1e9)
        row[f"{op}_window"] = (start, end)
    return row


def _client_side(endpoints_file: str, bundle: str) -> dict[str, Any]:
    import boto3
    from alibabacloud_ecs20140526 import models as ecs_models
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config
    from botocore.config import Config as BotoConfig

    doc = json.loads(Path(endpoints_file).read_text())
    proxy, keys = doc["proxy"], doc["credentials"]
    request = ecs_models.DescribeRegionsRequest()
    variants: dict[str, tuple[Callable[[], Any], int]] = {}
    clients: dict[str, Any] = {}
    for scheme in ("http", "https"):
        secure = scheme == "https"
        ecs = Client(
            Config(
                access_key_id=keys["access_key_id"],
                access_key_secret=keys["access_key_secret"],
                endpoint=f"ecs.{REGION}.aliyuncs.com",
                protocol=scheme,
                http_proxy=None if secure else proxy,
                https_proxy=proxy if secure else None,
                ca=bundle if secure else None,
            )
        )
        variants[f"tea sync, {scheme}"] = (partial(ecs.describe_regions, request), SYNC_CALLS)
        variants[f"tea async (session per call), {scheme}"] = (
            partial(_run_async, ecs, request),
            ASYNC_CALLS,
        )
        clients[scheme] = boto3.client(
            "s3",
            endpoint_url=f"{scheme}://s3.oss-{REGION}.aliyuncs.com",
            region_name=REGION,
            aws_access_key_id=keys["access_key_id"],
            aws_secret_access_key=keys["access_key_secret"],
            verify=bundle if secure else None,
            config=BotoConfig(
                signature_version="s3v4",
                s3={"addressing_style": "virtual"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                proxies={scheme: proxy},
            ),
        )
    for call, _ in variants.values():  # warm up: connections, the host's certificate
        for _ in range(5):
            call()
    calls: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for _ in range(BLOCKS):
        for name, (call, count) in variants.items():
            calls[name].append(_block(call, count))
    data = os.urandom(SIZE)
    clients["http"].create_bucket(Bucket="bench-tls")
    transfer: dict[str, list[dict[str, Any]]] = {scheme: [] for scheme in clients}
    for _ in range(ROUNDS):
        for scheme, s3 in clients.items():
            transfer[scheme].append(_transfer(s3, scheme, data))
    for scheme, s3 in clients.items():
        s3.delete_object(Bucket="bench-tls", Key=scheme)
    clients["http"].delete_bucket(Bucket="bench-tls")
    return {"calls": calls, "transfer": transfer, "size": SIZE, "rounds": ROUNDS, "blocks": BLOCKS}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"DescribeRegions with the official ECS client, {result['blocks']} blocks alternating "
        "HTTP and HTTPS, median block; client CPU in its own process, emulator CPU sampled in "
        "the emulator's.",
        "",
        "| | calls | median latency (ms) | client CPU per call (ms) | emulator CPU per call (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in result["calls"].items():
        lines.append(
            f"| {name} | {row['calls']} | {row['wall_ms']:.2f} | {row['cpu_ms']:.2f} | "
            f"{row['emulator_cpu_ms']:.2f} |"
        )
    mib = result["size"] // 2**20
    lines += [
        "",
        f"A {mib} MiB object with boto3, median of {result['rounds']} rounds alternating HTTP "
        "and HTTPS.",
        "",
        "| | PutObject MB/s | GetObject MB/s | client CPU s/GB put, get | emulator CPU s/GB put, "
        "get |",
        "|---|---:|---:|---:|---:|",
    ]
    for scheme, row in result["transfer"].items():
        lines.append(
            f"| {scheme} | {row['put_mb_s']:.0f} | {row['get_mb_s']:.0f} | "
            f"{row['put_cpu_s_per_gb']:.2f}, {row['get_cpu_s_per_gb']:.2f} | "
            f"{row['put_emulator_cpu_s_per_gb']:.2f}, {row['get_emulator_cpu_s_per_gb']:.2f} |"
        )
    plain, tls = result["transfer"]["http"], result["transfer"]["https"]
    sync_http, sync_tls = result["calls"]["tea sync, http"], result["calls"]["tea sync, https"]
    lines += [
        "",
        "Over a kept connection TLS changes CPU per call by "
        f"{sync_tls['cpu_ms'] - sync_http['cpu_ms']:+.2f} ms (client) and "
        f"{sync_tls['emulator_cpu_ms'] - sync_http['emulator_cpu_ms']:+.2f} ms (emulator); "
        f"HTTPS moves {tls['put_mb_s'] / plain['put_mb_s']:.0%} (put) "
        f"and {tls['get_mb_s'] / plain['get_mb_s']:.0%} (get) of plain HTTP's MB/s. "
        f"{result['tunnels_opened']} tunnels, {result['certificates_issued']} certificates "
        "issued.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    endpoints_file, bundle, out = sys.argv[1:4]
    Path(out).write_text(json.dumps(_client_side(endpoints_file, bundle)))
