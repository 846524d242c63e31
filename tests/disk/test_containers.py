"""QCOW2 and VHD containers made by qemu-img: recognised, read through, or refused clearly."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from aliasync._exceptions import InvalidImageError
from aliasync.disk._inspect import GIB, inspect_image
from tests import diskimages as d
from tests.containers import convert, qemu_img


def problem(path: Path) -> str:
    with pytest.raises(InvalidImageError) as info:
        inspect_image(path)
    return info.value.problem


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The BIOS and the UEFI ipxe.usb replicas, raw."""
    folder = tmp_path_factory.mktemp("replicas")
    bios, uefi = folder / "bios.usb", folder / "uefi.usb"
    d.ipxe_bios_usb(bios)
    d.ipxe_efi_usb(uefi, ("x86_64",))
    return {"bios": bios, "uefi": uefi}


# (variant, format, virtual size of the 442368-byte BIOS replica, of the 2 MiB UEFI one)
READABLE = [
    ("qcow2", "QCOW2", 442368, 2097152),
    ("qcow2-v2", "QCOW2", 442368, 2097152),
    ("qcow2-compressed", "QCOW2", 442368, 2097152),
    ("qcow2-zstd", "QCOW2", 442368, 2097152),
    ("vhd", "VHD", 452608, 2123776),  # qemu's CHS rounding: 13/4/17 and 61/4/17
    ("vhd-fixed", "VHD", 452608, 2123776),
    ("vhd-exact", "VHD", 442368, 2097152),
    ("vhd-fixed-exact", "VHD", 442368, 2097152),
]


@pytest.mark.parametrize(("variant", "fmt", "bios_size", "uefi_size"), READABLE)
def test_containers_are_read_through_to_the_disk_inside(
    replicas: dict[str, Path], tmp_path: Path, variant: str, fmt: str, bios_size: int,
    uefi_size: int,
) -> None:  # fmt: skip
    """The container's format and virtual size, and the disk inside inspected like raw."""
    for which, size in (("bios", bios_size), ("uefi", uefi_size)):
        raw = inspect_image(replicas[which])
        found = inspect_image(convert(replicas[which], variant, tmp_path))
        assert (found.format, found.virtual_size) == (fmt, size)
        assert (found.boot_mode, found.architecture, found.suffix, found.evidence) == (
            raw.boot_mode, raw.architecture, raw.suffix, raw.evidence,
        )  # fmt: skip
        assert found.disk_image_size_gib == 1


@pytest.mark.parametrize(
    ("variant", "says"),
    [
        ("vhdx", "is a VHDX image, which ImportImage does not take (RAW, VHD, QCOW2)"),
        ("vmdk", "is a VMDK image, which ECS imports only as an invitational preview"),
    ],
)
def test_containers_importimage_does_not_take_are_refused(
    replicas: dict[str, Path], tmp_path: Path, variant: str, says: str
) -> None:
    """VHDX and VMDK: one line saying what it is and how to convert it."""
    assert problem(convert(replicas["uefi"], variant, tmp_path)).startswith(says)


def test_a_qcow2_overlay_is_refused_naming_its_backing_file(
    replicas: dict[str, Path], tmp_path: Path
) -> None:
    """A QCOW2 on a backing file cannot be imported alone: say which file, how to flatten."""
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", replicas["uefi"], "-F", "raw", overlay)
    assert problem(overlay) == (
        f"is a QCOW2 overlay on the backing file {str(replicas['uefi'])!r}: ImportImage takes"
        " a standalone image; flatten it first, e.g. qemu-img convert -O qcow2 IN OUT"
    )


@pytest.mark.parametrize(("options", "scheme"), [("", "LUKS"), ("compat=0.10,", "AES")])
def test_an_encrypted_qcow2_is_refused(
    replicas: dict[str, Path], tmp_path: Path, options: str, scheme: str
) -> None:
    """LUKS and legacy AES encryption: ImportImage cannot read it, and we say so."""
    out = tmp_path / "secret.qcow2"
    qemu_img(
        "convert", "-f", "raw", "-O", "qcow2", "--object", "secret,id=s0,data=swordfish",
        "-o", f"{options}encrypt.format={scheme.lower()},encrypt.key-secret=s0",
        replicas["uefi"], out,
    )  # fmt: skip
    assert problem(out).startswith(f"is an encrypted QCOW2 image ({scheme})")


def _patched(path: Path, offset: int, data: bytes) -> Path:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)
    return path


@pytest.mark.parametrize(
    ("field", "offset", "value", "says"),
    [
        ("version", 4, struct.pack(">I", 4), "is a QCOW2 image of version 4"),
        ("cluster bits", 20, struct.pack(">I", 30), "is a corrupt QCOW2 image: cluster size"),
        ("L1 size", 36, struct.pack(">I", 0), "is a corrupt QCOW2 image: an L1 table of 0"),
        ("L1 size", 36, struct.pack(">I", 1 << 30), "is a corrupt QCOW2 image: an L1 table"),
        ("L1 offset", 40, struct.pack(">Q", 1 << 40), "is a truncated or corrupt QCOW2"),
        ("features", 72, struct.pack(">Q", 1 << 40), "is a QCOW2 image with unknown features"),
        ("dirty bit", 72, struct.pack(">Q", 1), "is a QCOW2 image that was not closed cleanly"),
    ],
)
def test_a_corrupt_qcow2_header_is_refused_before_anything_reads_through_it(
    replicas: dict[str, Path], tmp_path: Path, field: str, offset: int, value: bytes, says: str
) -> None:
    """Each header field that would mislead the reader gets its own sentence."""
    image = _patched(convert(replicas["uefi"], "qcow2", tmp_path), offset, value)
    assert problem(image).startswith(says), field


def test_a_truncated_qcow2_is_refused(replicas: dict[str, Path], tmp_path: Path) -> None:
    """A QCOW2 cut after its header: its tables are missing."""
    image = convert(replicas["uefi"], "qcow2", tmp_path)
    os.truncate(image, 100)
    assert "QCOW2" in problem(image)


def test_a_vhd_with_a_wrong_checksum_is_refused(replicas: dict[str, Path], tmp_path: Path) -> None:
    """The VHD footer's checksum is checked (the reader itself does not)."""
    image = convert(replicas["uefi"], "vhd-fixed", tmp_path)
    size = image.stat().st_size
    _patched(image, size - 512 + 48, struct.pack(">Q", 1 << 20))  # current size, not re-summed
    assert problem(image) == "is a corrupt VHD image: its footer checksum does not match"


def test_a_dynamic_vhd_cut_short_is_refused(replicas: dict[str, Path], tmp_path: Path) -> None:
    """A dynamic VHD without its footer: the copy at its start says what it was."""
    image = convert(replicas["uefi"], "vhd", tmp_path)
    os.truncate(image, image.stat().st_size - 512)
    assert problem(image) == "is a VHD whose footer is missing: the file is truncated"


def test_a_disk_larger_than_ecs_imports_is_refused(tmp_path: Path) -> None:
    """A QCOW2 of 3 TiB (a small file) is refused before any cloud call: 2048 GiB at most."""
    image = tmp_path / "huge.qcow2"
    qemu_img("create", "-f", "qcow2", image, "3T")
    assert problem(image) == (
        "is too large: its virtual disk is 3072.0 GiB, and ECS imports a system disk of at"
        " most 2048 GiB"
    )


def test_a_raw_disk_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    """A sparse raw disk of 2048 GiB is inspected in a few reads and accepted."""
    image = tmp_path / "big.raw"
    d.ipxe_efi_usb(image, ("x86_64",))
    os.truncate(image, 2048 * GIB)
    found = inspect_image(image)
    assert (found.boot_mode, found.disk_image_size_gib) == ("UEFI", 2048)
    os.truncate(image, 2048 * GIB + 512)
    assert problem(image).startswith("is too large: the disk is 2048.0 GiB")


@pytest.mark.parametrize(
    ("magic", "says"),
    [
        (b"\x1f\x8b\x08\x00", "is gzip-compressed: decompress it first"),
        (b"\xfd7zXZ\x00", "is xz-compressed: decompress it first"),
        (b"PK\x03\x04", "is a ZIP archive: extract the disk image first"),
    ],
)
def test_compressed_files_are_refused_with_what_to_do(
    tmp_path: Path, magic: bytes, says: str
) -> None:
    """A compressed image (ipxe.usb.gz, a release zip) is named for what it is."""
    image = tmp_path / "image"
    image.write_bytes(magic + bytes(4096))
    assert problem(image) == says
