"""A small read-only FAT12/16/32 reader: just enough to look up a file by path.

It reads single sectors with seek/read, so a multi-GiB image costs a few KiB of I/O. Every
on-disk number is checked before it is used; problems surface as :class:`FatCorruptError` or
:class:`TruncatedError` (never ``IndexError`` or ``struct.error``), which the caller turns into
a user-facing error naming the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

_ATTR_VOLUME = 0x08
_ATTR_DIRECTORY = 0x10
_ATTR_LFN = 0x0F
_ENTRY = 32
_VALID_SECTOR_SIZES = (512, 1024, 2048, 4096)


class FatCorruptError(Exception):
    """The filesystem's own structures contradict themselves."""


class TruncatedError(Exception):
    """A structure points past the end of the file."""


def read_at(f: BinaryIO, file_size: int, pos: int, n: int, what: str) -> bytes:
    """Exactly ``n`` bytes at ``pos``; a short read means the image was cut short."""
    if pos < 0 or pos + n > file_size:
        raise TruncatedError(
            f"{what} at byte {pos} lies past the end of the file ({file_size} bytes)"
        )
    f.seek(pos)
    data = f.read(n)
    if len(data) != n:
        # The file shrank under us, or the filesystem lied about its size.
        raise TruncatedError(f"{what} at byte {pos}: the file ended after {len(data)} of {n} bytes")
    return data


def looks_like_fat(sector: bytes) -> bool:
    """Whether a first sector claims to be a FAT boot sector.

    A claim is a jump instruction plus either a "FAT..." type label behind an extended boot
    signature or a BPB whose basic fields are plausible. This is deliberately weaker than the
    full validation in :class:`FatVolume`: a sector that claims to be FAT but has impossible
    values is reported as corrupt rather than silently skipped. MBR boot code rarely starts
    with a jump (GRUB's does) but has no FAT label and a zeroed BPB, so it is not mistaken.
    """
    if len(sector) < 512 or not ((sector[0] == 0xEB and sector[2] == 0x90) or sector[0] == 0xE9):
        return False
    if sector[38] in (0x28, 0x29) and sector[54:57] == b"FAT":
        return True
    if sector[66] in (0x28, 0x29) and sector[82:87] == b"FAT32":
        return True
    bps, spc, reserved, nfats = struct.unpack_from("<HBHB", sector, 11)
    return (
        bps in _VALID_SECTOR_SIZES
        and spc != 0
        and spc & (spc - 1) == 0
        and reserved >= 1
        and nfats in (1, 2)
        and (sector[21] == 0xF0 or sector[21] >= 0xF8)
    )


@dataclass(frozen=True)
class Entry:
    """One directory entry, with its long name when a valid LFN run preceded it."""

    short_name: str
    long_name: str | None
    is_dir: bool
    cluster: int
    size: int

    def matches(self, name: str) -> bool:
        """Case-insensitive match on either name, as FAT and UEFI firmware do."""
        want = name.casefold()
        return self.short_name.casefold() == want or (
            self.long_name is not None and self.long_name.casefold() == want
        )


def _short_name(raw: bytes) -> str:
    # 0x05 stands for a real leading 0xE5, which itself marks deleted entries.
    if raw[0] == 0x05:
        raw = b"\xe5" + raw[1:]
    base = raw[:8].decode("cp437").rstrip(" ")
    ext = raw[8:11].decode("cp437").rstrip(" ")
    return f"{base}.{ext}" if ext else base


def lfn_checksum(name11: bytes) -> int:
    """The checksum each LFN entry carries of the 11-byte short name it belongs to."""
    total = 0
    for byte in name11:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


class FatVolume:
    """A FAT filesystem at byte ``offset`` of an open image, at most ``limit`` bytes long."""

    def __init__(self, f: BinaryIO, file_size: int, offset: int, limit: int) -> None:
        self._f = f
        self._file_size = file_size
        self._fat_cache: dict[int, bytes] = {}
        boot = read_at(f, file_size, offset, 512, "FAT boot sector")
        (bps, spc, reserved, nfats, root_entries, total16, _media, fat16) = struct.unpack_from(
            "<HBHBHHBH", boot, 11
        )
        (total32,) = struct.unpack_from("<I", boot, 32)
        fat32_size, ext_flags, _version, root_cluster = struct.unpack_from("<IHHI", boot, 36)
        if bps not in _VALID_SECTOR_SIZES:
            raise FatCorruptError(f"bytes per sector is {bps}, not a power of two from 512 to 4096")
        if spc == 0 or spc & (spc - 1):
            raise FatCorruptError(f"sectors per cluster is {spc}, not a power of two from 1 to 128")
        if reserved == 0:
            raise FatCorruptError("no reserved sectors, so no room for the boot sector")
        if nfats == 0:
            raise FatCorruptError("the number of FAT copies is zero")
        fat_sectors = fat16 or fat32_size
        total = total16 or total32
        if fat_sectors == 0 or total == 0:
            raise FatCorruptError("FAT size or total sector count is zero")
        root_sectors = (root_entries * _ENTRY + bps - 1) // bps
        self._bps = bps
        self._cluster_bytes = spc * bps
        self._fat_start = offset + reserved * bps
        self._root_start = self._fat_start + nfats * fat_sectors * bps
        self._root_bytes = root_sectors * bps
        self._data_start = self._root_start + self._root_bytes
        meta_sectors = reserved + nfats * fat_sectors + root_sectors
        if meta_sectors >= total:
            raise FatCorruptError(
                f"{meta_sectors} metadata sectors leave no data area in {total} sectors"
            )
        self.clusters = (total - meta_sectors) // spc
        # Microsoft's rule: the cluster count alone decides the FAT type; labels are decoration.
        self.bits = 12 if self.clusters < 4085 else 16 if self.clusters < 65525 else 32
        if self.bits == 32:
            if fat16 or root_entries:
                raise FatCorruptError("FAT32 volume with a FAT16-style FAT size or root directory")
            active = ext_flags & 0x0F if ext_flags & 0x80 else 0
            if active >= nfats:
                raise FatCorruptError(f"active FAT {active} but only {nfats} copies")
            self._fat_start += active * fat_sectors * bps
            self._check_cluster(root_cluster, "root directory")
            self._root_cluster = root_cluster
        elif root_entries == 0:
            raise FatCorruptError(f"FAT{self.bits} volume with no root directory entries")
        needed = ((self.clusters + 2) * self.bits + 7) // 8
        if needed > fat_sectors * bps:
            raise FatCorruptError(
                f"a FAT of {fat_sectors} sectors cannot map {self.clusters} clusters"
            )
        size = total * bps
        if offset + size > file_size:
            raise TruncatedError(
                f"the FAT filesystem at byte {offset} needs {size} bytes,"
                f" but only {file_size - offset} remain in the file"
            )
        if size > limit:
            raise FatCorruptError(
                f"the filesystem claims {size} bytes but its partition holds only {limit}"
            )

    def _check_cluster(self, cluster: int, what: str) -> None:
        if not 2 <= cluster < self.clusters + 2:
            raise FatCorruptError(
                f"{what} refers to cluster {cluster}, outside 2..{self.clusters + 1}"
            )

    def _next(self, cluster: int) -> int | None:
        """The FAT entry for ``cluster``: the next cluster, or None at end of chain."""
        pos = cluster * self.bits // 8
        sector, within = divmod(pos, self._bps)
        data = self._fat_sector(sector)
        if within + 4 > self._bps:
            # A FAT12 entry can straddle two sectors.
            data = data + self._fat_sector(sector + 1)
        if self.bits == 12:
            value = int.from_bytes(data[within : within + 2], "little")
            value = value >> 4 if cluster & 1 else value & 0xFFF
            end = 0xFF8
        elif self.bits == 16:
            value = int.from_bytes(data[within : within + 2], "little")
            end = 0xFFF8
        else:
            value = int.from_bytes(data[within : within + 4], "little") & 0x0FFFFFFF
            end = 0x0FFFFFF8
        if value >= end:
            return None
        if value in (0, 1, end - 1):
            kind = {0: "a free", 1: "a reserved", end - 1: "a bad"}[value]
            raise FatCorruptError(f"cluster chain runs into {kind} cluster after {cluster}")
        self._check_cluster(value, f"the FAT entry of cluster {cluster}")
        return value

    def _fat_sector(self, index: int) -> bytes:
        if index not in self._fat_cache:
            pos = self._fat_start + index * self._bps
            self._fat_cache[index] = read_at(self._f, self._file_size, pos, self._bps, "FAT sector")
        return self._fat_cache[index]

    def _chain(self, first: int, what: str) -> Iterator[bytes]:
        """The contents of each cluster of the chain starting at ``first``."""
        self._check_cluster(first, what)
        seen: set[int] = set()
        cluster: int | None = first
        while cluster is not None:
            if cluster in seen:
                raise FatCorruptError(
                    f"the cluster chain of {what} loops back to cluster {cluster}"
                )
            seen.add(cluster)
            pos = self._data_start + (cluster - 2) * self._cluster_bytes
            yield read_at(self._f, self._file_size, pos, self._cluster_bytes, f"{what} cluster")
            cluster = self._next(cluster)

    def _entries(self, chunks: Iterator[bytes]) -> Iterator[Entry]:
        parts: dict[int, bytes] = {}
        expect = checksum = 0
        for chunk in chunks:
            for at in range(0, len(chunk) - _ENTRY + 1, _ENTRY):
                raw = chunk[at : at + _ENTRY]
                if raw[0] == 0x00:
                    return
                if raw[0] == 0xE5:
                    parts, expect = {}, 0
                    continue
                if raw[11] & 0x3F == _ATTR_LFN:
                    seq = raw[0] & 0x1F
                    if raw[0] & 0x40:
                        parts, expect, checksum = {}, seq, raw[13]
                    if seq == 0 or seq != expect or raw[13] != checksum:
                        # An orphaned or interleaved LFN run: ignore it, keep the short name.
                        parts, expect = {}, 0
                        continue
                    parts[seq] = raw[1:11] + raw[14:26] + raw[28:32]
                    expect -= 1
                    continue
                long_name = None
                if parts and expect == 0 and checksum == lfn_checksum(raw[:11]):
                    units = b"".join(parts[i] for i in sorted(parts))
                    text = units.decode("utf-16-le", errors="replace")
                    long_name = text.split("\x00", 1)[0]
                parts, expect = {}, 0
                if raw[11] & _ATTR_VOLUME:
                    continue
                high, low, size = struct.unpack_from("<H4xHI", raw, 20)
                yield Entry(
                    short_name=_short_name(raw[:11]),
                    long_name=long_name,
                    is_dir=bool(raw[11] & _ATTR_DIRECTORY),
                    cluster=(high << 16 | low) if self.bits == 32 else low,
                    size=size,
                )

    def _root(self) -> Iterator[bytes]:
        if self.bits == 32:
            yield from self._chain(self._root_cluster, "the root directory")
        else:
            yield read_at(
                self._f, self._file_size, self._root_start, self._root_bytes, "root directory"
            )

    def find(self, path: str) -> Entry | None:
        """The entry at a "/"-separated path, matched case-insensitively, or None."""
        names = [part for part in path.split("/") if part]
        chunks = self._root()
        found: Entry | None = None
        for depth, name in enumerate(names):
            found = next((e for e in self._entries(chunks) if e.matches(name)), None)
            if found is None:
                return None
            if depth + 1 < len(names):
                if not found.is_dir:
                    return None
                chunks = self._chain(found.cluster, "/".join(names[: depth + 1]))
        return found
