"""Benchmark 4: upload throughput (aliasync's OssApi vs boto3's managed upload) and the relay.

One 256 MiB file of random bytes, to the same emulated OSS endpoint over loopback, six rounds
each, the clients taking turns in a rotating order (best round counts); the file and the stored
objects in memory (tmpfs). Then the relay function, run for real by the
emulator's Function Compute, copies the uploaded object into a mainland bucket from one and from
three source regions. No faults, time scale 1000 (the latency model adds ~0.1 ms per request).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._harness import busy, child, cpu_samples, data_file, hosted

SIZE = 256 * 2**20
TARGET = 1.0  # aliasync / boto3
MEMORY = "/dev/shm" if Path("/dev/shm").is_dir() else None


async def run(workdir: Path) -> dict[str, Any]:
    # In memory (tmpfs), source file and the emulator's objects: disk write-back would
    # otherwise slow every round a little more than the one before.
    with tempfile.TemporaryDirectory(dir=MEMORY) as memory:
        path = data_file(Path(memory) / "throughput.bin", SIZE)
        async with (
            hosted(workdir, profile="none", time_scale=1000.0, data_dir=Path(memory)) as host,
            cpu_samples() as samples,
        ):
            result = await child(workdir, "throughput", host.endpoints_file, path)
    mb = result["bytes"] / 1e6
    for client in ("aliasync", "boto3", "aliasync-10"):
        rounds = result[client]
        start, seconds, cpu = min(rounds, key=lambda r: r[1])
        result[f"{client}_mb_s"] = mb / seconds
        result[f"{client}_cpu_s_per_gb"] = cpu / (result["bytes"] / 1e9)
        result[f"{client}_rounds_mb_s"] = [mb / r[1] for r in rounds]
        result[f"{client}_emulator_busy"] = busy(samples, start, start + seconds)
    result["relay_mb_s"] = {label: mb / s for label, (_, s) in result["relay"].items()}
    result["relay_emulator_busy"] = {
        label: busy(samples, start, start + s) for label, (start, s) in result["relay"].items()
    }
    result["relay_worker_busy"] = {
        label: busy(samples, start, start + s, children=True)
        for label, (start, s) in result["relay"].items()
    }
    result["ratio"] = result["aliasync_mb_s"] / result["boto3_mb_s"]
    result["ratio_median"] = statistics.median(result["aliasync_rounds_mb_s"]) / statistics.median(
        result["boto3_rounds_mb_s"]
    )
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['bytes'] // 2**20} MiB of random bytes, emulator in another process, loopback.",
        "",
        "| | MB/s (best round) | all rounds MB/s | client CPU s per GB | emulator CPU (cores) "
        "| relay worker CPU (cores) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for client, label in (
        ("aliasync", "aliasync `OssApi.upload_file` (8 MiB parts, 4 in flight)"),
        ("boto3", "boto3 `upload_file` (managed transfer, 8 MiB parts, 10 threads)"),
        ("aliasync-10", "aliasync `OssApi.upload_file`, `parallel=10` (diagnostic)"),
    ):
        rounds = ", ".join(f"{x:.0f}" for x in result[f"{client}_rounds_mb_s"])
        lines.append(
            f"| {label} | {result[f'{client}_mb_s']:.0f} | {rounds} | "
            f"{result[f'{client}_cpu_s_per_gb']:.2f} | {result[f'{client}_emulator_busy']:.2f} | |"
        )
    for label, rate in result["relay_mb_s"].items():
        emulator = result["relay_emulator_busy"][label]
        worker = result["relay_worker_busy"][label]
        lines.append(
            f"| relay into cn-beijing, {label} | {rate:.0f} | | | {emulator:.2f} | {worker:.2f} |"
        )
    lines += [
        "",
        f"aliasync / boto3: best rounds **{result['ratio']:.2f}**, median rounds "
        f"**{result['ratio_median']:.2f}** (target ≥ {TARGET:.1f}).",
    ]
    return "\n".join(lines)
