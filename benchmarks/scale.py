"""Benchmark 3: the importer's CPU time and peak memory, as regions and image size grow.

The CLI (``python -m aliasync import --endpoints FILE``) in its own process against an emulator
in this one (no faults, time scale 1000): the default map and a 500-region map with 4 images,
then three regions (direct, relay, copy) with an 8 MiB and a 4 GiB sparse image, and the
default map with one 2 MiB and one 64 MiB image. CPU seconds and peak RSS (VmHWM) are the
importer process's own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aliasync.sim import RegionMap
from benchmarks._harness import child, four_images, hosted, sparse_bios_image

TIME_SCALE = 1000.0
THREE = ("ap-southeast-1", "cn-beijing", "cn-zhangjiakou")  # direct, relay, copy
RSS_TARGET_MB = 200.0


def big_map(count: int = 500) -> RegionMap:
    """The default map plus synthetic regions up to ``count`` (a mix of every kind)."""
    regions = list(RegionMap.load())
    extra = [r for r in RegionMap.synthetic(count) if RegionMap.load().get(r.id) is None]
    return RegionMap(regions + extra[: count - len(regions)])


async def _cli(
    workdir: Path, regions: RegionMap | None, paths: list[Path], only: tuple[str, ...] = ()
) -> dict[str, Any]:
    async with hosted(workdir, profile="none", time_scale=TIME_SCALE, regions=regions) as host:
        picked = [arg for region in only for arg in ("-r", region)]
        start = time.monotonic()
        got = await child(
            workdir,
            "cli",
            "--",
            "import",
            "--endpoints",
            host.endpoints_file,
            "-n",
            "bench",
            "--json",
            *picked,
            *paths,
        )
        region_count = len(only) or len(host.sim.ctx.regions)
        return {
            "regions": region_count,
            "images": len(paths),
            "exit_code": got["exit_code"],
            "wall_s": time.monotonic() - start,
            "cpu_s": got["cpu_user"] + got["cpu_system"],
            "peak_rss_mb": got["peak_rss_mb"],
            "calls": len(host.sim.calls.records),
            "cpu_ms_per_pair": (got["cpu_user"] + got["cpu_system"])
            * 1000
            / (region_count * len(paths)),
            "leaks": {k: len(v) for k, v in host.sim.leaks().items() if v},
        }


async def run(workdir: Path) -> dict[str, Any]:
    paths = four_images(workdir)
    image = {
        size: sparse_bios_image(workdir / f"sparse-{size >> 20}MiB.img", size)
        for size in (2 * 2**20, 8 * 2**20, 64 * 2**20, 4 * 2**30)
    }
    results = {
        "default map, 4 images": await _cli(workdir, None, paths),
        "500 regions, 4 images": await _cli(workdir, big_map(500), paths),
        "3 regions, 8 MiB image": await _cli(workdir, None, [image[8 * 2**20]], THREE),
        "3 regions, 4 GiB sparse image": await _cli(workdir, None, [image[4 * 2**30]], THREE),
        "default map, 2 MiB image": await _cli(workdir, None, [image[2 * 2**20]]),
        "default map, 64 MiB sparse image": await _cli(workdir, None, [image[64 * 2**20]]),
    }
    for path in image.values():
        path.unlink()
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| run | regions x images | exit | wall s | importer CPU s | CPU ms per (region, image) "
        "| API calls | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {r['regions']} x {r['images']} | {r['exit_code']} | {r['wall_s']:.0f} | "
            f"{r['cpu_s']:.1f} | {r['cpu_ms_per_pair']:.0f} | {r['calls']} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    small, big = results["default map, 4 images"], results["500 regions, 4 images"]
    few = results["3 regions, 8 MiB image"]
    lines += [
        "",
        f"CPU per (region, image): {big['cpu_ms_per_pair']:.0f} ms at 500 regions vs "
        f"{small['cpu_ms_per_pair']:.0f} ms at 30 (x{linearity(results):.2f}: linear). Peak RSS "
        f"per region beyond the 3-region run: {rss_per_region(small, few):.1f} MB at 30 regions, "
        f"{rss_per_region(big, few):.1f} MB at 500.",
    ]
    return "\n".join(lines)


def linearity(results: dict[str, Any]) -> float:
    """CPU per (region, image) at 500 regions over that at the default map (1.0: linear)."""
    big, small = results["500 regions, 4 images"], results["default map, 4 images"]
    return float(big["cpu_ms_per_pair"] / small["cpu_ms_per_pair"])


def rss_per_region(run: dict[str, Any], base: dict[str, Any]) -> float:
    return float((run["peak_rss_mb"] - base["peak_rss_mb"]) / (run["regions"] - base["regions"]))
