"""End to end: a third-party importer publishes an image everywhere, knowing only `--env-out`.

``python -m aliasync sim`` runs as a separate process; ``importer_script.py`` runs in another,
under ``bash -c 'set -a; . sim.env; ...'`` with no other configuration. The test then reads the
emulator's own account of what happened from ``/_sim/`` (loopback, outside the proxy).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from aliasync.sim import RegionMap
from tests.diskimages import ipxe_efi_usb
from tests.sim.test_core import serve, stop

pytestmark = pytest.mark.anyio

SCRIPT = Path(__file__).with_name("importer_script.py")
# The script polls DescribeImages every real second. At 300 virtual seconds per real one, an
# import (180 virtual s) is done by its first or second poll and a copy (900 virtual s) by its
# fourth: quick, and the relay functions' credentials (36 virtual hours) last over seven real
# minutes, longer than the run (README, "Choosing --time-scale for outside clients").
TIME_SCALE = "300"


def expected_strategy(region: Any) -> str:
    """How a region of the map can get an image, read from the map (the script probes)."""
    if not region.oss or not region.new_buckets:
        return "copy"
    if not region.mainland:
        return "direct"
    return "relay" if region.fc else "copy"


async def introspect(proxy: str, name: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"{proxy}/_sim/{name}") as got:
        got.raise_for_status()
        return await got.json()


async def test_importer_publishes_everywhere_with_only_the_env_file(tmp_path: Path) -> None:
    """Every region of the default map ends up with the image Available, holding the file's
    bytes; every call was HTTPS; no bucket, function or upload is left behind."""
    image = tmp_path / "ipxe.usb"
    ipxe_efi_usb(image)  # 2 MiB: a multipart upload of four parts
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    env_file = tmp_path / "sim.env"
    args = ("--profile", "none", "--time-scale", TIME_SCALE, "--env-out", str(env_file))
    async with serve(tmp_path, *args) as (process, info):
        command = ["bash", "-c", 'set -a; . "$0"; set +a; exec "$1" "$2" "$3"']
        command += [str(env_file), sys.executable, str(SCRIPT), str(image)]
        clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
        with anyio.fail_after(280):
            done = await anyio.run_process(command, env=clean, check=False)
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == 0, (out[-3000:], err[-3000:])
        report = json.loads(out)
        state = await introspect(info["proxy"], "state")
        leaks = await introspect(info["proxy"], "leaks")
        calls = await introspect(info["proxy"], "calls")
        code, sim_err = await stop(process)
    assert code in (0, 130) and "Traceback" not in sim_err

    regions = list(RegionMap.load())
    assert report["sha256"] == digest and report["failed"] == {}
    assert {r: v["strategy"] for r, v in report["regions"].items()} == {
        r.id: expected_strategy(r) for r in regions
    }
    for region in regions:
        images = state["ecs"]["regions"][region.id]["images"]
        named = [i for i in images if i["name"] == report["image"]]
        assert [(i["status"], i["content_digest"]) for i in named] == [("Available", digest)], (
            region.id
        )
        assert named[0]["id"] == report["regions"][region.id]["image_id"]
    assert all(not found for found in leaks.values()), leaks
    assert calls["by_scheme"] == {"https": calls["total"]}
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.endswith("_SECRET"):
            assert value not in out and value not in err
