"""Disk image inspection against real FAT/MBR/GPT structures built in pure Python."""

from __future__ import annotations

import contextlib
import datetime
import itertools
import os
import random
import struct
from pathlib import Path

import pytest

from aliasync._exceptions import InvalidImageError, InvalidNameError
from aliasync.disk._fat import FatVolume
from aliasync.disk._inspect import DiskImage, inspect_image
from aliasync.pipeline._names import check_ecs_name, default_name
from tests import fatwriter as d

X64 = "EFI/BOOT/BOOTX64.EFI"
AA64 = "EFI/BOOT/BOOTAA64.EFI"
PE = b"MZ" + bytes(1022)  # the start of a PE file, long enough to span clusters


def problem(path: Path) -> str:
    """The problem InvalidImageError reports for ``path``, checking the message format."""
    with pytest.raises(InvalidImageError) as info:
        inspect_image(path)
    assert str(info.value) == f"{path}: {info.value.problem}"
    assert info.value.path == str(path)
    return info.value.problem


# --- boot mode and architecture ------------------------------------------------------------


def test_mbr_disk_without_fat_is_bios(tmp_path: Path) -> None:
    """A boot signature and a Linux partition, but no FAT anywhere, is a BIOS x86_64 image."""
    image = tmp_path / "bios.img"
    d.bios_disk(image)
    result = inspect_image(image)
    assert result == DiskImage(
        path=image,
        size=image.stat().st_size,
        boot_mode="BIOS",
        architecture="x86_64",
        loaders=frozenset(),
        suffix="",
        disk_image_size_gib=1,
        format="RAW",
        virtual_size=image.stat().st_size,
        evidence="BIOS: no EFI loader on any filesystem"
        " (MBR partition 1, type 0x83, holds no FAT filesystem)",
    )


def test_fat_without_loaders_is_bios(tmp_path: Path) -> None:
    """A FAT partition with boot files but no EFI loader gives a BIOS image."""
    image = tmp_path / "syslinux.img"
    d.mbr_disk(image, {"SYSLINUX.CFG": b"DEFAULT ipxe", "EFI/BOOT/README.TXT": b"no loader"})
    result = inspect_image(image)
    assert (result.boot_mode, result.architecture, result.suffix) == ("BIOS", "x86_64", "")
    assert result.loaders == frozenset()


def test_uefi_x86_64(tmp_path: Path) -> None:
    """BOOTX64.EFI alone makes a UEFI x86_64 image with the -uefi-x86-64 suffix."""
    image = tmp_path / "ipxe.usb"
    d.mbr_disk(image, {X64: PE})
    result = inspect_image(image)
    assert (result.boot_mode, result.architecture) == ("UEFI", "x86_64")
    assert result.loaders == {"x86_64"}
    assert result.suffix == "-uefi-x86-64"


def test_uefi_arm64(tmp_path: Path) -> None:
    """BOOTAA64.EFI alone makes a UEFI arm64 image with the -uefi-arm64 suffix."""
    image = tmp_path / "ipxe-arm64.usb"
    d.mbr_disk(image, {AA64: PE})
    result = inspect_image(image)
    assert (result.boot_mode, result.architecture) == ("UEFI", "arm64")
    assert result.loaders == {"arm64"}
    assert result.suffix == "-uefi-arm64"


def test_both_loaders_make_a_multi_image_registered_as_x86_64(tmp_path: Path) -> None:
    """Both loaders give suffix -uefi-multi and architecture x86_64."""
    image = tmp_path / "ipxe-multi.usb"
    d.mbr_disk(image, {X64: PE, AA64: PE})
    result = inspect_image(image)
    assert (result.boot_mode, result.architecture) == ("UEFI", "x86_64")
    assert result.loaders == {"x86_64", "arm64"}
    assert result.suffix == "-uefi-multi"


def test_gpt_disk(tmp_path: Path) -> None:
    """The EFI system partition of a GPT disk is found through the GPT entries."""
    image = tmp_path / "gpt.img"
    d.gpt_disk(image, {AA64: PE}, index=3)
    assert inspect_image(image).loaders == {"arm64"}


def test_gpt_with_bad_header_checksum_is_corrupt(tmp_path: Path) -> None:
    """A GPT header whose CRC32 does not match is reported, not silently trusted."""
    image = tmp_path / "gpt.img"
    d.gpt_disk(image, {X64: PE})
    d.patch(image, d.SECTOR + 40, b"\x99")  # first usable LBA, covered by the header CRC
    assert problem(image) == "corrupt partition table: GPT header checksum mismatch"


def test_whole_disk_fat(tmp_path: Path) -> None:
    """A FAT filesystem at byte 0 with no partition table is inspected directly."""
    image = tmp_path / "superfloppy.img"
    d.whole_disk(image, {X64: PE}, 12)
    assert inspect_image(image).loaders == {"x86_64"}


@pytest.mark.parametrize("bits", [12, 16, 32])
@pytest.mark.parametrize("layout", ["whole", "mbr", "gpt"])
def test_each_fat_type_in_each_layout(tmp_path: Path, bits: int, layout: str) -> None:
    """FAT12, FAT16 and FAT32 are each read whole-disk, in an MBR partition and in GPT."""
    image = tmp_path / f"{layout}{bits}.img"
    build = {"whole": d.whole_disk, "mbr": d.mbr_disk, "gpt": d.gpt_disk}[layout]
    fs = build(image, {X64: PE, AA64: PE, "EFI/BOOT/grub.cfg": b"set timeout=0"}, bits)
    with image.open("rb") as f:
        assert FatVolume(f, image.stat().st_size, fs.offset, fs.size).bits == bits
    assert inspect_image(image).suffix == "-uefi-multi"


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_lower_case_names_are_found_through_long_names(tmp_path: Path, bits: int) -> None:
    """Lower-case names whose short aliases are BOOTX6~1.EFI etc. match via their LFN entries."""
    image = tmp_path / "lower.img"
    d.mbr_disk(image, {"efi/boot/bootx64.efi": PE, "efi/boot/bootaa64.efi": PE}, bits)
    # The test is only meaningful if the plain short names are really absent.
    data = image.read_bytes()
    assert b"BOOTX64 EFI" not in data
    assert b"BOOTAA~1EFI" in data
    assert inspect_image(image).loaders == {"x86_64", "arm64"}


def test_mixed_case_names_match(tmp_path: Path) -> None:
    """Directory and file names in any mix of case match."""
    image = tmp_path / "mixed.img"
    d.mbr_disk(image, {"Efi/Boot/BootX64.Efi": PE})
    assert inspect_image(image).loaders == {"x86_64"}


def test_long_name_with_wrong_checksum_is_ignored(tmp_path: Path) -> None:
    """An LFN run whose checksum does not match its short entry (a stale LFN) is not used."""
    image = tmp_path / "stale.img"
    d.mbr_disk(image, {"efi/boot/bootx64.efi": PE}, bad_lfn_checksum={"efi/boot/bootx64.efi"})
    assert inspect_image(image).boot_mode == "BIOS"


@pytest.mark.parametrize(
    "path",
    [
        "BOOTX64.EFI",
        "EFI/BOOTX64.EFI",
        "BOOT/BOOTX64.EFI",
        "EFI/BOOT/X/BOOTX64.EFI",
        "EFI/Bootx64.efi",
    ],
)
def test_loader_in_the_wrong_directory_is_not_a_loader(tmp_path: Path, path: str) -> None:
    """Only EFI/BOOT/BOOTX64.EFI counts; the same file name elsewhere does not."""
    image = tmp_path / "wrong.img"
    d.mbr_disk(image, {path: PE})
    assert inspect_image(image).boot_mode == "BIOS"


def test_directory_named_like_a_loader_is_not_a_loader(tmp_path: Path) -> None:
    """A directory called BOOTX64.EFI is not a loader."""
    image = tmp_path / "dir.img"
    d.mbr_disk(image, {}, dirs=["EFI/BOOT/BOOTX64.EFI"])
    assert inspect_image(image).boot_mode == "BIOS"


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_fragmented_multi_cluster_directories(tmp_path: Path, bits: int) -> None:
    """Multi-cluster directories on scattered clusters are walked through the FAT chain."""
    # Long names here span several LFN entries, so LFN runs also cross cluster boundaries.
    files = {f"EFI/BOOT/a rather long file name number {i}.txt": b"x" * 700 for i in range(40)}
    files["EFI/BOOT/bootaa64.efi"] = PE
    image = tmp_path / "fragmented.img"
    fs = d.mbr_disk(image, files, bits, fragmented=True)
    chain = fs.chains["EFI/BOOT"]
    assert len(chain) > 5
    assert any(b != a + 1 for a, b in itertools.pairwise(chain))
    assert inspect_image(image).loaders == {"arm64"}


def test_fat_in_another_partition_and_type_byte(tmp_path: Path) -> None:
    """Any non-empty primary entry is tried as FAT, whatever its number and type byte."""
    image = tmp_path / "p1.img"
    d.mbr_disk(image, {X64: PE}, partition=1, kind=0x0C)
    assert inspect_image(image).loaders == {"x86_64"}


def test_every_primary_partition_is_tried(tmp_path: Path) -> None:
    """Non-FAT partitions before the FAT one (Linux, extended) are skipped, not fatal."""
    image = tmp_path / "many.img"
    others = {1: (0x83, 64, 1024), 2: (0x05, 1088, 512), 3: (0x0B, 1600, 400)}
    d.mbr_disk(image, {AA64: PE}, others=others)
    assert inspect_image(image).loaders == {"arm64"}


def test_protective_mbr_without_gpt_header_is_corrupt(tmp_path: Path) -> None:
    """A protective MBR whose GPT header is missing is a corrupt partition table."""
    image = tmp_path / "nogpt.img"
    d.gpt_disk(image, {X64: PE})
    d.patch(image, d.SECTOR, bytes(d.SECTOR))
    assert problem(image) == (
        "corrupt partition table: protective MBR for a GPT, but no GPT header at LBA 1"
    )


# --- size ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "gib"),
    [(0, 1), (d.GIB - 2 * 1024 * 1024, 1), (d.GIB - 2 * 1024 * 1024 + 1, 2)],
)
def test_disk_image_size_rounds_up_to_whole_gib(tmp_path: Path, extra: int, gib: int) -> None:
    """disk_image_size_gib is the smallest whole GiB holding the file (sparse, so fast)."""
    image = tmp_path / "big.img"
    d.bios_disk(image, extra_bytes=extra)  # the base disk is exactly 2 MiB
    result = inspect_image(image)
    assert result.size == 2 * 1024 * 1024 + extra
    assert result.disk_image_size_gib == gib


# --- bad input -----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is 'no such file'."""
    assert problem(tmp_path / "nope.img") == "no such file"


def test_directory(tmp_path: Path) -> None:
    """A directory is refused as such."""
    assert problem(tmp_path) == "is a directory, not a disk image"


def test_empty_file(tmp_path: Path) -> None:
    """An empty file is 'is empty'."""
    image = tmp_path / "empty.img"
    image.touch()
    assert problem(image) == "is empty"


@pytest.mark.parametrize(
    "content",
    [
        random.Random(1).randbytes(64 * 1024),
        b"#!/bin/sh\necho this is a script, not a disk\n" * 20,
        b"\x55\xaa",
    ],
    ids=["random", "text", "tiny"],
)
def test_not_a_disk_image(tmp_path: Path, content: bytes) -> None:
    """Random bytes, a text file or a few bytes are not a disk image."""
    assert content[510:512] != b"\x55\xaa"
    image = tmp_path / "junk.bin"
    image.write_bytes(content)
    assert problem(image) == (
        "is not a disk image (no boot signature, partition table or FAT filesystem)"
    )


def test_fat_cut_short_in_an_mbr_partition_is_truncated(tmp_path: Path) -> None:
    """A FAT whose own extent runs past the end of the file is truncated, and said where."""
    image = tmp_path / "cut.img"
    fs = d.mbr_disk(image, {X64: PE})
    os.truncate(image, fs.offset + fs.size - 1)
    assert problem(image) == (
        "is truncated: the FAT filesystem at byte 1048576 needs 4194304 bytes, but only"
        " 4194303 remain in the file (in MBR partition 4)"
    )


def test_partition_starting_past_end_of_file_is_truncated(tmp_path: Path) -> None:
    """A file cut inside the MBR gap, before the partition even starts, is truncated."""
    image = tmp_path / "cut.img"
    d.mbr_disk(image, {X64: PE})
    os.truncate(image, 4096)
    assert "truncated" in problem(image)


@pytest.mark.parametrize("bits", [12, 32])
def test_whole_disk_fat_cut_short_is_truncated(tmp_path: Path, bits: int) -> None:
    """A whole-disk FAT whose declared size exceeds the file is truncated."""
    image = tmp_path / "cut.img"
    fs = d.whole_disk(image, {X64: PE}, bits)
    os.truncate(image, fs.size // 2)
    assert problem(image).startswith("is truncated: the FAT filesystem at byte 0 needs")


def test_gpt_disk_cut_short_is_truncated(tmp_path: Path) -> None:
    """A GPT disk cut in the middle of its partition is truncated."""
    image = tmp_path / "cut.img"
    fs = d.gpt_disk(image, {X64: PE})
    os.truncate(image, fs.offset + 4096)
    assert problem(image) == (
        "is truncated: the FAT filesystem at byte 1048576 needs 4194304 bytes, but only 4096"
        " remain in the file (in GPT partition 1)"
    )


def big_boot_dir(tmp_path: Path, bits: int = 16) -> tuple[Path, d.FatLayout]:
    """An image whose EFI/BOOT fills exactly three clusters and holds no loader, so every
    cluster is read and the chain is followed past the last one."""
    # ".", ".." and 46 short entries: 48 x 32 bytes, three 512-byte clusters, no end marker.
    files = {f"EFI/BOOT/FILE{i}.TXT": b"x" for i in range(46)}
    image = tmp_path / "corrupt.img"
    return image, d.mbr_disk(image, files, bits)


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_cluster_chain_loop_is_corrupt(tmp_path: Path, bits: int) -> None:
    """A directory whose cluster chain loops back is corrupt, not an endless loop."""
    image, fs = big_boot_dir(tmp_path, bits)
    chain = fs.chains["EFI/BOOT"]
    fs.patch_fat(image, chain[-1], chain[0])
    assert problem(image) == (
        "corrupt FAT filesystem: the cluster chain of EFI/BOOT loops back to cluster"
        f" {chain[0]} (in MBR partition 4)"
    )


def test_fat_entry_out_of_range_is_corrupt(tmp_path: Path) -> None:
    """A FAT entry naming a cluster beyond the volume is corrupt."""
    image, fs = big_boot_dir(tmp_path)
    fs.patch_fat(image, fs.chains["EFI/BOOT"][0], fs.clusters + 10)
    assert problem(image).startswith(
        f"corrupt FAT filesystem: the FAT entry of cluster {fs.chains['EFI/BOOT'][0]}"
        f" refers to cluster {fs.clusters + 10}, outside 2..{fs.clusters + 1}"
    )


def test_free_cluster_in_chain_is_corrupt(tmp_path: Path) -> None:
    """A chain that runs into a free cluster is corrupt."""
    image, fs = big_boot_dir(tmp_path)
    fs.patch_fat(image, fs.chains["EFI/BOOT"][0], 0)
    assert problem(image).startswith("corrupt FAT filesystem: cluster chain runs into a free")


def test_directory_entry_cluster_out_of_range_is_corrupt(tmp_path: Path) -> None:
    """A directory entry pointing at a cluster beyond the volume is corrupt."""
    image = tmp_path / "corrupt.img"
    fs = d.mbr_disk(image, {X64: PE})
    d.patch(image, fs.entry_offsets["EFI"] + 26, struct.pack("<H", 0xFFF0))
    assert problem(image).startswith(
        "corrupt FAT filesystem: EFI refers to cluster 65520, outside 2.."
    )


def test_fat32_root_cluster_out_of_range_is_corrupt(tmp_path: Path) -> None:
    """A FAT32 BPB whose root cluster lies outside the volume is corrupt."""
    image = tmp_path / "corrupt.img"
    d.whole_disk(image, {X64: PE}, 32)
    d.patch(image, 44, struct.pack("<I", 0x0FFFFFF0))
    assert problem(image).startswith("corrupt FAT filesystem: root directory refers to cluster")


@pytest.mark.parametrize(
    ("offset", "value", "detail"),
    [
        (11, struct.pack("<H", 1000), "bytes per sector is 1000, not a power of two from 512"),
        (11, struct.pack("<H", 256), "bytes per sector is 256"),
        (11, struct.pack("<H", 8192), "bytes per sector is 8192"),
        (13, b"\x00", "sectors per cluster is 0"),
        (13, b"\x03", "sectors per cluster is 3"),
        (16, b"\x00", "the number of FAT copies is zero"),
        (22, b"\x01\x00", "a FAT of 1 sectors cannot map"),
    ],
)
def test_bad_bpb_is_corrupt(tmp_path: Path, offset: int, value: bytes, detail: str) -> None:
    """Impossible BPB values in a boot sector labelled FAT are reported as corrupt."""
    image = tmp_path / "corrupt.img"
    fs = d.mbr_disk(image, {X64: PE})
    d.patch(image, fs.offset + offset, value)
    assert problem(image).startswith(f"corrupt FAT filesystem: {detail}")
    assert problem(image).endswith("(in MBR partition 4)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_by_mode(tmp_path: Path) -> None:
    """A file without read permission gives 'cannot be read: Permission denied'."""
    image = tmp_path / "secret.img"
    d.bios_disk(image)
    image.chmod(0)
    assert problem(image) == "cannot be read: Permission denied"


def test_random_damage_never_escapes_as_a_raw_error(tmp_path: Path) -> None:
    """Random byte damage to the metadata yields a result or InvalidImageError, never a crash."""
    image = tmp_path / "fuzz.img"
    fs = d.mbr_disk(image, {X64: PE, "efi/boot/bootaa64.efi": PE}, 12, fragmented=True)
    metadata_end = fs.offset + 40 * 1024  # boot sector, FATs, root directory, first clusters
    rng = random.Random(7)
    with image.open("r+b") as f:
        for _ in range(400):
            where = rng.choice([rng.randrange(512), rng.randrange(fs.offset, metadata_end)])
            f.seek(where)
            original = f.read(4)
            f.seek(where)
            f.write(rng.randbytes(4))
            f.flush()
            with contextlib.suppress(InvalidImageError):
                inspect_image(image)
            f.seek(where)
            f.write(original)
            f.flush()


def test_every_truncation_point_gives_a_clean_error(tmp_path: Path) -> None:
    """Cutting an image anywhere short gives InvalidImageError, never a raw exception."""
    image = tmp_path / "cut.img"
    fs = d.mbr_disk(image, {X64: PE}, 12)
    full = image.read_bytes()
    for length in [1, 300, 511, 512, 513, 4096, fs.offset, fs.offset + 512, len(full) - 1]:
        image.write_bytes(full[:length])
        with pytest.raises(InvalidImageError):
            inspect_image(image)


# --- names ---------------------------------------------------------------------------------


def test_default_name() -> None:
    """The default name is <family>-YYYYMMDD."""
    assert default_name("ipxe", datetime.date(2024, 3, 7)) == "ipxe-20240307"
    assert check_ecs_name(default_name("ipxe", datetime.date(2024, 3, 7))) == "ipxe-20240307"


@pytest.mark.parametrize(
    "name", ["ab", "ipxe-20240101-uefi-multi", "a" * 128, "x.y:z_w-v1", "镜像-1", "Zimage"]
)
def test_valid_names(name: str) -> None:
    """Names following the ECS rules are returned unchanged."""
    assert check_ecs_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a", "2 to 128 characters"),
        ("a" * 129, "2 to 128 characters"),
        ("", "2 to 128 characters"),
        ("1ipxe", "must start with a letter"),
        ("-ipxe", "must start with a letter"),
        ("_ipxe", "must start with a letter"),
        ("aliyun-ipxe", "must not start with 'aliyun'"),
        ("AliYun", "must not start with 'aliyun'"),
        ("acs:ipxe", "must not start with 'acs:'"),
        ("ACS:ipxe", "must not start with 'acs:'"),
        ("ipxe-http://x", "must not contain http:// or https://"),
        ("ipxe-HTTPS://x", "must not contain http:// or https://"),
        ("ipxe image", "contains ' '"),
        ("ipxe/uefi", "contains '/'"),
        ("ipxé", "contains 'é'"),
        ("éipxe", "must start with a letter"),
    ],
)
def test_invalid_names(name: str, reason: str) -> None:
    """Each broken ECS rule is refused with a message naming the rule."""
    with pytest.raises(InvalidNameError, match="image family") as info:
        check_ecs_name(name, "image family")
    assert reason in str(info.value)
