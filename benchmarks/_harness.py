"""What the benchmarks share: the test images, the emulator host and the importer process."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from aliasync.sim import FaultProfile, RegionMap, Simulator
from tests.fatwriter import bios_disk, mbr_disk

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LOADERS = {"EFI/BOOT/BOOTX64.EFI": b"MZ" * 100, "EFI/BOOT/BOOTAA64.EFI": b"MZ" * 100}


def four_images(workdir: Path) -> list[Path]:
    """BIOS, UEFI x86_64, UEFI arm64 (the examples) and a multi-loader image built here."""
    multi = workdir / "ipxe-multi.usb"
    mbr_disk(multi, LOADERS, bits=12)
    names = ("ipxe-bios.usb", "ipxe-uefi.usb", "ipxe-arm64.usb")
    return [EXAMPLES / name for name in names] + [multi]


def sparse_bios_image(path: Path, size: int) -> Path:
    """A small BIOS disk stretched to ``size`` bytes with a hole (nothing written)."""
    bios_disk(path)
    os.truncate(path, size)
    return path


def data_file(path: Path, size: int) -> Path:
    """``size`` bytes of incompressible data, actually on disk."""
    with path.open("wb") as f:
        for _ in range(size // 2**20):
            f.write(os.urandom(2**20))
    return path


@dataclass
class Hosted:
    """An emulator serving from this process, with its endpoints file written."""

    sim: Simulator
    endpoints_file: Path
    origin: float  # time.monotonic() at virtual time 0

    def virtual(self, monotonic: float) -> float:
        """A ``time.monotonic()`` reading (of any process) as the emulator's virtual time."""
        return (monotonic - self.origin) * self.sim.clock.time_scale


@asynccontextmanager
async def hosted(
    workdir: Path,
    *,
    profile: str | FaultProfile = "none",
    time_scale: float = 100.0,
    regions: RegionMap | None = None,
    seed: int = 1,
    data_dir: Path | None = None,
) -> AsyncIterator[Hosted]:
    async with Simulator(
        seed=seed, profile=profile, time_scale=time_scale, regions=regions, data_dir=data_dir
    ) as sim:
        origin = time.monotonic() - sim.clock.now() / sim.clock.time_scale
        path = sim.write_endpoints(workdir / f"endpoints-{sim.proxy_url.rsplit(':', 1)[1]}.json")
        yield Hosted(sim, path, origin)


async def child(workdir: Path, mode: str, *args: str | Path) -> dict[str, Any]:
    """Run ``benchmarks._child`` in a fresh process; its result, with how it ended."""
    out = workdir / f"child-{mode}-{time.monotonic_ns()}.json"
    env = {**os.environ, "ALIASYNC_STATE_DIR": str(workdir / "state"), "PYTHONPATH": str(ROOT)}
    log = workdir / f"{out.stem}.log"
    spawned = time.monotonic()
    with log.open("wb") as sink:
        process = await anyio.run_process(
            [sys.executable, "-m", "benchmarks._child", mode, str(out), *map(str, args)],
            check=False,
            stdout=sink,
            stderr=sink,
            env=env,
            cwd=ROOT,
        )
    if process.returncode != 0 or not out.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"benchmark child {mode} failed ({process.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["spawned"] = spawned
    result["log"] = str(log)
    return result


def cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


Sample = tuple[float, float, float]  # monotonic, own CPU s, reaped children's CPU s


@asynccontextmanager
async def cpu_samples(interval: float = 0.1) -> AsyncIterator[list[Sample]]:
    """This process's (the emulator's) CPU and its finished children's (FC workers', and
    benchmark children's), every ``interval`` seconds."""
    samples: list[Sample] = []

    async def sample() -> None:
        while True:
            samples.append((time.monotonic(), cpu(), cpu(resource.RUSAGE_CHILDREN)))
            await anyio.sleep(interval)

    async with anyio.create_task_group() as group:
        group.start_soon(sample)
        yield samples
        group.cancel_scope.cancel()


def busy(samples: list[Sample], start: float, end: float, *, children: bool = False) -> float:
    """Cores this process used between two monotonic times (``children``: cores used by the
    child processes that ended in that window, such as FC workers, over its length)."""
    inside = [s for s in samples if start <= s[0] <= end + (0.5 if children else 0.0)]
    if len(inside) < 2:
        return float("nan")
    column = 2 if children else 1
    return (inside[-1][column] - inside[0][column]) / (end - start)
