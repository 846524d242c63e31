"""Imports of real layouts and containers, end to end: Format, boot mode, the right bytes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aliasync.pipeline._journal import Journal
from aliasync.pipeline._state import state_dir
from aliasync.sim import Simulator
from tests import diskimages as d
from tests.containers import convert, virtual_digest
from tests.importing import assert_no_leaks, images_named, run_import

pytestmark = pytest.mark.anyio

DIRECT, RELAY, COPY = "ap-southeast-1", "cn-beijing", "cn-heyuan"


@pytest.fixture
def replicas(tmp_path: Path) -> dict[str, Path]:
    bios, uefi, hybrid = tmp_path / "bios.usb", tmp_path / "uefi.usb", tmp_path / "hybrid.usb"
    d.ipxe_bios_usb(bios)
    d.ipxe_efi_usb(uefi, ("x86_64",))
    d.ipxe_efi_usb(hybrid, ("x86_64",), lkrn=True)
    return {"bios": bios, "uefi": uefi, "hybrid": hybrid}


async def test_the_real_bios_usb_is_published(replicas: dict[str, Path]) -> None:
    """iPXE's own bin/ipxe.usb (partition past the end of the file) is BIOS, everywhere."""
    async with Simulator(seed=21, profile="default") as sim:
        regions = (DIRECT, RELAY, COPY)
        report = await run_import(sim, [replicas["bios"]], name="ipxe-real", regions=regions)
        assert report.status == "success", report.to_json()
        for region in regions:
            (image,) = images_named(sim, region, "ipxe-real")
            assert (image["boot_mode"], image["architecture"]) == ("BIOS", "x86_64")
            assert image["content_digest"] == virtual_digest(replicas["bios"], 442368)
        (summary,) = report.images
        assert summary.evidence.startswith("BIOS: no EFI loader on any filesystem")
        assert_no_leaks(sim)


@pytest.mark.parametrize("variant", ["qcow2", "qcow2-compressed"])
async def test_qcow2_images_are_published_as_qcow2_with_the_disk_inside(
    replicas: dict[str, Path], tmp_path: Path, variant: str
) -> None:
    """QCOW2 of the BIOS and UEFI replicas: Format QCOW2, digest of the raw disk, everywhere."""
    sources = [convert(replicas[k], variant, tmp_path) for k in ("bios", "uefi")]
    async with Simulator(seed=22, profile="default") as sim:
        regions = (DIRECT, RELAY, COPY)
        report = await run_import(sim, sources, name="ipxe-q", regions=regions)
        assert report.status == "success", report.to_json()
        assert [s.format for s in report.images] == ["QCOW2", "QCOW2"]
        for region in regions:
            for key, suffix in (("bios", ""), ("uefi", "-uefi-x86-64")):
                (image,) = images_named(sim, region, "ipxe-q" + suffix)
                raw = replicas[key]
                assert image["disk_format"] == "QCOW2"
                assert image["content_digest"] == virtual_digest(raw, raw.stat().st_size)
        assert_no_leaks(sim)


async def test_vhd_images_are_published_as_vhd_where_ecs_can(
    replicas: dict[str, Path], tmp_path: Path
) -> None:
    """VHD (qemu's CHS-rounded size): direct and relay regions import it; a region that can
    only be reached by CopyImage is refused at once, saying why, and the rest is published."""
    source = convert(replicas["uefi"], "vhd", tmp_path)
    async with Simulator(seed=23, profile="none") as sim:
        report = await run_import(sim, [source], name="ipxe-v", regions=(DIRECT, RELAY, COPY))
        results = {r.region: r for r in report.regions}
        assert (results[DIRECT].status, results[RELAY].status) == ("success", "success")
        assert results[COPY].status == "error"
        assert "InvalidOperation.VhdImageUnsupported" in (results[COPY].images[0].error or "")
        assert report.exit_code == 1
        for region in (DIRECT, RELAY):
            (image,) = images_named(sim, region, "ipxe-v-uefi-x86-64")
            assert (image["disk_format"], image["content_bytes"]) == ("VHD", 2123776)
            assert image["content_digest"] == virtual_digest(replicas["uefi"], 2123776)
        assert not images_named(sim, COPY, "ipxe-v-uefi-x86-64")
        assert_no_leaks(sim)


async def test_a_hybrid_image_is_imported_as_uefi_then_set_to_uefi_preferred(
    replicas: dict[str, Path],
) -> None:
    """BIOS and UEFI both boot it: ImportImage says UEFI, ModifyImageAttribute UEFI-Preferred."""
    async with Simulator(seed=24, profile="default") as sim:
        regions = (DIRECT, RELAY, COPY)
        report = await run_import(sim, [replicas["hybrid"]], name="ipxe-h", regions=regions)
        assert report.status == "success", report.to_json()
        for region in regions:
            (image,) = images_named(sim, region, "ipxe-h-hybrid-x86-64")
            assert (image["boot_mode"], image["family"]) == (
                "UEFI-Preferred", "ipxe-hybrid-x86-64",
            )  # fmt: skip
        # The emulator's ImportImage refuses UEFI-Preferred (tests/sim/test_ecs_formats.py):
        # these images were imported as UEFI, then switched.
        assert_no_leaks(sim)


async def test_boot_mode_and_arch_overrides_are_registered_with_a_warning(
    replicas: dict[str, Path],
) -> None:
    """--boot-mode/--arch win over detection, name the image accordingly, and warn."""
    async with Simulator(seed=25, profile="none") as sim:
        report = await run_import(
            sim, [replicas["bios"]], name="ipxe-o", regions=(DIRECT,), boot_mode="UEFI",
            architecture="arm64",
        )  # fmt: skip
        assert report.status == "success", report.to_json()
        (image,) = images_named(sim, DIRECT, "ipxe-o-uefi-arm64")
        assert (image["boot_mode"], image["architecture"]) == ("UEFI", "arm64")
        (summary,) = report.images
        assert [w.split(": ", 1)[1].split(" (")[0] for w in summary.warnings] == [
            "registered as UEFI as --boot-mode says, but the image looks BIOS",
            "registered as arm64 as --arch says, but the image looks x86_64",
        ]


async def test_a_default_name_is_fixed_in_the_journal_when_the_run_starts(
    replicas: dict[str, Path],
) -> None:
    """The journal holds the resolved "<family>-YYYYMMDD": a resume after midnight keeps it."""
    async with Simulator(seed=26, profile="none") as sim:
        report = await run_import(sim, [replicas["bios"]], regions=(DIRECT,))
        assert report.status == "success", report.to_json()
    journal = Journal(state_dir() / "journal.sqlite3")
    try:
        plan = journal.run(report.run_id).plan
    finally:
        journal.close()
    (summary,) = report.images
    assert plan["options"]["name"] == summary.name
    assert re.fullmatch(r"ipxe-20\d{6}", summary.name)
