"""Builders of real disk images for tests, in pure Python: no mtools, mkfs, root or mounting.

The FAT writer is honest: a BPB with the sizes Microsoft's FAT specification prescribes, every
FAT copy, "." and ".." entries, a volume label, VFAT long-name entries with their checksum, and
cluster chains that may be deliberately scattered. Images are written sparsely with seek, so a
33 MiB FAT32 filesystem costs well under a megabyte of actual writes.

Names are stored the way Windows 95 did: a name that is already an upper-case 8.3 name gets a
short entry only; any other name gets long-name entries plus a ``~N`` short alias. So a name
like ``bootx64.efi`` is findable *only* through its long name, which is what tests need.
"""

from __future__ import annotations

import random
import re
import struct
import uuid
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

SECTOR = 512
GIB = 1 << 30
ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
BASIC_DATA_TYPE = uuid.UUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
PARTITION_START = 2048  # 1 MiB alignment, as every modern partitioner does
# Real x86 MBR boot code begins like this (cli; xor ax,ax); unlike a FAT boot sector, no jump.
MBR_CODE = b"\xfa\x31\xc0\x8e\xd0\xbc\x00\x7c"
_DATE = ((2024 - 1980) << 9) | (1 << 5) | 1  # 2024-01-01
_SHORT_OK = re.compile(r"[A-Z0-9_\-]{1,8}(\.[A-Z0-9_\-]{1,3})?")


@dataclass(frozen=True)
class Geometry:
    """The BPB choices of one formatter run; the FAT size is derived, as a formatter would."""

    bits: int
    total_sectors: int
    sectors_per_cluster: int
    reserved: int
    root_entries: int
    media: int
    fats: int = 2
    # What the boot sector says besides the sizes (defaults: what mkfs.fat writes).
    jump: bytes = b""  # b"": EB 3C 90, or EB 58 90 on FAT32
    oem: bytes = b"MSWIN4.1"
    sectors_per_track: int = 32
    heads: int = 64
    hidden_sectors: int | None = None  # None: where the filesystem starts
    drive: int | None = None  # None: 0x00 for FAT12, 0x80 otherwise
    label: str = "ALIASYNC"
    serial: int = 0x1234ABCD


GEOMETRIES = {
    12: Geometry(12, 2880, 1, 1, 224, 0xF0),  # a 1.44 MB floppy
    16: Geometry(16, 8192, 1, 4, 512, 0xF8),  # 4 MiB: ~8,100 clusters
    32: Geometry(32, 67584, 1, 32, 0, 0xF8),  # 33 MiB: ~66,500 clusters, just over 65,524
}


def fat_sectors_for(g: Geometry) -> tuple[int, int]:
    """(sectors per FAT, cluster count): the smallest FAT that maps every data cluster."""
    root_sectors = (g.root_entries * 32 + SECTOR - 1) // SECTOR
    fat_sectors = 1
    while True:
        data = g.total_sectors - g.reserved - g.fats * fat_sectors - root_sectors
        clusters = data // g.sectors_per_cluster
        needed = ((clusters + 2) * g.bits + 7) // 8
        if needed <= fat_sectors * SECTOR:
            return fat_sectors, clusters
        fat_sectors = (needed + SECTOR - 1) // SECTOR


def lfn_checksum(name11: bytes) -> int:
    """The VFAT checksum of an 11-byte short name, stored in each of its long-name entries."""
    total = 0
    for byte in name11:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def set_fat_entry(table: bytearray, bits: int, cluster: int, value: int) -> None:
    """Store ``value`` as the FAT entry of ``cluster``, packing FAT12's 1.5-byte entries."""
    if bits == 12:
        pos = cluster + cluster // 2
        if cluster & 1:
            table[pos] = (table[pos] & 0x0F) | ((value << 4) & 0xF0)
            table[pos + 1] = (value >> 4) & 0xFF
        else:
            table[pos] = value & 0xFF
            table[pos + 1] = (table[pos + 1] & 0xF0) | ((value >> 8) & 0x0F)
    elif bits == 16:
        struct.pack_into("<H", table, cluster * 2, value)
    else:
        # The top four bits of a FAT32 entry are reserved and must be preserved.
        (old,) = struct.unpack_from("<I", table, cluster * 4)
        struct.pack_into("<I", table, cluster * 4, (old & 0xF0000000) | (value & 0x0FFFFFFF))


@dataclass(frozen=True)
class FatLayout:
    """Where a written filesystem put things, so tests can corrupt precisely."""

    offset: int
    size: int
    bits: int
    clusters: int
    fat_offsets: tuple[int, ...]
    fat_bytes: int
    chains: dict[str, list[int]]  # path -> its clusters; "" is the FAT32 root directory
    entry_offsets: dict[str, int]  # path -> absolute byte offset of its short entry

    def end_of_chain(self) -> int:
        return (1 << self.bits) - 1 if self.bits < 32 else 0x0FFFFFFF

    def patch_fat(self, image: Path, cluster: int, value: int) -> None:
        """Rewrite one FAT entry in every copy of the FAT."""
        with image.open("r+b") as f:
            for fat in self.fat_offsets:
                f.seek(fat)
                table = bytearray(f.read(self.fat_bytes))
                set_fat_entry(table, self.bits, cluster, value)
                f.seek(fat)
                f.write(table)


@dataclass
class _Node:
    name: str
    data: bytes | None  # None for a directory
    children: dict[str, _Node] = field(default_factory=dict)
    short: bytes = b""
    long: bool = False
    clusters: list[int] = field(default_factory=list)


def _short_alias(name: str, used: set[bytes]) -> tuple[bytes, bool]:
    """(11-byte short name, whether long-name entries are needed)."""
    if _SHORT_OK.fullmatch(name) and name not in (".", ".."):
        base, _, ext = name.partition(".")
        return base.ljust(8).encode() + ext.ljust(3).encode(), False
    upper = name.upper()
    base, dot, ext = upper.rpartition(".")
    if not dot:
        base, ext = upper, ""

    def clean(text: str) -> str:
        return re.sub(r"[^A-Z0-9_\-]", "_", text.replace(" ", "").replace(".", ""))

    base, ext = clean(base) or "_", clean(ext)[:3]
    n = 1
    while True:
        tail = f"~{n}"
        candidate = (base[: 8 - len(tail)] + tail).ljust(8).encode() + ext.ljust(3).encode()
        if candidate not in used:
            return candidate, True
        n += 1


def _lfn_entries(name: str, checksum: int) -> list[bytes]:
    units = name.encode("utf-16-le")
    count = -(-len(units) // 26)
    if len(units) % 26:
        units += b"\0\0"
    units = units.ljust(count * 26, b"\xff")
    entries = []
    for seq in range(count, 0, -1):  # stored last part first
        part = units[(seq - 1) * 26 : seq * 26]
        ordinal = seq | (0x40 if seq == count else 0)
        entries.append(
            struct.pack(
                "<B10sBBB12sH4s", ordinal, part[:10], 0x0F, 0, checksum, part[10:22], 0, part[22:]
            )
        )
    return entries


def _short_entry(name11: bytes, attr: int, cluster: int, size: int, nt: int = 0) -> bytes:
    return struct.pack(
        "<11sBBBHHHHHHHI",
        name11,
        attr,
        nt,
        0,
        0,
        _DATE,
        _DATE,
        cluster >> 16,
        0,
        _DATE,
        cluster & 0xFFFF,
        size,
    )


def write_fat(
    f: BinaryIO,
    offset: int,
    files: Mapping[str, bytes],
    bits: int = 16,
    *,
    dirs: Collection[str] = (),
    fragmented: bool = False,
    bad_lfn_checksum: Collection[str] = (),
    geometry: Geometry | None = None,
    attributes: Mapping[str, int] | None = None,
    lower_case: Collection[str] = (),
    label_lfn: bool = False,
) -> FatLayout:
    """Write a FAT``bits`` filesystem holding ``files`` (and empty ``dirs``) at ``offset``.

    ``geometry`` replaces the preset for ``bits``; ``attributes`` sets a path's attribute byte
    (default 0x20, 0x10 for directories); paths in ``lower_case`` get an upper-case 8.3 entry
    with the NT lower-case flags (0x18) and no long name, as mtools writes ``syslinux.cfg``;
    ``label_lfn`` puts a long-name entry before a mixed-case volume label, as mtools does.
    """
    g = geometry or GEOMETRIES[bits]
    bits = g.bits
    attrs = dict(attributes or {})
    fat_sectors, clusters = fat_sectors_for(g)
    root_sectors = (g.root_entries * 32 + SECTOR - 1) // SECTOR
    cluster_bytes = g.sectors_per_cluster * SECTOR
    fat_start = offset + g.reserved * SECTOR
    fat_offsets = tuple(fat_start + i * fat_sectors * SECTOR for i in range(g.fats))
    root_start = fat_start + g.fats * fat_sectors * SECTOR
    data_start = root_start + root_sectors * SECTOR

    root = _Node("", None)
    for path, data in [*((d, None) for d in dirs), *files.items()]:
        node = root
        parts = path.split("/")
        for i, part in enumerate(parts):
            leaf = i == len(parts) - 1
            # FAT names are case-insensitive: "efi" and "EFI" are one directory.
            node = node.children.setdefault(part.casefold(), _Node(part, data if leaf else None))

    free = list(range(2, clusters + 2))
    if fragmented:
        random.Random(4).shuffle(free)
    fat = bytearray(fat_sectors * SECTOR)
    eoc = (1 << bits) - 1 if bits < 32 else 0x0FFFFFFF
    set_fat_entry(fat, bits, 0, (eoc & ~0xFF) | g.media)
    set_fat_entry(fat, bits, 1, eoc)

    def allocate(node: _Node, nbytes: int) -> None:
        count = -(-nbytes // cluster_bytes)
        node.clusters = [free.pop(0) for _ in range(count)]
        for here, after in zip(node.clusters, [*node.clusters[1:], eoc], strict=False):
            set_fat_entry(fat, bits, here, after)

    def layout_dir(node: _Node, is_root: bool) -> int:
        """Give the directory's children short names; return its size in entries."""
        used: set[bytes] = set()
        entries = 1 if is_root else 2  # the volume label, or "." and ".."
        if is_root and label_lfn:
            entries += len(_lfn_entries(g.label, 0))
        for child in node.children.values():
            child.short, child.long = _short_alias(child.name, used)
            if child.name in lower_case:
                child.short, child.long = _short_alias(child.name.upper(), used)[0], False
            used.add(child.short)
            entries += 1 + (len(_lfn_entries(child.name, 0)) if child.long else 0)
        return entries

    def allocate_tree(node: _Node, is_root: bool) -> None:
        entries = layout_dir(node, is_root)
        if not is_root or bits == 32:
            allocate(node, max(1, entries) * 32)
        elif entries > g.root_entries:
            raise ValueError("too many entries for the fixed root directory")
        for child in node.children.values():
            if child.data is None:
                allocate_tree(child, False)
            else:
                allocate(child, len(child.data))

    allocate_tree(root, True)
    chains: dict[str, list[int]] = {}
    entry_offsets: dict[str, int] = {}

    def position(node: _Node, index: int) -> int:
        """Absolute offset of entry ``index`` of a directory."""
        if not node.clusters:
            return root_start + index * 32
        cluster = node.clusters[index * 32 // cluster_bytes]
        return data_start + (cluster - 2) * cluster_bytes + index * 32 % cluster_bytes

    def write_data(node: _Node, data: bytes) -> None:
        for i, cluster in enumerate(node.clusters):
            f.seek(data_start + (cluster - 2) * cluster_bytes)
            f.write(data[i * cluster_bytes : (i + 1) * cluster_bytes])

    def write_tree(node: _Node, path: str, parent_cluster: int) -> None:
        chains[path] = node.clusters
        first = node.clusters[0] if node.clusters else 0
        entries: list[bytes] = []
        if not path:
            label11 = g.label.upper().ljust(11).encode()
            if label_lfn:
                entries.extend(_lfn_entries(g.label, lfn_checksum(label11)))
            entries.append(_short_entry(label11, 0x08, 0, 0))
        else:
            entries.append(_short_entry(b".          ", 0x10, first, 0))
            entries.append(_short_entry(b"..         ", 0x10, parent_cluster, 0))
        for child in node.children.values():
            child_path = f"{path}/{child.name}" if path else child.name
            if child.long:
                checksum = lfn_checksum(child.short)
                if child_path in bad_lfn_checksum:
                    checksum ^= 0x5A
                entries.extend(_lfn_entries(child.name, checksum))
            entry_offsets[child_path] = position(node, len(entries))
            child_first = child.clusters[0] if child.clusters else 0
            nt = 0x18 if child.name in lower_case else 0
            if child.data is None:
                attr = attrs.get(child_path, 0x10)
                entries.append(_short_entry(child.short, attr, child_first, 0, nt))
                # ".." of a top-level directory is 0, meaning "the root", even on FAT32.
                write_tree(child, child_path, first if path else 0)
            else:
                attr = attrs.get(child_path, 0x20)
                entries.append(_short_entry(child.short, attr, child_first, len(child.data), nt))
                chains[child_path] = child.clusters
                write_data(child, child.data)
        table = b"".join(entries)
        if node.clusters:
            write_data(node, table)
        else:
            f.seek(root_start)
            f.write(table)

    write_tree(root, "", 0)

    boot = bytearray(SECTOR)
    boot[0:3] = g.jump or (b"\xeb\x58\x90" if bits == 32 else b"\xeb\x3c\x90")
    boot[3:11] = g.oem
    small = bits != 32 and g.total_sectors < 0x10000
    struct.pack_into(
        "<HBHBHHBHHHII",
        boot,
        11,
        SECTOR,
        g.sectors_per_cluster,
        g.reserved,
        g.fats,
        g.root_entries,
        g.total_sectors if small else 0,
        g.media,
        0 if bits == 32 else fat_sectors,
        g.sectors_per_track,
        g.heads,
        offset // SECTOR if g.hidden_sectors is None else g.hidden_sectors,
        0 if small else g.total_sectors,
    )
    label, serial = g.label.ljust(11).encode(), g.serial
    fstype = f"FAT{bits}".ljust(8).encode()
    if bits == 32:
        root_cluster = root.clusters[0]
        struct.pack_into(
            "<IHHIHH12sBBBI11s8s", boot, 36, fat_sectors, 0, 0, root_cluster, 1, 6,
            bytes(12), 0x80, 0, 0x29, serial, label, fstype,
        )  # fmt: skip
    else:
        drive = g.drive if g.drive is not None else 0x00 if bits == 12 else 0x80
        struct.pack_into("<BBBI11s8s", boot, 36, drive, 0, 0x29, serial, label, fstype)
    boot[510:512] = b"\x55\xaa"
    f.seek(offset)
    f.write(boot)
    if bits == 32:
        fsinfo = bytearray(SECTOR)
        struct.pack_into("<I", fsinfo, 0, 0x41615252)
        # Free count exact; next-free hint "unknown", as allocation may have been scattered.
        struct.pack_into("<III", fsinfo, 484, 0x61417272, len(free), 0xFFFFFFFF)
        struct.pack_into("<I", fsinfo, 508, 0xAA550000)
        for sector, content in ((1, fsinfo), (6, boot), (7, fsinfo)):  # 6, 7: backups
            f.seek(offset + sector * SECTOR)
            f.write(content)
    for fat_offset in fat_offsets:
        f.seek(fat_offset)
        f.write(fat)
    size = g.total_sectors * SECTOR
    return FatLayout(offset, size, bits, clusters, fat_offsets, len(fat), chains, entry_offsets)


def _mbr(entries: Mapping[int, tuple[int, int, int]], *, active: int | None = None) -> bytes:
    """A boot sector with MBR code and the given {number: (type, first LBA, sectors)}."""
    mbr = bytearray(SECTOR)
    mbr[: len(MBR_CODE)] = MBR_CODE
    for number, (kind, start, count) in entries.items():
        status = 0x80 if number == active else 0x00
        # CHS fields hold the "beyond CHS range" marker; every reader since 1998 uses LBA.
        entry = struct.pack(
            "<B3sB3sII", status, b"\xfe\xff\xff", kind, b"\xfe\xff\xff", start, count
        )
        mbr[446 + 16 * (number - 1) : 462 + 16 * (number - 1)] = entry
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def whole_disk(path: Path, files: Mapping[str, bytes], bits: int = 16, **kw: Any) -> FatLayout:
    """A "superfloppy": one FAT filesystem from byte 0, no partition table."""
    with path.open("wb") as f:
        layout = write_fat(f, 0, files, bits, **kw)
        f.truncate(layout.size)
    return layout


def mbr_disk(
    path: Path,
    files: Mapping[str, bytes],
    bits: int = 16,
    *,
    partition: int = 4,
    kind: int = 0xEF,
    others: Mapping[int, tuple[int, int, int]] | None = None,
    **kw: Any,
) -> FatLayout:
    """An MBR disk with the FAT in primary ``partition`` (4, like iPXE's genfsimg).

    ``others`` adds entries {number: (type, first LBA, sectors)}; their space reads as zeros.
    """
    with path.open("wb") as f:
        layout = write_fat(f, PARTITION_START * SECTOR, files, bits, **kw)
        sectors = layout.size // SECTOR
        f.seek(0)
        entries = {**(others or {}), partition: (kind, PARTITION_START, sectors)}
        f.write(_mbr(entries, active=partition))
        f.truncate(layout.offset + layout.size)
    return layout


def bios_disk(path: Path, *, extra_bytes: int = 0) -> None:
    """A legacy-BIOS disk: MBR boot code and one Linux partition, no FAT anywhere."""
    sectors = 2048
    with path.open("wb") as f:
        f.write(_mbr({1: (0x83, PARTITION_START, sectors)}, active=1))
        f.truncate((PARTITION_START + sectors) * SECTOR + extra_bytes)


def gpt_disk(
    path: Path, files: Mapping[str, bytes], bits: int = 16, *, index: int = 1, **kw: Any
) -> FatLayout:
    """A GPT disk: protective MBR, both GPT copies, the FAT as EFI system partition ``index``."""
    entry_count, entry_size = 128, 128
    entry_sectors = entry_count * entry_size // SECTOR
    with path.open("wb") as f:
        layout = write_fat(f, PARTITION_START * SECTOR, files, bits, **kw)
        last_lba = PARTITION_START + layout.size // SECTOR - 1
        total = last_lba + 1 + 1 + entry_sectors  # the backup array and header follow
        table = bytearray(entry_count * entry_size)
        struct.pack_into(
            "<16s16sQQQ72s",
            table,
            (index - 1) * entry_size,
            ESP_TYPE.bytes_le,
            uuid.UUID(int=0x5EED).bytes_le,
            PARTITION_START,
            last_lba,
            0,
            "EFI system partition".encode("utf-16-le"),
        )
        table_crc = zlib.crc32(table)

        def header(my_lba: int, other_lba: int, entries_lba: int) -> bytes:
            fields = [b"EFI PART", 0x00010000, 92, 0, 0, my_lba, other_lba, 1 + 1 + entry_sectors]
            fields += [total - 2 - entry_sectors, uuid.UUID(int=0xD15C).bytes_le, entries_lba]
            fields += [entry_count, entry_size, table_crc]
            raw = struct.pack("<8sIIIIQQQQ16sQIII", *fields)
            fields[3] = zlib.crc32(raw)
            return struct.pack("<8sIIIIQQQQ16sQIII", *fields)

        f.seek(0)
        f.write(_mbr({1: (0xEE, 1, min(total - 1, 0xFFFFFFFF))}))
        for header_lba, table_lba, other in (
            (1, 2, total - 1),
            (total - 1, total - 1 - entry_sectors, 1),
        ):
            f.seek(table_lba * SECTOR)
            f.write(table)
            f.seek(header_lba * SECTOR)
            f.write(header(header_lba, other, table_lba))
        f.truncate(total * SECTOR)
    return layout


def patch(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes at ``offset`` in place."""
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)
