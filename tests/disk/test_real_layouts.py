"""The layouts real tools produce (tests/diskimages.py), detected as they must be.

The replicas' structure is pinned here with bytes read off the real images (built from iPXE's
tree with its own toolchain on 2026-12-01), so that a change to the writer cannot quietly turn
a replica into something no real tool makes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from aliasync.disk._inspect import inspect_image
from tests import diskimages as d

Builder = Callable[[Path], None]

# (builder, size, boot mode, architecture, suffix, evidence)
CASES: dict[str, tuple[Builder, int, str, str, str, str]] = {
    "bin/ipxe.usb": (
        d.ipxe_bios_usb, 442368, "BIOS", "x86_64", "",
        "BIOS: no EFI loader on any filesystem (MBR partition 4, type 0xEB, holds no FAT"
        " filesystem)",
    ),
    "bin-x86_64-efi/ipxe.usb": (
        lambda p: d.ipxe_efi_usb(p, ("x86_64",)), 2097152, "UEFI", "x86_64", "-uefi-x86-64",
        "UEFI x86_64: EFI/BOOT/BOOTX64.EFI on the FAT in MBR partition 4",
    ),
    "bin-arm64-efi/ipxe.usb": (
        lambda p: d.ipxe_efi_usb(p, ("arm64",)), 2097152, "UEFI", "arm64", "-uefi-arm64",
        "UEFI arm64: EFI/BOOT/BOOTAA64.EFI on the FAT in MBR partition 4",
    ),
    "genfsimg x86_64 + arm64 .usb": (
        lambda p: d.ipxe_efi_usb(p, ("arm64", "x86_64")), 3145728, "UEFI", "x86_64",
        "-uefi-multi",
        "UEFI x86_64 and arm64 (registered as x86_64): EFI/BOOT/BOOTX64.EFI and"
        " EFI/BOOT/BOOTAA64.EFI on the FAT in MBR partition 4",
    ),
    "genfsimg ipxe.lkrn + x86_64 .usb": (
        lambda p: d.ipxe_efi_usb(p, ("x86_64",), lkrn=True), 2097152, "UEFI-Preferred",
        "x86_64", "-hybrid-x86-64",
        "UEFI-Preferred x86_64: EFI/BOOT/BOOTX64.EFI on the FAT in MBR partition 4, and"
        " SYSLINUX configured on the FAT in MBR partition 4",
    ),
    "genfsimg x86_64 .sdsk": (
        lambda p: d.ipxe_sdsk(p, ("x86_64",)), 1474560, "UEFI", "x86_64", "-uefi-x86-64",
        "UEFI x86_64: EFI/BOOT/BOOTX64.EFI on the FAT filling the whole disk",
    ),
    "genfsimg x86_64 + arm64 .sdsk": (
        lambda p: d.ipxe_sdsk(p, ("arm64", "x86_64")), 3145728, "UEFI", "x86_64",
        "-uefi-multi",
        "UEFI x86_64 and arm64 (registered as x86_64): EFI/BOOT/BOOTX64.EFI and"
        " EFI/BOOT/BOOTAA64.EFI on the FAT filling the whole disk",
    ),
    "genfsimg ipxe.lkrn .sdsk": (
        lambda p: d.ipxe_sdsk(p, (), lkrn=True), 1474560, "BIOS", "x86_64", "",
        "BIOS: SYSLINUX configured on the FAT filling the whole disk; no EFI loader on any"
        " filesystem",
    ),
    "Debian 12 genericcloud (GPT, BIOS boot + ESP)": (
        d.debian_cloud_gpt, 2 << 30, "UEFI-Preferred", "x86_64", "-hybrid-x86-64",
        "UEFI-Preferred x86_64: EFI/BOOT/BOOTX64.EFI on the FAT in GPT partition 15, and GRUB"
        " in the MBR, a BIOS boot partition (GPT partition 14)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("layout", sorted(CASES))
def test_each_real_layout_is_detected_with_its_evidence(tmp_path: Path, layout: str) -> None:
    """Each layout gives the boot mode, architecture, name suffix and evidence stated."""
    build, size, boot_mode, architecture, suffix, evidence = CASES[layout]
    image = tmp_path / "image"
    build(image)
    assert image.stat().st_size == size
    found = inspect_image(image)
    assert (found.boot_mode, found.architecture, found.suffix) == (boot_mode, architecture, suffix)
    assert found.evidence == evidence
    assert (found.format, found.virtual_size) == ("RAW", size)


def _entry(image: bytes, number: int) -> str:
    return image[446 + 16 * (number - 1) : 462 + 16 * (number - 1)].hex(" ")


def test_bios_usb_replica_has_the_real_table_and_no_filesystem(tmp_path: Path) -> None:
    """Partition 4 as usbdisk.S writes it: type 0xEB, LBA 32, 2 MiB, past the file's end."""
    path = tmp_path / "ipxe.usb"
    d.ipxe_bios_usb(path)
    image = path.read_bytes()
    assert _entry(image, 4) == "80 01 01 00 eb 3f 20 01 20 00 00 00 e0 0f 00 00"
    assert all(_entry(image, n) == " ".join(["00"] * 16) for n in (1, 2, 3))
    start, count = struct.unpack_from("<II", image, 446 + 48 + 8)
    assert (start + count) * 512 == 2 << 20 > len(image)
    assert image[16384] == 0xBD and b"FAT" not in image[16384 + 54 : 16384 + 87]
    assert max(i for i, byte in enumerate(image) if byte) == 410366


@pytest.mark.parametrize(
    ("arches", "entry", "bpb"),
    [
        (
            ("x86_64",),
            "80 01 01 00 01 3f 20 01 20 00 00 00 e0 0f 00 00",
            "eb5890 5359534c494e5558 0002 08 0100 02 f000 e00f f8 0200 2000 4000 00000000",
        ),
        (
            ("arm64", "x86_64"),
            "80 01 01 00 04 3f 20 02 20 00 00 00 e0 17 00 00",
            "eb5890 5359534c494e5558 0002 08 0100 02 f000 e017 f8 0300 2000 4000 00000000",
        ),
    ],
)
def test_efi_usb_replica_has_the_real_table_and_boot_sector(
    tmp_path: Path, arches: tuple[str, ...], entry: str, bpb: str
) -> None:
    """MBR entry (type by size), BPB (SYSLINUX, 240 root entries, hidden 0) as measured."""
    path = tmp_path / "ipxe.usb"
    d.ipxe_efi_usb(path, arches)
    image = path.read_bytes()
    assert _entry(image, 4) == entry
    assert image[16384 : 16384 + 32].hex() == bpb.replace(" ", "")
    assert image[16384 + 36 : 16384 + 39].hex() == "800029"  # drive 0x80, extended BPB
    assert image[16384 + 43 : 16384 + 62] == b"iPXE       FAT12   "


def test_efi_usb_replica_root_directory_is_what_mtools_and_syslinux_write(
    tmp_path: Path,
) -> None:
    """Label with its long name, EFI, then LDLINUX.SYS/.C32 hidden, system, read-only."""
    path = tmp_path / "ipxe.usb"
    d.ipxe_efi_usb(path, ("x86_64",))
    root = path.read_bytes()[18944 : 18944 + 5 * 32]
    entries = [root[i : i + 32] for i in range(0, len(root), 32)]
    assert (entries[0][0], entries[0][11], entries[0][13]) == (0x41, 0x0F, 0x0C)
    summary = [(e[:11], e[11], e[12], struct.unpack_from("<HI", e, 26)) for e in entries[1:]]
    assert summary == [
        (b"IPXE       ", 0x08, 0x00, (0, 0)),
        (b"EFI        ", 0x10, 0x00, (2, 0)),
        (b"LDLINUX SYS", 0x27, 0x18, (290, 59392)),
        (b"LDLINUX C32", 0x27, 0x18, (305, 119532)),
    ]


def test_superfloppy_replica_boot_code_parses_as_junk_partition_entries(tmp_path: Path) -> None:
    """A bare FAT12 whose bytes 446..509 have statuses 09/F4/20/00, as syslinux's code has."""
    path = tmp_path / "ipxe.sdsk"
    d.ipxe_sdsk(path, ("x86_64",))
    image = path.read_bytes()
    assert [image[446 + 16 * n] for n in range(4)] == [0x09, 0xF4, 0x20, 0x00]
    assert image[510:512] == b"\x55\xaa" and image[54:62] == b"FAT12   "
    # The 1.44 MB floppy format: 1 sector per cluster, 224 root entries, 18 sectors x 2 heads.
    assert image[0:32].hex(" ") == (
        "eb 58 90 53 59 53 4c 49 4e 55 58 00 02 01 01 00 02 e0 00 40 0b f0 09 00 12 00 02 00"
        " 00 00 00 00"
    )
