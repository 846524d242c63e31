"""Turning input files into images ready to publish: inspected, hashed, named, and told how
they boot.

Everything here runs before the first cloud call, so bad input never leaves anything behind.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from aliasync._exceptions import InvalidImageError, InvalidNameError, UsageError
from aliasync.disk._inspect import BootMode, DiskImage, boot_suffix, inspect_image
from aliasync.pipeline._names import check_ecs_name, default_name

__all__ = [
    "ARCHITECTURES",
    "BOOT_MODES",
    "PreparedImage",
    "base_name",
    "check_boot_overrides",
    "file_sha256",
    "prepare_images",
]

_HASH_CHUNK = 1 << 20
BOOT_MODES: tuple[BootMode, ...] = ("BIOS", "UEFI", "UEFI-Preferred")
ARCHITECTURES = ("x86_64", "arm64", "i386")


@dataclass(frozen=True)
class PreparedImage:
    """One disk image, with the ECS name and family it will be published under, and how it
    will be registered (detected, or as ``--boot-mode``/``--arch`` say)."""

    disk: DiskImage
    sha256: str
    name: str
    family: str
    boot_mode: BootMode
    architecture: str
    warnings: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return self.disk.path

    @property
    def size(self) -> int:
        return self.disk.size

    @property
    def import_boot_mode(self) -> str:
        """What ImportImage is told: it takes BIOS or UEFI only, so UEFI-Preferred images are
        imported as UEFI and switched with ModifyImageAttribute once Available."""
        return "UEFI" if self.boot_mode == "UEFI-Preferred" else self.boot_mode

    @property
    def object_suffix(self) -> str:
        """The uploaded object's extension: what the bytes are."""
        return {"RAW": ".raw", "QCOW2": ".qcow2", "VHD": ".vhd"}[self.disk.format]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks (images can be many GiB)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise InvalidImageError(str(path), f"cannot be read: {exc.strerror}") from exc
    return digest.hexdigest()


def check_boot_overrides(boot_mode: str | None, architecture: str | None) -> None:
    """``--boot-mode`` and ``--arch`` on their own: known values, a combination ECS takes."""
    if boot_mode is not None and boot_mode not in BOOT_MODES:
        raise UsageError(f"boot mode {boot_mode!r} is not one of {', '.join(BOOT_MODES)}")
    if architecture is not None and architecture not in ARCHITECTURES:
        raise UsageError(f"architecture {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    if architecture == "arm64" and boot_mode in ("BIOS", "UEFI-Preferred"):
        raise UsageError(f"arm64 images boot UEFI only; --boot-mode {boot_mode} cannot apply")


def _registration(
    disk: DiskImage, boot_mode: str | None, architecture: str | None
) -> tuple[BootMode, str, str, tuple[str, ...]]:
    """(boot mode, architecture, suffix, warnings) for one image, overrides applied."""
    mode: BootMode = disk.boot_mode
    arch: str = disk.architecture
    warnings = []
    if boot_mode is not None and boot_mode != disk.boot_mode:
        mode = boot_mode  # type: ignore[assignment]  # checked by check_boot_overrides
        warnings.append(
            f"{disk.path}: registered as {boot_mode} as --boot-mode says, but the image looks"
            f" {disk.boot_mode} ({disk.evidence})"
        )
    if architecture is not None and architecture != disk.architecture:
        arch = architecture
        looks = "x86_64 or arm64" if len(disk.loaders) > 1 else disk.architecture
        if architecture not in disk.loaders or disk.boot_mode == "BIOS":
            warnings.append(
                f"{disk.path}: registered as {architecture} as --arch says, but the image looks"
                f" {looks} ({disk.evidence})"
            )
    if arch == "arm64" and mode != "UEFI":
        raise UsageError(
            f"{disk.path}: arm64 images boot UEFI only, but it would be registered as {mode}"
            " (give --boot-mode UEFI, or another --arch)"
        )
    multi = len(disk.loaders) > 1 and architecture is None
    return mode, arch, boot_suffix(mode, arch, multi), tuple(warnings)


# Prepared images by (file identity, naming and overrides): validating input before the first
# cloud call and then running the import reads and hashes each file once, not twice.
_CACHE: dict[tuple[object, ...], PreparedImage] = {}


def _prepare_one(
    path: Path, name: str, family: str, boot_mode: str | None, architecture: str | None
) -> PreparedImage:
    try:
        info = path.stat()
    except OSError:
        info = None
    key = (
        None if info is None else (str(path.resolve()), info.st_dev, info.st_ino, info.st_size,
                                   info.st_mtime_ns),
        name, family, boot_mode, architecture,
    )  # fmt: skip
    if info is not None and key in _CACHE:
        return _CACHE[key]
    prepared = _inspect_and_hash(path, name, family, boot_mode, architecture)
    if info is not None:
        _CACHE[key] = prepared
    return prepared


def _inspect_and_hash(
    path: Path, name: str, family: str, boot_mode: str | None, architecture: str | None
) -> PreparedImage:
    disk = inspect_image(path)
    mode, arch, suffix, warnings = _registration(disk, boot_mode, architecture)
    return PreparedImage(
        disk=disk,
        sha256=file_sha256(path),
        name=check_ecs_name(name + suffix, "image name"),
        family=check_ecs_name(family + suffix, "image family"),
        boot_mode=mode,
        architecture=arch,
        warnings=warnings,
    )


def base_name(name: str | None, family: str, today: datetime.date | None = None) -> str:
    """The name images get before their suffix: ``name``, or ``<family>-YYYYMMDD`` (UTC)."""
    return name or default_name(family, today or datetime.datetime.now(datetime.UTC).date())


async def prepare_images(
    paths: Sequence[str | Path],
    *,
    name: str | None = None,
    family: str = "ipxe",
    today: datetime.date | None = None,
    boot_mode: str | None = None,
    architecture: str | None = None,
) -> list[PreparedImage]:
    """Inspect, hash and name every image; raise UsageError on any bad input."""
    if not paths:
        raise InvalidNameError("no image files given")
    check_ecs_name(family, "image family")
    check_boot_overrides(boot_mode, architecture)
    base = base_name(name, family, today)
    check_ecs_name(base, "image name")
    images = []
    for path in paths:
        images.append(
            await anyio.to_thread.run_sync(
                _prepare_one, Path(path), base, family, boot_mode, architecture
            )
        )
    seen: dict[str, Path] = {}
    for image in images:
        if image.name in seen:
            raise InvalidNameError(
                f"{seen[image.name]} and {image.path} would both be published as "
                f"{image.name!r}: give them different names (one import per name)"
            )
        seen[image.name] = image.path
    return images
