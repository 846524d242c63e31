"""Replicas of disk images as real tools build them: the layouts aliasync must read.

Measured on 2026-12-01 from images built here from iPXE's tree at 0ab2277c (``make
bin/ipxe.usb``, ``bin-x86_64-efi/ipxe.usb``, ``bin-arm64-efi/ipxe.usb``, and ``util/genfsimg``
for the two-binary and ``.sdsk`` outputs) with Debian's gcc 12, syslinux 6.04 and mtools
4.0.48: file sizes, partition entries with their CHS bytes, BPB fields, directory order,
attribute bytes and cluster numbers here are those of the real images (``tests/disk`` checks
them). Only payloads differ: iPXE's code, syslinux's boot code and its ldlinux files are
filler of the same size, so the layout is real and no foreign code is copied.

How the real images come about:

* BIOS ``bin/ipxe.usb`` is ``usbdisk.bin`` + ``ipxe.hd``: iPXE's MBR code and a hand-made
  table whose partition 4 (type 0xEB, active) spans cylinders 0-1 of a 64-head, 32-sector
  geometry, i.e. LBA 32 to 2 MiB; the file ends after the code, at 432 KiB. No filesystem.
* genfsimg's ``.usb``: syslinux's ``mbr.bin``; ``mpartition`` makes partition 4 from LBA 32 to
  the end of the last cylinder, typed by size (0x01 below 4096 sectors, else 0x04);
  ``mformat -t C -h 64 -s 32 -c 8`` formats it (always FAT12 at these sizes; hidden sectors
  0); ``mcopy`` adds ``EFI/BOOT/BOOT*.EFI``; ``syslinux`` adds hidden, system, read-only
  ``LDLINUX.SYS`` and ``LDLINUX.C32`` and its boot code (OEM name ``SYSLINUX``).
* genfsimg's ``.sdsk``: the same FAT with no partition table (a 1.44 MB floppy format when
  small enough); its boot code happens to parse as four junk MBR entries.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from tests.fatwriter import ESP_TYPE, SECTOR, Geometry, write_fat

X64_EFI_SIZE = 1168896  # bin-x86_64-efi/ipxe.efi at 0ab2277c
AA64_EFI_SIZE = 1174528  # bin-arm64-efi/ipxe.efi
LKRN_SIZE = 394807  # bin/ipxe.lkrn
LDLINUX_SYS_SIZE = 59392  # as syslinux 6.04 installs them
LDLINUX_C32_SIZE = 119532
BIOS_USB_SIZE = 442368  # bin/ipxe.usb
_BIOS_USB_CODE_END = 410367  # its last non-zero byte is at 410366
_HIDDEN_SYSTEM_READONLY = 0x27  # with the archive bit, as syslinux leaves them
SYSLINUX_CFG = (
    b"SAY iPXE boot image\nTIMEOUT 30\nDEFAULT ipxe.lkrn\nLABEL ipxe.lkrn\n KERNEL ipxe.lkrn\n"
)
_MACHINES = {"x86_64": 0x8664, "arm64": 0xAA64}
_LOADER_NAMES = {"x86_64": "BOOTX64.EFI", "arm64": "BOOTAA64.EFI"}
_SIZES = {"x86_64": X64_EFI_SIZE, "arm64": AA64_EFI_SIZE}
# Boot code prologue of our own (xor ax,ax; cli; mov ds,ax; mov ss,ax; mov sp,0x7c00): not a
# jump, like syslinux's and iPXE's MBR code, so nothing mistakes sector 0 for a FAT.
_MBR_PROLOGUE = b"\x33\xc0\xfa\x8e\xd8\x8e\xd0\xbc\x00\x7c"
_BIOS_PROLOGUE = b"\xfa\x31\xc0\x8e\xd0\xbc\x00\x7c"


def filler(size: int, tag: bytes) -> bytes:
    """``size`` bytes standing in for someone's code: a repeated, recognisable pattern."""
    unit = b"aliasync replica: " + tag + b" | "
    return (unit * (size // len(unit) + 1))[:size]


def pe_image(arch: str, size: int | None = None) -> bytes:
    """An EFI application's first bytes (MZ, PE signature, machine type) and filler."""
    size = size or _SIZES[arch]
    head = bytearray(filler(size, f"ipxe.efi {arch}".encode()))
    head[0:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, 0x40)
    head[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<H", head, 0x44, _MACHINES[arch])
    return bytes(head)


def _chs(cylinder: int, head: int, sector: int) -> bytes:
    """A partition entry's CHS bytes: head, sector with the cylinder's top bits, cylinder."""
    return bytes([head, ((cylinder >> 2) & 0xC0) | sector, cylinder & 0xFF])


def _entry(active: bool, kind: int, cylinders: int, first_lba: int, count: int) -> bytes:
    """An mpartition/usbdisk.S style entry: from C0 H1 S1 to the end of the last cylinder."""
    return (
        bytes([0x80 if active else 0x00])
        + _chs(0, 1, 1)
        + bytes([kind])
        + _chs(cylinders - 1, 63, 32)
        + struct.pack("<II", first_lba, count)
    )


def ipxe_bios_usb(path: Path) -> None:
    """``make bin/ipxe.usb``: 432 KiB of code behind a partition 4 declared 2 MiB long."""
    image = bytearray(BIOS_USB_SIZE)
    image[: len(_BIOS_PROLOGUE)] = _BIOS_PROLOGUE
    image[446 + 48 : 446 + 64] = _entry(True, 0xEB, 2, 32, 4064)
    image[510:512] = b"\x55\xaa"
    # ipxe.hd from LBA 32: code (hdprefix), not a filesystem.
    code = bytearray(filler(_BIOS_USB_CODE_END - 16384, b"ipxe.hd"))
    code[0:4] = b"\xbd\x2a\x01\xeb"  # mov bp,...; jmp: what hdprefix starts with, not a BPB
    image[16384:_BIOS_USB_CODE_END] = code
    path.write_bytes(bytes(image))


def _genfsimg_size_sectors(payload_sizes: Sequence[int], dirs: int) -> int:
    """genfsimg's FATSIZE: (du -s -k of its staging folder + 256) * 2 sectors."""
    kib = sum(-(-size // 4096) * 4 for size in payload_sizes) + 4 * dirs
    return (kib + 256) * 2


def _cylinder_fat(cylinders: int, partitioned: bool) -> Geometry:
    """The FAT mformat makes on ``cylinders`` of 64 x 32 sectors (measured with mtools 4.0.48)."""
    total = cylinders * 2048 - (32 if partitioned else 0)
    root = {1: 224, 2: 240, 3: 240}.get(cylinders, 512)
    spc = 16 if cylinders * 2048 in (32768, 524288) else 8  # genfsimg's syslinux workaround
    return Geometry(
        12, total, spc, 1, root, 0xF8 if partitioned else 0xF0,
        jump=b"\xeb\x58\x90", oem=b"SYSLINUX", sectors_per_track=32, heads=64,
        hidden_sectors=0, drive=0x80 if partitioned else 0x00, label="iPXE", serial=0x34648418,
    )  # fmt: skip


_FLOPPY = Geometry(
    12, 2880, 1, 1, 224, 0xF0, jump=b"\xeb\x58\x90", oem=b"SYSLINUX", sectors_per_track=18,
    heads=2, hidden_sectors=0, drive=0x00, label="iPXE", serial=0x3C554449,
)  # fmt: skip


def _fat_contents(
    arches: Sequence[str], lkrn: bool
) -> tuple[dict[str, bytes], dict[str, int], list[str], list[int], int]:
    """(files, attributes, lower-case names, genfsimg payload sizes, staged folders)."""
    files: dict[str, bytes] = {}
    sizes: list[int] = []
    for arch in arches:
        files[f"EFI/BOOT/{_LOADER_NAMES[arch]}"] = pe_image(arch)
        sizes.append(_SIZES[arch])
    if lkrn:
        files["ipxe.lkrn"] = filler(LKRN_SIZE, b"ipxe.lkrn")
        files["syslinux.cfg"] = SYSLINUX_CFG
        sizes += [LKRN_SIZE, len(SYSLINUX_CFG)]
    # Added by syslinux after mformat sized the filesystem: not in genfsimg's count.
    files["LDLINUX.SYS"] = filler(LDLINUX_SYS_SIZE, b"ldlinux.sys")
    files["LDLINUX.C32"] = filler(LDLINUX_C32_SIZE, b"ldlinux.c32")
    attributes = {"LDLINUX.SYS": _HIDDEN_SYSTEM_READONLY, "LDLINUX.C32": _HIDDEN_SYSTEM_READONLY}
    lower = ["syslinux.cfg", "LDLINUX.SYS", "LDLINUX.C32"]
    folders = 1 + (2 if arches else 0)  # the staging folder, EFI, EFI/BOOT
    return files, attributes, lower, sizes, folders


def ipxe_efi_usb(path: Path, arches: Sequence[str] = ("x86_64",), *, lkrn: bool = False) -> None:
    """genfsimg's ``.usb``: FAT12 in MBR partition 4 from LBA 32, syslinux installed.

    ``("x86_64",)`` is ``bin-x86_64-efi/ipxe.usb`` (2 MiB, type 0x01); ``("arm64",)`` the
    arm64 one; ``("arm64", "x86_64")`` genfsimg given both EFI binaries (3 MiB, type 0x04,
    the arm64 loader first as the real image has it); ``lkrn`` adds ipxe.lkrn with its
    syslinux.cfg, which makes the image boot from BIOS too.
    """
    files, attributes, lower, sizes, folders = _fat_contents(arches, lkrn)
    cylinders = -(-_genfsimg_size_sectors(sizes, folders) // 2048)
    geometry = _cylinder_fat(cylinders, partitioned=True)
    kind = 0x01 if geometry.total_sectors < 4096 else 0x04
    mbr = bytearray(SECTOR)
    mbr[: len(_MBR_PROLOGUE)] = _MBR_PROLOGUE
    mbr[446 + 48 : 446 + 64] = _entry(True, kind, cylinders, 32, geometry.total_sectors)
    mbr[510:512] = b"\x55\xaa"
    with path.open("wb") as f:
        f.truncate(cylinders * 2048 * SECTOR)
        write_fat(
            f, 32 * SECTOR, files, geometry=geometry, attributes=attributes,
            lower_case=lower, label_lfn=True,
        )  # fmt: skip
        f.seek(0)
        f.write(mbr)


# Boot code of our own at 446..509 whose bytes parse as junk partition entries with the same
# status (0x09, 0xF4, 0x20, 0x00) and type bytes as syslinux's boot code in a real .sdsk.
_SUPERFLOPPY_TAIL = (
    b"\x09\x00\x00\x00\x07" + bytes(3) + b"\xeb\xf2\x31\xc0\xcd\x16\xcd\x19"
    + b"\xf4\xeb\xfd\x8a\x16" + bytes(3) + b"\xcd\x13\x07\xc3Boot"
    + b" error\r\n" + bytes(8)
    + bytes(10) + b"\xfe\x02\xb2\x3e\x18\x37"
)  # fmt: skip


def ipxe_sdsk(path: Path, arches: Sequence[str] = ("x86_64",), *, lkrn: bool = False) -> None:
    """genfsimg's ``.sdsk``: a bare FAT12 (a 1.44 MB floppy format when it fits)."""
    files, attributes, lower, sizes, folders = _fat_contents(arches, lkrn)
    sectors = _genfsimg_size_sectors(sizes, folders)
    # Too big for a floppy: whole cylinders of 64 x 32 sectors, as for a .usb.
    geometry = _cylinder_fat(-(-sectors // 2048), partitioned=False) if sectors > 2880 else _FLOPPY
    with path.open("wb") as f:
        layout = write_fat(
            f, 0, files, geometry=geometry, attributes=attributes, lower_case=lower,
            label_lfn=True,
        )  # fmt: skip
        f.truncate(layout.size)
        f.seek(446)
        f.write(_SUPERFLOPPY_TAIL)


BIOS_BOOT_TYPE = uuid.UUID("21686148-6449-6E6F-744E-656564454649")
LINUX_ROOT_X86_64 = uuid.UUID("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709")
# GRUB's boot.img keeps its messages in the MBR; these strings are what inspection sees.
_GRUB_MBR = b"\xeb\x63\x90" + bytes(0x17D) + b"GRUB \0Geom\0Hard Disk\0Read\0 Error\r\n\0"


def debian_cloud_gpt(path: Path, *, esp_sectors: int = 253952, disk_sectors: int = 4194304) -> None:
    """The partition layout of Debian 12's genericcloud raw image, as ``fdisk -l`` shows it.

    GPT with 128 entries; partition 14 BIOS boot (LBA 2048-8191), 15 EFI system (from 8192,
    124 MiB, FAT16 holding ``EFI/BOOT/BOOTX64.EFI`` and GRUB), 1 Linux root from 262144; GRUB
    boot code in the protective MBR. The file is sparse. ``esp_sectors`` and ``disk_sectors``
    shrink it for tests that upload it; the FAT's BPB is mkfs.fat's choice for the size (not
    measured on a real Debian image here).
    """
    esp_first = 8192
    root_first = esp_first + esp_sectors
    last = disk_sectors - 34
    spc = 4 if esp_sectors * SECTOR > 64 << 20 else 1
    geometry = Geometry(16, esp_sectors, spc, 4, 512, 0xF8, label="EFI", serial=0x5A0E5F10)
    files = {
        "EFI/BOOT/BOOTX64.EFI": pe_image("x86_64", 950000),
        "EFI/BOOT/grubx64.efi": pe_image("x86_64", 2400000),
        "EFI/debian/grub.cfg": b"search.fs_uuid 0000 root\nset prefix=($root)/boot/grub\n",
    }
    parts = [
        (1, LINUX_ROOT_X86_64, root_first, last, "root"),
        (14, BIOS_BOOT_TYPE, 2048, 8191, "bios"),
        (15, ESP_TYPE, esp_first, root_first - 1, "esp"),
    ]
    table = bytearray(128 * 128)
    for number, kind, first, end, name in parts:
        struct.pack_into(
            "<16s16sQQQ72s", table, (number - 1) * 128, kind.bytes_le,
            uuid.UUID(int=0xDEB1A000 + number).bytes_le, first, end, 0,
            name.encode("utf-16-le"),
        )  # fmt: skip
    with path.open("wb") as f:
        f.truncate(disk_sectors * SECTOR)
        write_fat(f, esp_first * SECTOR, files, geometry=geometry)
        mbr = bytearray(_GRUB_MBR.ljust(SECTOR, b"\0"))
        mbr[446:462] = b"\x00\x00\x02\x00\xee\xff\xff\xff" + struct.pack(
            "<II", 1, min(disk_sectors - 1, 0xFFFFFFFF)
        )
        mbr[510:512] = b"\x55\xaa"
        f.seek(0)
        f.write(mbr)
        _write_gpt(f, table, disk_sectors)


def _write_gpt(f: BinaryIO, table: bytes, disk_sectors: int) -> None:
    """Both GPT headers and entry arrays, with their checksums."""
    table_crc = zlib.crc32(table)
    entry_sectors = len(table) // SECTOR

    def header(me: int, other: int, entries_at: int) -> bytes:
        fields = [b"EFI PART", 0x00010000, 92, 0, 0, me, other, 2 + entry_sectors]
        fields += [disk_sectors - 2 - entry_sectors, uuid.UUID(int=0xDEB1A4).bytes_le]
        fields += [entries_at, 128, 128, table_crc]
        raw = struct.pack("<8sIIIIQQQQ16sQIII", *fields)
        fields[3] = zlib.crc32(raw)
        return struct.pack("<8sIIIIQQQQ16sQIII", *fields)

    backup = disk_sectors - 1
    for me, entries_at, other in ((1, 2, backup), (backup, backup - entry_sectors, 1)):
        f.seek(entries_at * SECTOR)
        f.write(table)
        f.seek(me * SECTOR)
        f.write(header(me, other, entries_at))
