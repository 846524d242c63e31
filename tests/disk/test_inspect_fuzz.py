"""Whatever the bytes, inspection answers with a result or one usage error, in bounded
CPU time and memory.

Examples start from the real layouts (raw, and as QCOW2 and VHD made by qemu-img) and from
plain noise behind a magic number, then get bytes overwritten where the structures live
(boot sectors, partition tables, BPBs, FATs, directories, container headers and tables) and
are cut short.
"""

from __future__ import annotations

import functools
import tempfile
import time
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aliasync._exceptions import InvalidImageError
from aliasync.disk._inspect import inspect_image
from tests import diskimages as d
from tests.containers import convert

_MEMORY_LIMIT = 64 << 20  # bytes Python may allocate while inspecting one example
_CPU_LIMIT = 5.0  # CPU seconds for one example; a normal inspection takes milliseconds


@functools.cache
def seeds() -> dict[str, bytes]:
    """The starting points, built once."""
    folder = Path(tempfile.mkdtemp(prefix="aliasync-fuzz-"))
    built = {
        "bios.usb": d.ipxe_bios_usb,
        "uefi.usb": lambda p: d.ipxe_efi_usb(p, ("x86_64",)),
        "multi.sdsk": lambda p: d.ipxe_sdsk(p, ("arm64", "x86_64")),
        "gpt.img": lambda p: d.debian_cloud_gpt(p, esp_sectors=8192, disk_sectors=20480),
    }
    out: dict[str, bytes] = {}
    for name, build in built.items():
        path = folder / name
        build(path)
        out[name] = path.read_bytes()
    for variant in ("qcow2", "qcow2-compressed", "vhd"):
        out[variant] = convert(folder / "uefi.usb", variant, folder).read_bytes()
    for magic in (b"QFI\xfb\x00\x00\x00\x03", b"conectix", b"EFI PART", b"\xeb\x3c\x90MSDOS"):
        out[f"noise {magic!r}"] = magic + bytes(range(256)) * 16
    return out


_offsets = st.one_of(
    st.integers(0, 1023),  # MBR, GPT header, container headers
    st.integers(16384, 16384 + 24576),  # the BPB, FATs and root directory of a .usb
    st.integers(0, 3 << 20),  # anywhere: tables and clusters
)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.sampled_from(sorted(seeds())),
    patches=st.lists(st.tuples(_offsets, st.binary(min_size=1, max_size=16)), max_size=8),
    cut=st.none() | st.integers(0, 3 << 20),
)
def test_inspection_gives_a_result_or_a_usage_error_within_bounds(
    seed: str, patches: list[tuple[int, bytes]], cut: int | None
) -> None:
    """Any corruption of any layout: a DiskImage or InvalidImageError, nothing else."""
    data = bytearray(seeds()[seed])
    for offset, chunk in patches:
        if offset < len(data):
            data[offset : offset + len(chunk)] = chunk
    if cut is not None:
        del data[cut:]
    with tempfile.NamedTemporaryFile(prefix="aliasync-fuzz-") as f:
        f.write(data)
        f.flush()
        tracemalloc.start()
        started = time.process_time()
        try:
            inspect_image(f.name)
        except InvalidImageError as exc:
            assert exc.problem and "\n" not in exc.problem
        finally:
            spent = time.process_time() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < _MEMORY_LIMIT, f"{peak} bytes allocated"
    assert spent < _CPU_LIMIT, f"{spent:.1f} s of CPU"
