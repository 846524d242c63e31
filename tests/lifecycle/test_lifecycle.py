"""Account setup, the capability map and the image lifecycle, against the emulator."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aliasync._exceptions import UsageError
from aliasync.cloud._cloud import Cloud
from aliasync.cloud._endpoints import Endpoints
from aliasync.lifecycle._images import (
    REPLACEMENT_TAG,
    delete_images,
    deprecate_images,
    list_images,
    prune_images,
    select_regions,
    share_images,
)
from aliasync.lifecycle._regions import detect_capabilities
from aliasync.lifecycle._release import architecture, dokuwiki, markdown
from aliasync.lifecycle._setup import setup_account
from aliasync.pipeline._state import CapabilityCache
from aliasync.sim import Simulator
from tests.importing import ARM64, BIOS, UEFI, assert_no_leaks, images_named, run_import

pytestmark = pytest.mark.anyio

REGIONS = ("ap-southeast-1", "cn-heyuan")


@pytest.fixture
async def cloud(sim: Simulator) -> AsyncIterator[Cloud]:
    """A Cloud handle on the emulator."""
    handle = await Cloud.open(Endpoints.from_dict(sim.endpoints))
    try:
        yield handle
    finally:
        await handle.aclose()


async def aliasync(*args: str) -> tuple[int, str, str]:
    """Run the CLI to completion; return (exit code, stdout, stderr)."""
    result = await anyio.run_process(
        [sys.executable, "-m", "aliasync", *args], check=False, env=dict(os.environ)
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def all_images(sim: Simulator) -> list[dict[str, Any]]:
    state = sim.ctx.models["ecs"].snapshot()
    return [i for r in state["regions"].values() for i in r["images"]]


async def test_list_shows_every_region_and_filters(sim: Simulator, cloud: Cloud) -> None:
    """list finds the imported images in each region, with their attributes, and filters."""
    await run_import(sim, [BIOS, UEFI], name="ipxe-a", regions=REGIONS)
    listing = await list_images(cloud, REGIONS, family="ipxe")
    assert not listing.errors
    seen = {(region, i.name) for region, i in listing.images}
    assert seen == {(r, n) for r in REGIONS for n in ("ipxe-a", "ipxe-a-uefi-x86-64")}
    uefi = [i for _, i in listing.images if i.name.endswith("uefi-x86-64")]
    assert all(i.boot_mode == "UEFI" and i.architecture == "x86_64" for i in uefi)
    assert all(i.status == "Available" and i.creation_time for _, i in listing.images)
    named = await list_images(cloud, REGIONS, name="ipxe-a")
    assert {i.name for _, i in named.images} == {"ipxe-a"}
    assert not (await list_images(cloud, REGIONS, family="other")).images


async def test_delete_removes_images_and_snapshots(sim: Simulator, cloud: Cloud) -> None:
    """delete removes the image in every region that has it, leaving no orphan snapshot."""
    await run_import(sim, [BIOS], name="ipxe-a", regions=REGIONS)
    await run_import(sim, [BIOS], name="ipxe-b", regions=REGIONS[:1])
    outcome = await delete_images(cloud, REGIONS, name="ipxe-a")
    assert outcome.exit_code == 0 and len(outcome.actions) == 2
    assert {i["name"] for i in all_images(sim)} == {"ipxe-b"}
    assert_no_leaks(sim)


async def test_delete_by_image_id_only_that_image(sim: Simulator, cloud: Cloud) -> None:
    """delete --image-id removes exactly that image."""
    await run_import(sim, [BIOS], name="ipxe-a", regions=REGIONS)
    (target,) = images_named(sim, "cn-heyuan", "ipxe-a")
    outcome = await delete_images(cloud, REGIONS, image_id=target["id"])
    assert [a.image_id for a in outcome.actions] == [target["id"]]
    assert images_named(sim, "ap-southeast-1", "ipxe-a")
    assert not images_named(sim, "cn-heyuan", "ipxe-a")
    assert_no_leaks(sim)


async def test_unknown_name_and_region_are_usage_errors(sim: Simulator, cloud: Cloud) -> None:
    """An image that exists nowhere and an unknown region raise UsageError, changing nothing."""
    await run_import(sim, [BIOS], name="ipxe-a", regions=REGIONS[:1])
    before = all_images(sim)
    with pytest.raises(UsageError, match="no image named"):
        await delete_images(cloud, REGIONS, name="ipxe-nope")
    with pytest.raises(UsageError, match="unknown region"):
        await select_regions(cloud, ["xx-nowhere-1"])
    assert all_images(sim) == before


async def test_prune_keeps_newest_per_group(sim: Simulator, cloud: Cloud) -> None:
    """prune keeps the newest N per (family, arch, public): an older image of the family that
    differs only in architecture, or only in being public, is kept; dry run changes nothing."""
    region = REGIONS[0]
    # Each import takes minutes of emulated time: creation times differ, oldest first.
    await run_import(sim, [ARM64], name="ipxe-0", regions=(region,))
    for name in ("ipxe-1", "ipxe-2", "ipxe-3"):
        await run_import(sim, [BIOS, UEFI], name=name, regions=(region,))
    (arm,) = images_named(sim, region, "ipxe-0-uefi-arm64")
    await cloud.ecs(region).set_attributes(arm["id"], family="ipxe")  # same family, other arch
    await share_images(cloud, (region,), "ipxe-1", publish=True)  # same family, public
    groups = {(i["family"], i["architecture"], i["public"]) for i in all_images(sim)}
    assert groups == {("ipxe", "arm64", False), ("ipxe", "x86_64", True),
        ("ipxe", "x86_64", False), ("ipxe-uefi-x86-64", "x86_64", False)}  # fmt: skip
    before = all_images(sim)
    dry = await prune_images(cloud, (region,), family="ipxe", retain=1, dry_run=True)
    doomed = {"ipxe-2", "ipxe-1-uefi-x86-64", "ipxe-2-uefi-x86-64"}
    assert {a.name for a in dry.actions if a.action == "would delete"} == doomed
    assert all_images(sim) == before
    outcome = await prune_images(cloud, (region,), family="ipxe", retain=1)
    assert outcome.exit_code == 0
    assert {a.name for a in outcome.actions if a.action == "deleted"} == doomed
    kept = {"ipxe-0-uefi-arm64", "ipxe-1", "ipxe-3", "ipxe-3-uefi-x86-64"}
    assert {i["name"] for i in all_images(sim)} == kept
    assert_no_leaks(sim)


async def test_prune_retain_zero_needs_all(sim: Simulator, cloud: Cloud) -> None:
    """--retain 0 is refused without --all (nothing deleted) and deletes the family with it."""
    await run_import(sim, [BIOS], name="ipxe-a", regions=REGIONS[:1])
    with pytest.raises(UsageError, match="--all"):
        await prune_images(cloud, REGIONS[:1], family="ipxe", retain=0)
    assert len(all_images(sim)) == 1
    await prune_images(cloud, REGIONS[:1], family="ipxe", retain=0, everything=True)
    assert not all_images(sim)
    assert_no_leaks(sim)


async def test_publish_unpublish_and_share(sim: Simulator, cloud: Cloud) -> None:
    """publish/unpublish flip the public flag everywhere; accounts are shared and unshared."""
    await run_import(sim, [BIOS], name="ipxe-a", regions=REGIONS)
    await share_images(cloud, REGIONS, "ipxe-a", publish=True)
    assert all(i["public"] for i in all_images(sim))
    await share_images(cloud, REGIONS, "ipxe-a", publish=False)
    assert not any(i["public"] for i in all_images(sim))
    await share_images(cloud, REGIONS, "ipxe-a", publish=True, accounts=["1234567890123456"])
    assert all(i["shared_accounts"] == ["1234567890123456"] for i in all_images(sim))
    assert not any(i["public"] for i in all_images(sim))
    await share_images(cloud, REGIONS, "ipxe-a", publish=False, accounts=["1234567890123456"])
    assert all(i["shared_accounts"] == [] for i in all_images(sim))


async def test_deprecate_and_undeprecate(sim: Simulator, cloud: Cloud) -> None:
    """deprecate sets Deprecated and the replacement tag; undeprecate reverses both, removing
    the tag (UntagResources), not blanking it."""
    await run_import(sim, [BIOS], name="ipxe-a", regions=REGIONS)
    await deprecate_images(cloud, REGIONS, "ipxe-a", replacement="ipxe-b")
    for image in all_images(sim):
        assert image["status"] == "Deprecated"
        assert image["tags"][REPLACEMENT_TAG] == "ipxe-b"
    await deprecate_images(cloud, REGIONS, "ipxe-a", deprecate=False)
    for image in all_images(sim):
        assert image["status"] == "Available"
        assert REPLACEMENT_TAG not in image["tags"], image["tags"]
    assert sim.calls.count("UntagResources") == len(REGIONS)


async def test_regions_capability_map(sim: Simulator, cloud: Cloud) -> None:
    """regions detects direct, relay and copy-only with reasons, caches them, leaks no bucket."""
    wanted = ["ap-southeast-1", "cn-beijing", "cn-heyuan", "cn-zhangjiakou"]
    found = {r.region: r for r in await detect_capabilities(cloud, wanted)}
    assert found["ap-southeast-1"].capability == "direct"
    assert found["cn-beijing"].capability == "relay"
    assert found["cn-heyuan"].capability == "copy-only"
    assert found["cn-zhangjiakou"].capability == "copy-only"
    assert all(r.reason for r in found.values())
    assert CapabilityCache.for_scope(cloud.cache_scope).load() == {
        "ap-southeast-1": "direct",
        "cn-beijing": "relay",
        "cn-heyuan": "copy",
        "cn-zhangjiakou": "copy",
    }
    assert_no_leaks(sim)


async def test_setup_creates_then_finds_roles() -> None:
    """setup creates both roles with their policies on a bare account, then finds them."""
    async with Simulator(seed=0, profile="none", preset_roles=False) as bare:
        endpoints = Endpoints.from_dict(bare.endpoints)
        dry = await setup_account(endpoints, dry_run=True)
        assert {s.state for s in dry.steps} == {"would create"}
        ram = bare.ctx.models["ram"]
        assert not ram.role_exists("AliasyncRelayRole")
        first = await setup_account(endpoints)
        assert first.exit_code == 0 and {s.state for s in first.steps} == {"created"}
        assert ram.role_trusts("AliyunECSImageImportDefaultRole", "ecs.aliyuncs.com")
        assert ram.role_has_policy(
            "AliyunECSImageImportDefaultRole", "AliyunECSImageImportRolePolicy"
        )
        assert ram.role_trusts("AliasyncRelayRole", "fc.aliyuncs.com")
        assert ram.role_has_policy("AliasyncRelayRole", "AliyunOSSFullAccess")
        again = await setup_account(endpoints)
        assert {s.state for s in again.steps} == {"existed"}


async def test_release_tables(sim: Simulator) -> None:
    """The release tables list each region's images with architecture and a console link."""
    report = await run_import(sim, [BIOS, UEFI], name="ipxe-a", regions=REGIONS)
    md, wiki = markdown(report), dokuwiki(report)
    for region, names in report.image_ids().items():
        for name, image_id in names.items():
            link = f"https://ecs.console.aliyun.com/server/region/{region}?imageId={image_id}"
            assert f"| {region} | {architecture(name)} | {name} | [{image_id}]({link}" in md
            assert f"[[{link}" in wiki
    assert architecture("ipxe-a-uefi-arm64") == "arm64"
    assert architecture("ipxe-a-hybrid-multi") == "x86_64+arm64"
    assert architecture("ipxe-a") == "x86_64"


async def test_cli_lifecycle(sim: Simulator, tmp_path: Path) -> None:
    """The CLI writes release notes, lists, probes, sets up, refuses bad input (2), deletes."""
    endpoints = str(sim.write_endpoints(tmp_path / "e.json"))
    md = tmp_path / "release.md"
    code, _, err = await aliasync(
        "import", "--endpoints", endpoints, "-n", "ipxe-a", "-r", "ap-southeast-1",
        "--markdown", str(md), str(BIOS),
    )  # fmt: skip
    assert code == 0, err
    assert "ap-southeast-1" in md.read_text()
    code, out, err = await aliasync("list", "--endpoints", endpoints, "--json")
    assert code == 0, err
    assert [i["name"] for i in json.loads(out)["images"]] == ["ipxe-a"]
    code, _, err = await aliasync("delete", "--endpoints", endpoints, "ipxe-nope")
    assert code == 2 and "no image named" in err
    code, _, err = await aliasync("list", "--endpoints", endpoints, "-r", "xx-nowhere-1")
    assert code == 2 and "unknown region" in err
    code, _, err = await aliasync(
        "prune", "--endpoints", endpoints, "--family", "ipxe", "--retain", "0"
    )
    assert code == 2 and "--all" in err
    assert len(all_images(sim)) == 1
    code, out, err = await aliasync("regions", "--endpoints", endpoints, "-r", "cn-heyuan")
    assert code == 0, err
    assert "copy-only" in out
    code, out, err = await aliasync("setup", "--endpoints", endpoints, "--json")
    assert code == 0, err
    assert {s["state"] for s in json.loads(out)["steps"]} == {"existed"}
    code, out, err = await aliasync("delete", "--endpoints", endpoints, "ipxe-a")
    assert code == 0, err
    assert "deleted" in out
    assert not all_images(sim)
    assert_no_leaks(sim)
