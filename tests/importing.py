"""Helpers for import tests: images, running imports against an emulator, checking outcomes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aliasync import ImportOptions, ImportReport, import_images, inspect_image
from aliasync.cloud._endpoints import Endpoints
from aliasync.sim import Simulator

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BIOS = EXAMPLES / "ipxe-bios.usb"
UEFI = EXAMPLES / "ipxe-uefi.usb"
ARM64 = EXAMPLES / "ipxe-arm64.usb"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rebuilt(images: Sequence[Path], directory: Path) -> list[Path]:
    """New builds of ``images``: the same layout and names, other content (the last bytes)."""
    copies = []
    for number, source in enumerate(images):
        copy = directory / f"rebuilt-{number}-{source.name}"
        copy.write_bytes(source.read_bytes()[:-16] + b"rebuilt 20261202")
        copies.append(copy)
    return copies


async def run_import(sim: Simulator, images: Sequence[Path], **options: Any) -> ImportReport:
    return await import_images(
        images, endpoints=Endpoints.from_dict(sim.endpoints), options=ImportOptions(**options)
    )


def images_named(sim: Simulator, region: str, name: str) -> list[dict[str, Any]]:
    state = sim.ctx.models["ecs"].snapshot()
    region_state = state["regions"].get(region, {"images": []})
    return [i for i in region_state["images"] if i["name"] == name]


def assert_published(
    sim: Simulator,
    report: ImportReport,
    images: Sequence[Path],
    *,
    name: str,
    family: str = "ipxe",
    public: bool = False,
    regions: Sequence[str] | None = None,
) -> None:
    """Every (region, image) is one Available image with the right content and attributes."""
    assert report.status == "success", report.to_json()
    for region in regions or sim.ctx.regions.ids():
        for path in images:
            disk = inspect_image(path)
            found = images_named(sim, region, name + disk.suffix)
            assert len(found) == 1, (region, path, found)
            image = found[0]
            assert image["status"] == "Available", (region, image)
            assert image["content_digest"] == sha256(path), (region, path)
            assert image["boot_mode"] == disk.boot_mode
            assert image["architecture"] == disk.architecture
            assert image["family"] == family + disk.suffix
            assert image["nvme"] in ("supported", True), image
            assert image["public"] is public


def assert_no_leaks(sim: Simulator) -> None:
    leaks = sim.leaks()
    assert all(not v for v in leaks.values()), leaks
