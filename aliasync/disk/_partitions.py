"""Partition tables: the primary entries of an MBR and the entries of a GPT.

Type bytes and GUIDs are kept, but nothing is decided by them: a partition labelled FAT16
(0x04) that holds a FAT12, as iPXE's genfsimg writes, is what its filesystem says it is. Only
two kinds are used as boot evidence: the GPT "BIOS boot" partition (GRUB's core image) and
the EFI system partition. Extents are not checked against the file here: a partition may
legitimately run past the end of the file (iPXE's BIOS ``ipxe.usb`` declares 2 MiB and ships
430 KiB of code); only a filesystem whose own extent does is truncated.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from aliasync.disk._fat import read_at

__all__ = ["BIOS_BOOT", "ESP", "CorruptTableError", "Partition", "read_partitions"]

SECTOR = 512
MBR_PROTECTIVE = 0xEE
ESP = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
BIOS_BOOT = uuid.UUID("21686148-6449-6E6F-744E-656564454649")
# A GPT may legally have any number of entries; real ones have 128. The cap only stops a
# corrupt header from making us read (and checksum) gigabytes.
_GPT_MAX_ENTRIES = 4096
_GPT_NAMES = {ESP: "EFI system", BIOS_BOOT: "BIOS boot"}


class CorruptTableError(Exception):
    """A partition table that is recognisably there but inconsistent."""


@dataclass(frozen=True)
class Partition:
    """One partition: where it is, and what its table says it is."""

    label: str  # how messages name it, e.g. "MBR partition 4", "GPT partition 2"
    offset: int
    length: int
    mbr_type: int | None = None
    gpt_type: uuid.UUID | None = None

    @property
    def kind(self) -> str:
        """The table's word for it: ``type 0xEB``, ``EFI system``, ``type 0FC63DAF-…``."""
        if self.gpt_type is not None:
            return _GPT_NAMES.get(self.gpt_type) or f"type {str(self.gpt_type).upper()}"
        return f"type 0x{self.mbr_type or 0:02X}"


def read_partitions(f: BinaryIO, size: int, mbr: bytes) -> list[Partition]:
    """The partitions of a disk whose first sector is ``mbr`` (no table: an empty list).

    With a protective MBR, the GPT is authoritative; partitions of a hybrid MBR that the GPT
    does not list are kept after the GPT's.
    """
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        return []
    entries = [mbr[446 + 16 * i : 462 + 16 * i] for i in range(4)]
    # Boot code at these offsets (a FAT boot sector, random data) rarely has only 0x00/0x80
    # status bytes; real partition tables always do.
    if any(entry[0] not in (0x00, 0x80) for entry in entries):
        return []
    found: list[Partition] = []
    protective = False
    for number, entry in enumerate(entries, start=1):
        kind = entry[4]
        start, count = struct.unpack_from("<II", entry, 8)
        if kind == 0 or count == 0:
            continue
        if kind == MBR_PROTECTIVE:
            protective = True  # its extent is conventionally "the whole disk, capped at 2 TiB"
        elif start != 0:  # some isohybrid tables start a partition at LBA 0, the MBR itself
            found.append(
                Partition(f"MBR partition {number}", start * SECTOR, count * SECTOR, mbr_type=kind)
            )
    if not protective:
        return found
    gpt = _gpt_partitions(f, size)
    seen = {p.offset for p in gpt}
    return gpt + [p for p in found if p.offset not in seen]


def _gpt_partitions(f: BinaryIO, size: int) -> list[Partition]:
    """The used entries of the primary GPT, whose header is at LBA 1 of 512 or 4096 bytes."""
    header = read_at(f, size, 512, 92, "GPT header")
    sector_size = 512
    if header[:8] != b"EFI PART" and size >= 2 * 4096:
        # 4Kn disks put LBA 1, and with it the header, at byte 4096.
        header = read_at(f, size, 4096, 92, "GPT header")
        sector_size = 4096
    if header[:8] != b"EFI PART":
        raise CorruptTableError("protective MBR for a GPT, but no GPT header at LBA 1")
    header_size, header_crc = struct.unpack_from("<II", header, 12)
    if not 92 <= header_size <= sector_size:
        raise CorruptTableError(f"GPT header size {header_size} is out of range")
    header = read_at(f, size, sector_size, header_size, "GPT header")
    if zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:]) != header_crc:
        raise CorruptTableError("GPT header checksum mismatch")
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", header, 72)
    if count > _GPT_MAX_ENTRIES or not 128 <= entry_size <= 4096 or entry_size % 8:
        raise CorruptTableError(f"implausible GPT entry array ({count} x {entry_size} bytes)")
    table = read_at(f, size, entries_lba * sector_size, count * entry_size, "GPT entry array")
    if zlib.crc32(table) != entries_crc:
        raise CorruptTableError("GPT partition entry array checksum mismatch")
    result = []
    for index in range(count):
        entry = table[index * entry_size : (index + 1) * entry_size]
        if entry[:16] == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        if last < first:
            raise CorruptTableError(f"GPT partition {index + 1} ends before it starts")
        result.append(
            Partition(
                f"GPT partition {index + 1}",
                first * sector_size,
                (last - first + 1) * sector_size,
                gpt_type=uuid.UUID(bytes_le=entry[:16]),
            )
        )
    return result
