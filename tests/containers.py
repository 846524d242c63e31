"""QCOW2 and VHD files made by the reference tool, qemu-img, from raw disks in tests.

qemu-img is a system prerequisite of the test suite (Debian's ``qemu-utils``, which
``.ci/run`` installs). A missing qemu-img fails the tests that need it, loudly: a container
test that skipped itself would prove nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

# The qemu-img options for each variant, from a raw disk.
VARIANTS: dict[str, list[str]] = {
    "qcow2": ["-O", "qcow2"],
    "qcow2-v2": ["-O", "qcow2", "-o", "compat=0.10"],
    "qcow2-compressed": ["-O", "qcow2", "-c"],
    "qcow2-zstd": ["-O", "qcow2", "-c", "-o", "compression_type=zstd"],
    "vhd": ["-O", "vpc"],  # dynamic; qemu rounds the size up to a CHS geometry
    "vhd-fixed": ["-O", "vpc", "-o", "subformat=fixed"],
    "vhd-exact": ["-O", "vpc", "-o", "force_size=on"],
    "vhd-fixed-exact": ["-O", "vpc", "-o", "subformat=fixed,force_size=on"],
    "vhdx": ["-O", "vhdx"],
    "vmdk": ["-O", "vmdk"],
}
SUFFIX = {"qcow2": ".qcow2", "vhd": ".vhd", "vhdx": ".vhdx", "vmdk": ".vmdk"}


def qemu_img(*args: str | Path) -> str:
    """Run qemu-img; its stdout."""
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is needed for the container tests: apt-get install qemu-utils")
    for _ in range(20):
        done = subprocess.run(
            ["qemu-img", *map(str, args)], capture_output=True, text=True, check=False
        )
        # Creating LUKS keys, qemu-img times its own key derivation with getrusage(), and
        # gives up now and then when that reads zero: its flake, not ours, so ask again.
        if "Unable to get accurate CPU usage" not in done.stderr:
            break
    assert done.returncode == 0, done.stderr
    return done.stdout


def convert(raw: Path, variant: str, out_dir: Path | None = None) -> Path:
    """``raw`` converted by qemu-img into ``variant`` (a key of VARIANTS)."""
    kind = variant.split("-")[0]
    out = (out_dir or raw.parent) / f"{raw.stem}.{variant}{SUFFIX[kind]}"
    qemu_img("convert", "-f", "raw", *VARIANTS[variant], raw, out)
    return out


def virtual_digest(raw: Path, size: int) -> str:
    """SHA-256 of ``raw`` as a virtual disk of ``size`` bytes: zero padding past its end."""
    data = raw.read_bytes()
    assert size >= len(data)
    return hashlib.sha256(data + bytes(size - len(data))).hexdigest()
