"""ImportImage reads RAW, QCOW2 and VHD objects as ECS would, through the official client.

Containers are made by qemu-img from the replicas of real layouts; the image's content digest
must be that of the disk inside, so "the right bytes arrived" means the same for every format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client as EcsClient

from aliasync.sim import Simulator
from tests import diskimages as d
from tests.clients import ecs_client, put_object
from tests.containers import convert, virtual_digest
from tests.sim.test_ecs import fails, region_images

pytestmark = pytest.mark.anyio

REGION, OTHER = "ap-southeast-1", "ap-northeast-1"


@pytest.fixture
def bios(tmp_path: Path) -> Path:
    path = tmp_path / "ipxe.usb"
    d.ipxe_bios_usb(path)
    return path


async def _import(
    sim: Simulator, client: EcsClient, path: Path, fmt: str, name: str, **kw: Any
) -> str:
    bucket, key = f"src-{REGION}", path.name
    await put_object(sim, REGION, bucket, key, await anyio.Path(path).read_bytes())
    mapping = m.ImportImageRequestDiskDeviceMapping(
        ossbucket=bucket, ossobject=key, format=fmt, disk_image_size=kw.pop("size", 1)
    )
    request = m.ImportImageRequest(
        region_id=REGION, image_name=name, disk_device_mapping=[mapping], **kw
    )
    return str((await client.import_image_async(request)).body.image_id)


async def _settled(sim: Simulator, image_id: str) -> dict[str, Any]:
    """The image once its import has ended, waiting on the emulator's virtual clock."""
    for _ in range(100):
        image = region_images(sim, REGION)[image_id]
        if image["status"] != "Creating":
            return image
        sim.clock.advance(60)
    raise AssertionError(f"{image_id} still importing")


@pytest.mark.parametrize(
    ("variant", "fmt"),
    [("qcow2", "QCOW2"), ("qcow2-compressed", "QCOW2"), ("vhd", "VHD"), ("vhd-exact", "VHD")],
)
async def test_container_objects_import_as_the_disk_inside(
    sim: Simulator, tmp_path: Path, bios: Path, variant: str, fmt: str
) -> None:
    """The image records the virtual disk: its digest and size, whatever the container."""
    container = convert(bios, variant, tmp_path)
    client = ecs_client(sim, REGION)
    image = await _settled(sim, await _import(sim, client, container, fmt, "disk-" + variant))
    assert (image["status"], image["disk_format"], image["failure"]) == ("Available", fmt, "")
    assert image["content_digest"] == virtual_digest(bios, image["content_bytes"])
    exact = variant in ("qcow2", "qcow2-compressed", "vhd-exact")
    assert (image["content_bytes"] == 442368) is exact


async def test_an_empty_format_detects_the_container(
    sim: Simulator, tmp_path: Path, bios: Path
) -> None:
    """Format "" means "detect": a QCOW2 object becomes a QCOW2 disk."""
    container = convert(bios, "qcow2", tmp_path)
    client = ecs_client(sim, REGION)
    image = await _settled(sim, await _import(sim, client, container, "", "detected"))
    assert (image["status"], image["disk_format"]) == ("Available", "QCOW2")
    assert image["content_digest"] == virtual_digest(bios, 442368)


@pytest.mark.parametrize(
    ("variant", "fmt", "failure"),
    [
        ("qcow2", "RAW", "the object is a QCOW2 image, not RAW"),
        ("raw", "VHD", "the object is a RAW image, not VHD"),
        ("vhdx", "", "VHDX images cannot be imported"),
    ],
)
async def test_an_object_that_is_not_what_format_says_fails_the_import(
    sim: Simulator, tmp_path: Path, bios: Path, variant: str, fmt: str, failure: str
) -> None:
    """The request is accepted; the task fails once it reads the object (CreateFailed)."""
    source = bios if variant == "raw" else convert(bios, variant, tmp_path)
    client = ecs_client(sim, REGION)
    image = await _settled(sim, await _import(sim, client, source, fmt, "wrong-" + variant))
    assert (image["status"], image["failure"]) == ("CreateFailed", failure)


async def test_disk_image_size_must_hold_the_virtual_disk(sim: Simulator, tmp_path: Path) -> None:
    """A QCOW2 whose virtual disk is 3 GiB needs DiskImageSize >= 3, however small the file."""
    raw = tmp_path / "big.raw"
    d.ipxe_efi_usb(raw, ("x86_64",))
    with raw.open("r+b") as f:
        f.truncate(3 << 30)
    container = convert(raw, "qcow2", tmp_path)
    assert (await anyio.Path(container).stat()).st_size < 4 << 20
    client = ecs_client(sim, REGION)
    error = await fails(_import(sim, client, container, "QCOW2", "too-small", size=2))
    assert error.code == "InvalidImageSize"


async def test_import_image_takes_bios_or_uefi_only(sim: Simulator, bios: Path) -> None:
    """UEFI-Preferred is no ImportImage boot mode (it is set afterwards), nor BIOS for arm64."""
    client = ecs_client(sim, REGION)
    error = await fails(_import(sim, client, bios, "RAW", "dual", boot_mode="UEFI-Preferred"))
    assert (error.code, error.status_code) == ("InvalidParameter", 400)
    error = await fails(
        _import(sim, client, bios, "RAW", "arm", architecture="arm64", boot_mode="BIOS")
    )
    assert error.code == "InvalidParameter"
    assert not region_images(sim, REGION)


async def test_modify_image_attribute_sets_uefi_preferred(sim: Simulator, bios: Path) -> None:
    """An imported image can be switched to UEFI-Preferred; an arm64 one only to UEFI."""
    client = ecs_client(sim, REGION)
    image_id = await _import(sim, client, bios, "RAW", "hybrid", boot_mode="UEFI")
    await _settled(sim, image_id)
    request = m.ModifyImageAttributeRequest(
        region_id=REGION, image_id=image_id, boot_mode="UEFI-Preferred"
    )
    await client.modify_image_attribute_async(request)
    assert region_images(sim, REGION)[image_id]["boot_mode"] == "UEFI-Preferred"
    arm_id = await _import(sim, client, bios, "RAW", "arm", architecture="arm64")
    await _settled(sim, arm_id)
    request = m.ModifyImageAttributeRequest(region_id=REGION, image_id=arm_id, boot_mode="BIOS")
    assert (await fails(client.modify_image_attribute_async(request))).code == "InvalidParameter"
    assert region_images(sim, REGION)[arm_id]["boot_mode"] == "UEFI"


async def test_an_image_imported_from_vhd_cannot_be_copied(
    sim: Simulator, tmp_path: Path, bios: Path
) -> None:
    """CopyImage refuses VHD images: 403 InvalidOperation.VhdImageUnsupported."""
    client = ecs_client(sim, REGION)
    image_id = await _import(sim, client, convert(bios, "vhd", tmp_path), "VHD", "from-vhd")
    assert (await _settled(sim, image_id))["status"] == "Available"
    request = m.CopyImageRequest(region_id=REGION, image_id=image_id, destination_region_id=OTHER)
    error = await fails(client.copy_image_async(request))
    assert (error.code, error.status_code) == ("InvalidOperation.VhdImageUnsupported", 403)
