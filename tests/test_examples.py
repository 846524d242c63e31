"""The images in examples/ are the replicas of what iPXE's build really produces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import diskimages as d
from tests.importing import EXAMPLES

BUILDERS: dict[str, Callable[[Path], None]] = {
    "ipxe-bios.usb": d.ipxe_bios_usb,  # make bin/ipxe.usb
    "ipxe-uefi.usb": lambda p: d.ipxe_efi_usb(p, ("x86_64",)),  # bin-x86_64-efi/ipxe.usb
    "ipxe-arm64.usb": lambda p: d.ipxe_efi_usb(p, ("arm64",)),  # bin-arm64-efi/ipxe.usb
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_example_is_its_replica_byte_for_byte(tmp_path: Path, name: str) -> None:
    """A change to the replicas regenerates the examples (or this fails): no drift."""
    built = tmp_path / name
    BUILDERS[name](built)
    assert (EXAMPLES / name).read_bytes() == built.read_bytes()


def test_examples_are_all_the_replicas() -> None:
    """Nothing else lives in examples/ unexplained."""
    assert sorted(p.name for p in EXAMPLES.iterdir()) == sorted(BUILDERS)
