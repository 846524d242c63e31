"""What the command line says about each image: format, boot mode, architecture, evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import diskimages as d
from tests.cli.test_cli import run_cli
from tests.containers import convert
from tests.disk.test_real_layouts import CASES

SMALL = [name for name in sorted(CASES) if not name.startswith("Debian")]


@pytest.mark.parametrize("layout", SMALL)
def test_sim_import_of_each_real_layout_prints_family_boot_mode_arch_and_evidence(
    tmp_path: Path, layout: str
) -> None:
    """`import --sim` on each replica: the right family, boot mode, architecture and why."""
    build, _size, boot_mode, architecture, suffix, evidence = CASES[layout]
    image = tmp_path / "image.usb"
    build(image)
    done = run_cli("import", "--sim", "--json", "-r", "ap-southeast-1", "-n", "ipxe-x", str(image))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (summary,) = report["images"]
    assert (summary["format"], summary["boot_mode"], summary["architecture"]) == (
        "RAW", boot_mode, architecture,
    )  # fmt: skip
    assert summary["evidence"] == evidence
    assert summary["family"] == "ipxe" + suffix
    assert report["regions"][0]["images"][0]["family"] == "ipxe" + suffix


def test_the_table_shows_each_file_with_format_boot_mode_and_evidence(tmp_path: Path) -> None:
    """Without --json: an images table naming each file, its format, mode and evidence."""
    raw = tmp_path / "ipxe.usb"
    d.ipxe_efi_usb(raw, ("x86_64",))
    qcow2 = convert(raw, "qcow2", tmp_path)
    done = run_cli("import", "--sim", "-r", "ap-southeast-1", "-n", "ipxe-t", str(qcow2))
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if qcow2.name in line)
    assert "QCOW2" in line and "UEFI" in line and "x86_64" in line
    assert "EFI/BOOT/BOOTX64.EFI on the FAT in MBR partition 4" in done.stdout


def test_an_override_that_contradicts_the_evidence_warns_before_publishing(
    tmp_path: Path,
) -> None:
    """--boot-mode BIOS on a UEFI image: registered BIOS, and a warning on stderr says why."""
    image = tmp_path / "ipxe.usb"
    d.ipxe_efi_usb(image, ("x86_64",))
    done = run_cli(
        "import", "--sim", "--json", "-r", "ap-southeast-1", "-n", "ipxe-w", "--boot-mode",
        "BIOS", str(image),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warning = f"warning: {image}: registered as BIOS as --boot-mode says, but the image looks UEFI"
    assert warning in done.stderr
    (summary,) = json.loads(done.stdout)["images"]
    assert (summary["boot_mode"], summary["family"]) == ("BIOS", "ipxe")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--arch", "arm64", "--boot-mode", "BIOS"], "arm64 images boot UEFI only"),
        (["--arch", "arm64"], "arm64 images boot UEFI only, but it would be registered as BIOS"),
        (["--boot-mode", "legacy"], "invalid choice: 'legacy'"),
    ],
)
def test_impossible_overrides_are_refused_before_any_cloud_call(
    tmp_path: Path, options: list[str], says: str
) -> None:
    """arm64 with BIOS, or an unknown mode: one line, exit 2, nothing created."""
    image = tmp_path / "ipxe.usb"
    d.ipxe_bios_usb(image)
    done = run_cli("import", "--sim", *options, str(image))
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr
