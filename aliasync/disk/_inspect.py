"""Inspect a disk image: its container, which firmware boots it, and the evidence for that.

ImportImage needs a format, a boot mode and an architecture, and a wrong guess gives an image
that imports fine but never boots. Rather than trusting file names or partition type bytes,
this reads the image itself, as firmware would:

* the container (RAW, QCOW2 or VHD; others are refused with what to do instead);
* a whole-disk FAT filesystem, or every partition of an MBR or GPT disk tried as FAT, looking
  for the removable-media loaders ``EFI/BOOT/BOOTX64.EFI`` and ``EFI/BOOT/BOOTAA64.EFI``;
* evidence that BIOS boots it too: a GPT BIOS boot partition, GRUB in the MBR, or SYSLINUX
  with a configuration on a FAT.

No loader: BIOS. Loaders: UEFI, or UEFI-Preferred when BIOS boots the disk too. Only the few
sectors needed are read, so inspecting a multi-GiB image is instantaneous.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from aliasync._exceptions import AliasyncError, InvalidImageError
from aliasync.disk._containers import ContainerError, DiskFormat, open_virtual_disk
from aliasync.disk._fat import FatCorruptError, FatVolume, TruncatedError, looks_like_fat, read_at
from aliasync.disk._partitions import BIOS_BOOT, ESP, CorruptTableError, read_partitions

__all__ = ["MAX_DISK_GIB", "BootMode", "DiskImage", "boot_suffix", "inspect_image"]

GIB = 1 << 30
MAX_DISK_GIB = 2048  # DiskImageSize of a system disk, and at least the file's size
BootMode = Literal["BIOS", "UEFI", "UEFI-Preferred"]
Architecture = Literal["x86_64", "arm64"]

# The UEFI removable-media paths: what firmware boots from a disk with no boot entries,
# which is exactly the situation of a freshly imported cloud image.
_LOADERS: dict[str, Architecture] = {
    "EFI/BOOT/BOOTX64.EFI": "x86_64",
    "EFI/BOOT/BOOTAA64.EFI": "arm64",
}
_SYSLINUX_CONFIGS = ("syslinux.cfg", "syslinux/syslinux.cfg", "boot/syslinux/syslinux.cfg")
_NOT_AN_IMAGE = "is not a disk image (no boot signature, partition table or FAT filesystem)"
_SECTOR = 512


@dataclass(frozen=True)
class DiskImage:
    """What ImportImage needs to know about a disk image, and why."""

    path: Path
    size: int  # bytes in the file
    boot_mode: BootMode
    architecture: Architecture
    loaders: frozenset[str]  # architectures of the EFI loaders found
    suffix: str  # appended to the image name and family, e.g. "-uefi-x86-64"
    disk_image_size_gib: int  # DiskImageSize: virtual and file size, rounded up to GiB
    format: DiskFormat = "RAW"
    virtual_size: int = 0  # bytes of the disk inside the container
    evidence: str = ""  # e.g. "UEFI x86_64: EFI/BOOT/BOOTX64.EFI on the FAT in MBR partition 4"
    bios_bootable: bool = False  # evidence that BIOS boots it too, besides any EFI loader


@dataclass
class _Findings:
    loaders: dict[Architecture, tuple[str, str]] = field(default_factory=dict)  # (path, place)
    bios: list[str] = field(default_factory=list)  # evidence that BIOS boots the disk
    notes: list[str] = field(default_factory=list)  # what else was looked at, for the evidence
    any_filesystem: bool = False


def boot_suffix(boot_mode: BootMode, architecture: str, multi: bool) -> str:
    """The name and family suffix: "" (BIOS), "-uefi-x86-64", "-hybrid-multi", ..."""
    if boot_mode == "BIOS":
        return ""
    kind = "-uefi" if boot_mode == "UEFI" else "-hybrid"
    return f"{kind}-{'multi' if multi else architecture.replace('_', '-')}"


def inspect_image(path: str | os.PathLike[str]) -> DiskImage:
    """Inspect the disk image at ``path``; raise InvalidImageError if it is not usable."""
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
        with open(where, "rb") as f, open_virtual_disk(f, size) as disk:
            _check_size(where, size, disk.size, disk.format == "RAW")
            try:
                findings = _scan(disk.stream, disk.size, where)
            except (AliasyncError, TruncatedError, FatCorruptError, CorruptTableError, OSError):
                raise
            except Exception as exc:
                if disk.format == "RAW":
                    raise
                # dissect's own failure on a corrupt table deep inside the container
                raise ContainerError(f"is a corrupt {disk.format} image: {exc}") from None
    except ContainerError as exc:
        raise InvalidImageError(where, str(exc)) from None
    except TruncatedError as exc:
        raise InvalidImageError(where, f"is truncated: {exc}") from None
    except FatCorruptError as exc:
        raise InvalidImageError(where, f"corrupt FAT filesystem: {exc}") from None
    except CorruptTableError as exc:
        raise InvalidImageError(where, f"corrupt partition table: {exc}") from None
    except OSError as exc:
        reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
        raise InvalidImageError(where, f"cannot be read: {reason}") from None
    boot_mode, architecture, evidence = _decide(findings)
    arches = frozenset(findings.loaders)
    return DiskImage(
        path=Path(where),
        size=size,
        boot_mode=boot_mode,
        architecture=architecture,
        loaders=arches,
        suffix=boot_suffix(boot_mode, architecture, len(arches) > 1),
        disk_image_size_gib=max(1, -(-max(size, disk.size) // GIB)),
        format=disk.format,
        virtual_size=disk.size,
        evidence=evidence,
        bios_bootable=bool(findings.bios),
    )


def _check_size(where: str, file_size: int, virtual_size: int, raw: bool) -> None:
    """DiskImageSize must cover both the disk and the file, and is at most 2048 GiB."""
    biggest = max(file_size, virtual_size)
    if biggest > MAX_DISK_GIB * GIB:
        which = (
            "the disk" if raw else "its virtual disk" if virtual_size >= file_size else "the file"
        )
        raise InvalidImageError(
            where,
            f"is too large: {which} is {biggest / GIB:.1f} GiB, and ECS imports a system disk"
            f" of at most {MAX_DISK_GIB} GiB",
        )


def _decide(found: _Findings) -> tuple[BootMode, Architecture, str]:
    """Boot mode, architecture and a one-line account of why."""
    if not found.loaders:
        detail = f" ({'; '.join(found.notes)})" if found.notes else ""
        bios = f"{', '.join(found.bios)}; " if found.bios else ""
        return "BIOS", "x86_64", f"BIOS: {bios}no EFI loader on any filesystem{detail}"
    # With both loaders the image is registered as x86_64: an ECS image has a single
    # Architecture attribute, x86_64 instance types are the vast majority, and BOOTX64.EFI
    # is what their firmware boots. An arm64 instance would still find BOOTAA64.EFI on the
    # same disk, but ECS only offers arm64 images to arm64 instance types, so registering
    # a multi image as arm64 would hide it from almost everyone.
    architecture: Architecture = "x86_64" if "x86_64" in found.loaders else "arm64"
    arches = "x86_64 and arm64 (registered as x86_64)" if len(found.loaders) > 1 else architecture
    by_place: dict[str, list[str]] = {}
    for arch in ("x86_64", "arm64"):
        if arch in found.loaders:
            loader, place = found.loaders[arch]
            by_place.setdefault(place, []).append(loader)
    where = "; ".join(f"{' and '.join(names)} on {place}" for place, names in by_place.items())
    if found.bios and architecture == "x86_64":
        also = ", ".join(found.bios)
        return "UEFI-Preferred", architecture, f"UEFI-Preferred {arches}: {where}, and {also}"
    return "UEFI", architecture, f"UEFI {arches}: {where}"


def _scan(f: BinaryIO, size: int, where: str) -> _Findings:
    """Everything boot-related on the disk; InvalidImageError if it is no disk at all."""
    found = _Findings()
    f.seek(0)
    first = f.read(_SECTOR)
    if looks_like_fat(first):
        # A "superfloppy": the whole disk is one FAT filesystem, no partition table.
        _look_in_fat(f, size, 0, size, "the FAT filling the whole disk", found)
        return found
    has_signature = len(first) == _SECTOR and first[510:512] == b"\x55\xaa"
    if has_signature and b"GRUB" in first[:440]:
        found.bios.append("GRUB in the MBR")
    for part in read_partitions(f, size, first):
        if part.gpt_type == BIOS_BOOT:
            found.bios.append(f"a BIOS boot partition ({part.label})")
            continue
        if part.offset + _SECTOR > size:
            if part.gpt_type == ESP or part.mbr_type == 0xEF:
                raise TruncatedError(
                    f"{part.label} ({part.kind}) starts at byte {part.offset},"
                    f" past the end of the disk ({size} bytes)"
                )
            found.notes.append(f"{part.label}, {part.kind}, starts past the end of the file")
            continue
        sector = read_at(f, size, part.offset, _SECTOR, f"{part.label} first sector")
        if looks_like_fat(sector):
            _look_in_fat(f, size, part.offset, part.length, f"the FAT in {part.label}", found)
        else:
            found.notes.append(f"{part.label}, {part.kind}, holds no FAT filesystem")
    if not (has_signature or found.any_filesystem):
        raise InvalidImageError(where, _NOT_AN_IMAGE)
    # A boot signature with no FAT (or FATs without loaders) is a legacy-BIOS disk, e.g.
    # iPXE's own BIOS ipxe.usb, an isohybrid image or a classic MBR boot loader.
    return found


def _look_in_fat(
    f: BinaryIO, size: int, offset: int, length: int, place: str, found: _Findings
) -> None:
    try:
        volume = FatVolume(f, size, offset, length)
        found.any_filesystem = True
        for loader, arch in _LOADERS.items():
            entry = volume.find(loader)
            if entry is not None and not entry.is_dir and arch not in found.loaders:
                found.loaders[arch] = (loader, place)
        syslinux = volume.find("ldlinux.sys")
        if syslinux is not None and any(volume.find(c) for c in _SYSLINUX_CONFIGS):
            found.bios.append(f"SYSLINUX configured on {place}")
    except (FatCorruptError, TruncatedError) as exc:
        if offset == 0:
            raise
        raise type(exc)(f"{exc} (in {place.removeprefix('the FAT in ')})") from None
