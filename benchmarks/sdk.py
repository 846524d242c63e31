"""Benchmark 5: what the tea SDK's session-per-call async path costs, per call.

DescribeRegions through the official ECS client against the emulator (no faults, time scale
10000, so the modelled API latency is 8 µs), three ways: the stock SDK (a new aiohttp session
and connector, so a new TCP connection, for every call), the same SDK calls over aliasync's
shared session as shipped (:mod:`aliasync.cloud._teasession`, which every Cloud activates), and the
same signed request replayed with raw aiohttp over one session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks._harness import child, hosted

CALLS = 400
CONCURRENCY = 30
# Keys of the recorded results (benchmarks/run.py and results.json use them) ...
VARIANTS = ("stock SDK (session per call)", "SDK, one shared session", "raw aiohttp, one session")
# ... and the rows' labels.
LABELS = {"SDK, one shared session": "aliasync shared session (shipped)"}


async def run(workdir: Path) -> dict[str, Any]:
    async with hosted(workdir, profile="none", time_scale=10000.0) as host:
        return await child(workdir, "sdk", host.endpoints_file, str(CALLS), str(CONCURRENCY))


def markdown(result: dict[str, Any], calls_per_run: int | None = None) -> str:
    lines = [
        f"{result['calls']} DescribeRegions calls one after another, then {result['calls']} with "
        f"{result['concurrency']} in flight; client CPU measured in its own process (the "
        "emulator runs in another).",
        "",
        "| | median latency, sequential (ms) | client CPU per call (ms) | calls/s, "
        f"{result['concurrency']} in flight | client CPU per call, concurrent (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        v = result[variant]
        lines.append(
            f"| {LABELS.get(variant, variant)} | {v['wall_ms']:.2f} | {v['cpu_ms']:.2f} | "
            f"{v['concurrent_calls_per_s']:.0f} | {v['concurrent_cpu_ms']:.2f} |"
        )
    stock, shared = result[VARIANTS[0]], result[VARIANTS[1]]
    lines += [
        "",
        f"Session per call costs {stock['cpu_ms'] - shared['cpu_ms']:.2f} ms CPU and "
        f"{stock['wall_ms'] - shared['wall_ms']:.2f} ms latency per call over loopback HTTP. "
        f"Over HTTPS the SDK also builds an SSL context and loads the CA bundle per call: "
        f"{result['tls_context_ms']:.1f} ms CPU each (measured here), plus a TCP and TLS "
        "handshake (2 round trips more per call to a distant region).",
    ]
    if calls_per_run:
        extra = stock["cpu_ms"] - shared["cpu_ms"] + result["tls_context_ms"]
        lines[-1] += (
            f" At {calls_per_run} tea SDK calls per default-map run the stock SDK spends "
            f"~{calls_per_run * extra / 1000:.0f} s of importer CPU per run on it."
        )
    if "tls_context_shared_us" in result:
        lines[-1] += (
            " The shared session builds its SSL context once, on its first HTTPS call "
            f"({result['tls_context_first_ms']:.1f} ms), then looks it up "
            f"({result['tls_context_shared_us']:.2f} µs per call), and keeps its connections."
        )
    return "\n".join(lines)
