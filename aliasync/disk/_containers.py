"""Disk containers: which format a file is, and the virtual disk inside it.

ImportImage takes RAW, VHD and QCOW2 (VMDK only as an invitational preview). A container is
recognised by its own magic, never by the file name, and its header is checked here before
anything reads through it, so that a corrupt or hostile header is refused in one sentence
instead of making the reader allocate or loop: versions, sizes, table extents, encryption,
backing files, external data files. The virtual disk is then read through
``dissect.hypervisor`` (a maintained reader; an optional dependency, see pyproject).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from aliasync.disk._fat import read_at

__all__ = ["ContainerError", "DiskFormat", "VirtualDisk", "open_virtual_disk"]

DiskFormat = Literal["RAW", "QCOW2", "VHD"]

_EXTRA = "pip install 'aliasync[containers]'"
# qemu's own limit on a QCOW2 L1 table (QCOW_MAX_L1_SIZE): a bigger one is corrupt or hostile.
_QCOW2_MAX_L1_BYTES = 32 << 20
_QCOW2_KNOWN_INCOMPATIBLE = (
    0x1F  # dirty, corrupt, external data file, compression type, extended L2
)
_VHD_FIXED, _VHD_DYNAMIC, _VHD_DIFFERENCING = 2, 3, 4
# Magic numbers of what people mistake for disk images, and what to do about each.
_NOT_IMPORTABLE: tuple[tuple[int, bytes, str], ...] = (
    (0, b"vhdxfile", "a VHDX image, which ImportImage does not take (RAW, VHD, QCOW2): "
     "convert it first, e.g. qemu-img convert -O qcow2 IN OUT"),
    (0, b"KDMV", "a VMDK image, which ECS imports only as an invitational preview: "
     "convert it first, e.g. qemu-img convert -O qcow2 IN OUT"),
    (0, b"COWD", "a VMDK (ESX sparse) image, which ECS imports only as an invitational "
     "preview: convert it first, e.g. qemu-img convert -O qcow2 IN OUT"),
    (0, b"# Disk DescriptorFile", "a VMDK descriptor, not a disk: convert the VMDK it "
     "describes first, e.g. qemu-img convert -O qcow2 IN OUT"),
    (64, b"\x7f\x10\xda\xbe", "a VirtualBox VDI image, which ImportImage does not take: "
     "convert it first, e.g. qemu-img convert -O qcow2 IN OUT"),
    (0, b"\x1f\x8b", "gzip-compressed: decompress it first"),
    (0, b"\xfd7zXZ\x00", "xz-compressed: decompress it first"),
    (0, b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first"),
    (0, b"BZh", "bzip2-compressed: decompress it first"),
    (0, b"PK\x03\x04", "a ZIP archive: extract the disk image first"),
)  # fmt: skip


class ContainerError(Exception):
    """A container that cannot be imported: unsupported, or corrupt."""


@dataclass(frozen=True)
class VirtualDisk:
    """The disk inside a file: its format, size and a seekable stream of its bytes."""

    format: DiskFormat
    size: int
    stream: BinaryIO
    detail: str  # e.g. "QCOW2 version 3", "VHD (dynamic)"


@contextmanager
def open_virtual_disk(f: BinaryIO, file_size: int) -> Iterator[VirtualDisk]:
    """The virtual disk in the open file ``f``: the file itself for a raw image."""
    head = f.read(4096)
    for offset, magic, problem in _NOT_IMPORTABLE:
        if head[offset : offset + len(magic)] == magic:
            raise ContainerError(f"is {problem}")
    footer = read_at(f, file_size, file_size - 512, 512, "VHD footer") if file_size >= 512 else b""
    if head[:4] == b"QFI\xfb":
        yield _qcow2(f, file_size)
    elif footer[:8] == b"conectix":
        yield _vhd(f, file_size, footer)
    elif head[:8] == b"conectix":
        # A dynamic VHD starts with a copy of its footer; the real one is missing.
        raise ContainerError("is a VHD whose footer is missing: the file is truncated")
    else:
        yield VirtualDisk("RAW", file_size, f, "raw")


def _dissect(what: str) -> Any:
    """The dissect.hypervisor disk module ``what``, or a refusal saying how to get it."""
    try:
        if what == "qcow2":
            from dissect.hypervisor.disk import qcow2 as module
        else:
            from dissect.hypervisor.disk import vhd as module
    except ImportError:
        name = "QCOW2" if what == "qcow2" else "VHD"
        raise ContainerError(
            f"is a {name} image; reading QCOW2 and VHD needs aliasync's optional"
            f" 'containers' extra ({_EXTRA}; it brings dissect.hypervisor, AGPL-3.0)"
        ) from None
    return module


def _qcow2(f: BinaryIO, file_size: int) -> VirtualDisk:
    header = read_at(f, file_size, 0, min(file_size, 112), "QCOW2 header")
    if len(header) < 72:
        raise ContainerError("is a QCOW2 image whose header is truncated")
    version, backing_at, backing_len, cluster_bits, size, crypt, l1_size, l1_at = (
        struct.unpack_from(">IQIIQIIQ", header, 4)
    )
    if version not in (2, 3):
        raise ContainerError(f"is a QCOW2 image of version {version} (only 2 and 3 exist)")
    if backing_at:
        name = _backing_name(f, file_size, backing_at, backing_len)
        raise ContainerError(
            f"is a QCOW2 overlay on the backing file {name}: ImportImage takes a standalone"
            " image; flatten it first, e.g. qemu-img convert -O qcow2 IN OUT"
        )
    if crypt:
        scheme = {1: "AES", 2: "LUKS"}.get(crypt, f"method {crypt}")
        raise ContainerError(
            f"is an encrypted QCOW2 image ({scheme}): ImportImage cannot read it; decrypt it"
            " first, e.g. qemu-img convert -O qcow2 with the key"
        )
    if not 9 <= cluster_bits <= 21:
        raise ContainerError(f"is a corrupt QCOW2 image: cluster size 2**{cluster_bits}")
    if size == 0:
        raise ContainerError("is a QCOW2 image of virtual size 0")
    features = 0
    if version == 3:
        if len(header) < 104:
            raise ContainerError("is a QCOW2 image whose header is truncated")
        (features,) = struct.unpack_from(">Q", header, 72)
        (header_length,) = struct.unpack_from(">I", header, 100)
        if not 104 <= header_length < 1 << cluster_bits:
            raise ContainerError(f"is a corrupt QCOW2 image: header length {header_length}")
    _qcow2_features(features)
    cluster = 1 << cluster_bits
    per_l2 = cluster // (16 if features & 0x10 else 8)
    needed = -(-size // (cluster * per_l2))
    if l1_size < needed or l1_size * 8 > _QCOW2_MAX_L1_BYTES:
        raise ContainerError(
            f"is a corrupt QCOW2 image: an L1 table of {l1_size} entries for {size} bytes"
        )
    if l1_at % cluster or l1_at + l1_size * 8 > file_size:
        raise ContainerError("is a truncated or corrupt QCOW2 image: its L1 table is missing")
    module = _dissect("qcow2")
    try:
        stream = module.QCow2(f).open()
    except RuntimeError as exc:  # zstd clusters without a zstd module
        raise ContainerError(f"is a QCOW2 image that cannot be read here: {exc}") from None
    except Exception as exc:
        raise ContainerError(f"is a corrupt QCOW2 image: {_short(exc)}") from None
    return VirtualDisk("QCOW2", size, stream, f"QCOW2 version {version}")


def _qcow2_features(features: int) -> None:
    if features & ~_QCOW2_KNOWN_INCOMPATIBLE:
        raise ContainerError(f"is a QCOW2 image with unknown features (0x{features:x})")
    if features & 0x2:
        raise ContainerError("is a QCOW2 image marked corrupt: repair it with qemu-img check")
    if features & 0x1:
        raise ContainerError(
            "is a QCOW2 image that was not closed cleanly: run qemu-img check -r all first"
        )
    if features & 0x4:
        raise ContainerError(
            "is a QCOW2 image whose data lives in an external file: ImportImage takes a"
            " standalone image; convert it first, e.g. qemu-img convert -O qcow2 IN OUT"
        )


def _backing_name(f: BinaryIO, file_size: int, at: int, length: int) -> str:
    if not 0 < length <= 1023 or at + length > file_size:
        return "(unreadable name)"
    raw = read_at(f, file_size, at, length, "QCOW2 backing file name")
    return repr(raw.decode("utf-8", "replace"))


def _vhd(f: BinaryIO, file_size: int, footer: bytes) -> VirtualDisk:
    (checksum,) = struct.unpack_from(">I", footer, 64)
    if checksum != ~sum(footer[:64] + bytes(4) + footer[68:]) & 0xFFFFFFFF:
        raise ContainerError("is a corrupt VHD image: its footer checksum does not match")
    data_at, current, disk_type = (
        struct.unpack_from(">Q", footer, 16)[0],
        struct.unpack_from(">Q", footer, 48)[0],
        struct.unpack_from(">I", footer, 60)[0],
    )
    if disk_type == _VHD_DIFFERENCING:
        raise ContainerError(
            "is a differencing VHD, which needs its parent: ImportImage takes a standalone"
            " image; merge it first, e.g. qemu-img convert -O vpc IN OUT"
        )
    if current == 0:
        raise ContainerError("is a VHD image of size 0")
    if disk_type == _VHD_FIXED:
        if data_at != 0xFFFFFFFFFFFFFFFF:
            raise ContainerError("is a corrupt VHD image: a fixed disk with a data offset")
        if current > file_size - 512:
            raise ContainerError(
                f"is truncated: the fixed VHD holds {current} bytes, but the file has only"
                f" {file_size - 512} before its footer"
            )
        kind = "fixed"
    elif disk_type == _VHD_DYNAMIC:
        _vhd_dynamic_header(f, file_size, data_at, current)
        kind = "dynamic"
    else:
        raise ContainerError(f"is a corrupt VHD image: disk type {disk_type}")
    module = _dissect("vhd")
    try:
        stream = module.VHD(f)
    except Exception as exc:
        raise ContainerError(f"is a corrupt VHD image: {_short(exc)}") from None
    return VirtualDisk("VHD", current, stream, f"VHD ({kind})")


def _vhd_dynamic_header(f: BinaryIO, file_size: int, at: int, current: int) -> None:
    if at % 512 or at + 1024 > file_size:
        raise ContainerError("is a truncated or corrupt VHD image: no dynamic disk header")
    header = read_at(f, file_size, at, 1024, "VHD dynamic disk header")
    if header[:8] != b"cxsparse":
        raise ContainerError("is a corrupt VHD image: no dynamic disk header")
    table_at, _version, entries, block = struct.unpack_from(">QIII", header, 16)
    if block < 512 or block & (block - 1) or block > 256 << 20:
        raise ContainerError(f"is a corrupt VHD image: block size {block}")
    if entries * block < current or table_at + entries * 4 > file_size:
        raise ContainerError("is a truncated or corrupt VHD image: its block table is missing")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
