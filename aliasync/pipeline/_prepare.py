"""Turning input files into images ready to publish: inspected, hashed and named.

Everything here runs before the first cloud call, so bad input never leaves anything behind.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from aliasync._exceptions import InvalidImageError, InvalidNameError
from aliasync.disk._inspect import DiskImage, inspect_image
from aliasync.pipeline._names import check_ecs_name, default_name

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class PreparedImage:
    """One disk image, with the ECS name and family it will be published under."""

    disk: DiskImage
    sha256: str
    name: str
    family: str

    @property
    def path(self) -> Path:
        return self.disk.path

    @property
    def size(self) -> int:
        return self.disk.size


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


def _prepare_one(path: Path, name: str, family: str) -> PreparedImage:
    disk = inspect_image(path)
    return PreparedImage(
        disk=disk,
        sha256=file_sha256(path),
        name=check_ecs_name(name + disk.suffix, "image name"),
        family=check_ecs_name(family + disk.suffix, "image family"),
    )


async def prepare_images(
    paths: Sequence[str | Path],
    *,
    name: str | None = None,
    family: str = "ipxe",
    today: datetime.date | None = None,
) -> list[PreparedImage]:
    """Inspect, hash and name every image; raise UsageError on any bad input."""
    if not paths:
        raise InvalidNameError("no image files given")
    check_ecs_name(family, "image family")
    base = name or default_name(family, today or datetime.datetime.now(datetime.UTC).date())
    check_ecs_name(base, "image name")
    images = []
    for path in paths:
        images.append(await anyio.to_thread.run_sync(_prepare_one, Path(path), base, family))
    seen: dict[str, Path] = {}
    for image in images:
        if image.name in seen:
            raise InvalidNameError(
                f"{seen[image.name]} and {image.path} would both be published as "
                f"{image.name!r}: give them different names (one import per name)"
            )
        seen[image.name] = image.path
    return images
