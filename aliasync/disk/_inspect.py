"""Inspect a raw disk image: which firmware boots it and which EFI loaders it carries.

ImportImage needs a boot mode and an architecture, and a wrong guess gives an image that
imports fine but never boots. Rather than trusting file names, this reads the image itself:
a whole-disk FAT filesystem, or every partition of an MBR or GPT disk tried as FAT, looking for
the removable-media loaders ``EFI/BOOT/BOOTX64.EFI`` and ``EFI/BOOT/BOOTAA64.EFI``.

Only the few sectors needed are read, so inspecting a multi-GiB image is instantaneous.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from aliasync._exceptions import InvalidImageError
from aliasync.disk._fat import FatCorruptError, FatVolume, TruncatedError, looks_like_fat, read_at

__all__ = ["DiskImage", "inspect_image"]

GIB = 1 << 30

# The UEFI removable-media paths: what firmware boots from a disk with no boot entries,
# which is exactly the situation of a freshly imported cloud image.
_LOADERS: dict[str, Literal["x86_64", "arm64"]] = {
    "EFI/BOOT/BOOTX64.EFI": "x86_64",
    "EFI/BOOT/BOOTAA64.EFI": "arm64",
}
_SUFFIXES = {
    frozenset(): "",
    frozenset({"x86_64"}): "-uefi-x86-64",
    frozenset({"arm64"}): "-uefi-arm64",
    frozenset({"x86_64", "arm64"}): "-uefi-multi",
}
_NOT_AN_IMAGE = "is not a disk image (no boot signature, partition table or FAT filesystem)"
_MBR_SECTOR = 512
_GPT_PROTECTIVE = 0xEE
# A GPT may legally have any number of entries; real ones have 128. The cap only stops a
# corrupt header from making us read (and checksum) gigabytes.
_GPT_MAX_ENTRIES = 4096


@dataclass(frozen=True)
class DiskImage:
    """What ImportImage needs to know about a raw disk image."""

    path: Path
    size: int
    boot_mode: Literal["BIOS", "UEFI"]
    architecture: Literal["x86_64", "arm64"]
    loaders: frozenset[str]
    suffix: str
    disk_image_size_gib: int


@dataclass(frozen=True)
class _Partition:
    label: str  # how error messages name it, e.g. "MBR partition 4"
    offset: int
    length: int


class _CorruptTableError(Exception):
    """A partition table that is recognisably there but inconsistent."""


def inspect_image(path: str | os.PathLike[str]) -> DiskImage:
    """Inspect the raw disk image at ``path``; raise InvalidImageError if it is not usable."""
    where = os.fspath(path)
    try:
        info = os.stat(where)
    except FileNotFoundError:
        raise InvalidImageError(where, "no such file") from None
    except OSError as exc:
        raise InvalidImageError(where, f"cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidImageError(where, "is a directory, not a disk image")
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO would block, and a device has no size we could upload.
        raise InvalidImageError(where, "is not a regular file")
    size = info.st_size
    if size == 0:
        raise InvalidImageError(where, "is empty")
    try:
        with open(where, "rb") as f:
            loaders = _scan(f, size, where)
    except TruncatedError as exc:
        raise InvalidImageError(where, f"is truncated: {exc}") from None
    except FatCorruptError as exc:
        raise InvalidImageError(where, f"corrupt FAT filesystem: {exc}") from None
    except _CorruptTableError as exc:
        raise InvalidImageError(where, f"corrupt partition table: {exc}") from None
    except OSError as exc:
        reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
        raise InvalidImageError(where, f"cannot be read: {reason}") from None

    arches = frozenset(loaders)
    architecture: Literal["x86_64", "arm64"]
    if "x86_64" in arches:
        # With both loaders the image is registered as x86_64: an ECS image has a single
        # Architecture attribute, x86_64 instance types are the vast majority, and BOOTX64.EFI
        # is what their firmware boots. An arm64 instance would still find BOOTAA64.EFI on the
        # same disk, but ECS only offers arm64 images to arm64 instance types, so registering
        # a multi image as arm64 would hide it from almost everyone.
        architecture = "x86_64"
    elif arches:
        architecture = "arm64"
    else:
        architecture = "x86_64"
    return DiskImage(
        path=Path(where),
        size=size,
        boot_mode="UEFI" if arches else "BIOS",
        architecture=architecture,
        loaders=arches,
        suffix=_SUFFIXES[arches],
        disk_image_size_gib=max(1, -(-size // GIB)),
    )


def _scan(f: BinaryIO, size: int, where: str) -> set[str]:
    """The architectures of the EFI loaders found; InvalidImageError if nothing is bootable."""
    first = f.read(_MBR_SECTOR)
    if looks_like_fat(first):
        # A "superfloppy": the whole disk is one FAT filesystem, no partition table.
        return _loaders_in(_Partition("the whole disk", 0, size), f, size)
    has_signature = len(first) == _MBR_SECTOR and first[510:512] == b"\x55\xaa"
    partitions = _mbr_partitions(first, size) if has_signature else []
    if any(kind == _GPT_PROTECTIVE for kind, _ in partitions):
        # A hybrid MBR may list the same partitions again; the GPT is authoritative.
        gpt = _gpt_partitions(f, size)
        seen = {p.offset for p in gpt}
        partitions = [(0, p) for p in gpt] + [
            (kind, p) for kind, p in partitions if kind != _GPT_PROTECTIVE and p.offset not in seen
        ]
    found: set[str] = set()
    any_fat = False
    for _kind, part in partitions:
        if part.offset + part.length > size:
            raise TruncatedError(
                f"{part.label} ends at byte {part.offset + part.length},"
                f" but the file has only {size} bytes"
            )
        sector = read_at(f, size, part.offset, _MBR_SECTOR, f"{part.label} first sector")
        if looks_like_fat(sector):
            any_fat = True
            found |= _loaders_in(part, f, size)
    if not (has_signature or any_fat):
        raise InvalidImageError(where, _NOT_AN_IMAGE)
    # A boot signature with no FAT (or FATs without loaders) is a legacy-BIOS disk, e.g. an
    # isohybrid image or a classic MBR boot loader.
    return found


def _loaders_in(part: _Partition, f: BinaryIO, size: int) -> set[str]:
    try:
        volume = FatVolume(f, size, part.offset, part.length)
        found: set[str] = set()
        for loader, arch in _LOADERS.items():
            entry = volume.find(loader)
            if entry is not None and not entry.is_dir:
                found.add(arch)
        return found
    except FatCorruptError as exc:
        if part.offset == 0:
            raise
        raise FatCorruptError(f"{exc} (in {part.label})") from None


def _mbr_partitions(mbr: bytes, size: int) -> list[tuple[int, _Partition]]:
    """The used primary entries of an MBR, as (type byte, partition)."""
    entries = [mbr[446 + 16 * i : 462 + 16 * i] for i in range(4)]
    # Boot code at these offsets (a FAT boot sector, random data) rarely has only 0x00/0x80
    # status bytes; real partition tables always do.
    if any(entry[0] not in (0x00, 0x80) for entry in entries):
        return []
    result = []
    for number, entry in enumerate(entries, start=1):
        kind = entry[4]
        start, count = struct.unpack_from("<II", entry, 8)
        if kind == 0 or count == 0:
            continue
        label = f"MBR partition {number}"
        if kind == _GPT_PROTECTIVE:
            # Its extent is conventionally "the whole disk, capped at 2 TiB": not checked.
            result.append((kind, _Partition(label, 0, size)))
        elif start == 0:
            # Some isohybrid tables start a partition at LBA 0, i.e. at the MBR itself.
            continue
        else:
            result.append((kind, _Partition(label, start * _MBR_SECTOR, count * _MBR_SECTOR)))
    return result


def _gpt_partitions(f: BinaryIO, size: int) -> list[_Partition]:
    """The used entries of the primary GPT, whose header is at LBA 1 of 512 or 4096 bytes."""
    header = read_at(f, size, 512, 92, "GPT header")
    sector_size = 512
    if header[:8] != b"EFI PART" and size >= 2 * 4096:
        # 4Kn disks put LBA 1, and with it the header, at byte 4096.
        header = read_at(f, size, 4096, 92, "GPT header")
        sector_size = 4096
    if header[:8] != b"EFI PART":
        raise _CorruptTableError("protective MBR for a GPT, but no GPT header at LBA 1")
    header_size, header_crc = struct.unpack_from("<II", header, 12)
    if not 92 <= header_size <= sector_size:
        raise _CorruptTableError(f"GPT header size {header_size} is out of range")
    header = read_at(f, size, sector_size, header_size, "GPT header")
    if zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:]) != header_crc:
        raise _CorruptTableError("GPT header checksum mismatch")
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", header, 72)
    if count > _GPT_MAX_ENTRIES or not 128 <= entry_size <= 4096 or entry_size % 8:
        raise _CorruptTableError(f"implausible GPT entry array ({count} x {entry_size} bytes)")
    table = read_at(f, size, entries_lba * sector_size, count * entry_size, "GPT entry array")
    if zlib.crc32(table) != entries_crc:
        raise _CorruptTableError("GPT partition entry array checksum mismatch")
    result = []
    for index in range(count):
        entry = table[index * entry_size : (index + 1) * entry_size]
        if entry[:16] == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        if last < first:
            raise _CorruptTableError(f"GPT partition {index + 1} ends before it starts")
        result.append(
            _Partition(
                f"GPT partition {index + 1}",
                first * sector_size,
                (last - first + 1) * sector_size,
            )
        )
    return result
