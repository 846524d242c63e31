"""What ImportImage finds in an OSS object: the disk inside its container.

A RAW object is the disk. QCOW2 and VHD objects are decoded (with dissect.hypervisor, the
same maintained reader aliasync's ``containers`` extra uses; the emulator never imports
aliasync's own code), so that an image's content digest is that of the virtual disk, and
"the right bytes arrived" can be checked the same way whatever the container.

Choices where the documentation is silent (docs/alibaba-api-facts.md, section 8):

* A ``Format`` that contradicts the object (RAW given for a QCOW2 file, say), an object that
  cannot be decoded, a QCOW2 with a backing file or encryption, and a VHDX or VMDK object
  make the import task fail (image ``CreateFailed``): the request itself is accepted, since
  ECS reads the object only once the task runs.
* An empty ``Format`` means "detect", as documented; detection is by magic number.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, BinaryIO

__all__ = ["DiskContent", "read_disk"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class DiskContent:
    """The disk an import would produce from one object, or why the import fails."""

    format: str  # what the object really is: RAW, QCOW2, VHD, VHDX or VMDK
    size: int  # bytes of the virtual disk
    digest: str  # hex SHA-256 of the virtual disk
    problem: str | None = None  # set: the import task fails with this reason


def _detect(f: BinaryIO, file_size: int) -> str:
    head = f.read(512)
    if head[:4] == b"QFI\xfb":
        return "QCOW2"
    if head[:8] == b"vhdxfile":
        return "VHDX"
    if head[:4] in (b"KDMV", b"COWD") or head.startswith(b"# Disk DescriptorFile"):
        return "VMDK"
    if file_size >= 512:
        f.seek(file_size - 512)
        if f.read(8) == b"conectix":
            return "VHD"
    return "RAW"


def read_disk(path: str, file_size: int, file_sha256: str, declared: str) -> DiskContent:
    """The disk in the object stored at ``path``, as ImportImage with ``Format=declared``
    ("" to detect) would read it."""
    with open(path, "rb") as f:
        actual = _detect(f, file_size)
        wanted = declared or actual
        failed = DiskContent(actual, file_size, file_sha256, None)
        if wanted != actual:
            return _fail(failed, f"the object is a {actual} image, not {wanted}")
        if actual in ("VHDX", "VMDK"):
            return _fail(failed, f"{actual} images cannot be imported")
        if actual == "RAW":
            return DiskContent("RAW", file_size, file_sha256)
        try:
            stream, size = _open(f, actual)
            digest = hashlib.sha256()
            done = 0
            while done < size:
                chunk = stream.read(min(_CHUNK, size - done))
                if not chunk:
                    return _fail(failed, f"the {actual} image ends before its virtual size")
                digest.update(chunk)
                done += len(chunk)
        except Exception as exc:  # dissect's failures: corrupt, encrypted, needs a backing file
            return _fail(failed, f"the {actual} image cannot be read: {exc}")
    return DiskContent(actual, size, digest.hexdigest())


def _open(f: BinaryIO, kind: str) -> tuple[Any, int]:
    if kind == "QCOW2":
        from dissect.hypervisor.disk.qcow2 import QCow2

        qcow = QCow2(f)
        return qcow.open(), int(qcow.size)
    from dissect.hypervisor.disk.vhd import VHD

    vhd = VHD(f)
    return vhd, int(vhd.size)


def _fail(content: DiskContent, problem: str) -> DiskContent:
    return DiskContent(content.format, content.size, content.digest, problem)
