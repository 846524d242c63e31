"""The lifecycle commands under lost responses and transient faults, and with one region down:
every command still ends where it should, and a failing region costs exit 1, not the others."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from aliasync.cloud._cloud import Cloud
from aliasync.cloud._endpoints import Endpoints
from aliasync.lifecycle._images import (
    REPLACEMENT_TAG,
    Outcome,
    delete_images,
    deprecate_images,
    prune_images,
    share_images,
)
from aliasync.sim import FaultProfile, FaultRule, Simulator, profile
from tests.importing import (
    BIOS,
    UEFI,
    assert_no_leaks,
    assert_published,
    images_named,
    rebuilt,
    run_import,
)

pytestmark = pytest.mark.anyio

REGIONS = ("ap-southeast-1", "eu-central-1", "cn-heyuan")
ACCOUNT = "1234567890123456"
# Every call of the lifecycle that changes something, and the reads they depend on.
MUTATING = ("ModifyImageSharePermission", "ModifyImageAttribute", "TagResources",
            "UntagResources", "DeleteImage", "DeleteSnapshot")  # fmt: skip
SCENARIOS: dict[str, FaultProfile] = {
    # Half of the changing calls are made and their answers lost: each retry meets the change.
    "lost responses": profile("none").with_(
        rules=tuple(FaultRule(f"ecs:{a}:*", lost_response_rate=0.5) for a in MUTATING)
    ),
    # A fifth of every ECS call fails (500, 503, Throttling, dropped connections).
    "transient faults": profile("none").with_(rules=(FaultRule("ecs:*", transient_rate=0.2),)),
}


def images(sim: Simulator) -> list[dict[str, Any]]:
    return [i for r in sim.ctx.models["ecs"].snapshot()["regions"].values() for i in r["images"]]


def named(sim: Simulator, name: str) -> list[dict[str, Any]]:
    return [i for i in images(sim) if i["name"] == name]


def done(outcome: Outcome) -> None:
    assert not outcome.errors, outcome.to_dict()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_every_lifecycle_command_ends_right_under_faults(scenario: str) -> None:
    """publish, unpublish, share, unshare, deprecate, undeprecate, prune and delete, each over
    three regions under the scenario's faults: every one succeeds, with the cloud as asked."""
    async with Simulator(seed=51, profile="none") as sim:
        for name in ("ipxe-old", "ipxe-new"):
            await run_import(sim, [BIOS, UEFI], name=name, regions=REGIONS)
        sim.ctx.faults.profile = SCENARIOS[scenario]
        cloud = await Cloud.open(Endpoints.from_dict(sim.endpoints))
        try:
            done(await share_images(cloud, REGIONS, "ipxe-new", publish=True))
            assert [i["public"] for i in named(sim, "ipxe-new")] == [True] * 3
            done(await share_images(cloud, REGIONS, "ipxe-new", publish=False))
            done(await share_images(cloud, REGIONS, "ipxe-new", publish=True, accounts=[ACCOUNT]))
            shared = named(sim, "ipxe-new")
            assert [i["shared_accounts"] for i in shared] == [[ACCOUNT]] * 3
            assert not any(i["public"] for i in shared)
            done(await share_images(cloud, REGIONS, "ipxe-new", publish=False, accounts=[ACCOUNT]))
            done(await deprecate_images(cloud, REGIONS, "ipxe-old", replacement="ipxe-new"))
            old = named(sim, "ipxe-old")
            assert {(i["status"], i["tags"].get(REPLACEMENT_TAG)) for i in old} == {
                ("Deprecated", "ipxe-new")
            }
            done(await deprecate_images(cloud, REGIONS, "ipxe-old", deprecate=False))
            old = named(sim, "ipxe-old")
            assert {i["status"] for i in old} == {"Available"}
            assert not any(REPLACEMENT_TAG in i["tags"] for i in old)
            done(await prune_images(cloud, REGIONS, family="ipxe", retain=1))
            assert {i["name"] for i in images(sim)} == {"ipxe-new", "ipxe-new-uefi-x86-64"}
            done(await delete_images(cloud, REGIONS, name="ipxe-new"))
            assert {i["name"] for i in images(sim)} == {"ipxe-new-uefi-x86-64"}
        finally:
            await cloud.aclose()
        counts = sim.ctx.faults.counts()
        assert counts["lost"] >= 5 if scenario == "lost responses" else sum(counts.values()) >= 5
        assert_no_leaks(sim)


async def aliasync(*args: str) -> tuple[int, dict[str, Any], str]:
    result = await anyio.run_process(
        [sys.executable, "-m", "aliasync", *args, "--json"], check=False, env=dict(os.environ)
    )
    return result.returncode, json.loads(result.stdout or b"{}"), result.stderr.decode()


COMMANDS = {
    "publish": (["publish", "ipxe-c"], "published"),
    "unpublish": (["unpublish", "ipxe-c"], "unpublished"),
    "deprecate": (["deprecate", "ipxe-c", "--replacement", "ipxe-d"], "deprecated"),
    "undeprecate": (["undeprecate", "ipxe-c"], "undeprecated"),
    "prune": (["prune", "--family", "ipxe", "--retain", "0", "--all"], "deleted"),
    "delete": (["delete", "ipxe-c"], "deleted"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
async def test_one_region_failing_gives_exit_1_while_the_others_finish(
    command: str, tmp_path: Path
) -> None:
    """Every changing ECS call fails in one region: the command exits 1, names that region's
    error, and has done its work in the other two."""
    down = REGIONS[2]
    async with Simulator(seed=52, profile="none") as sim:
        await run_import(sim, [BIOS], name="ipxe-c", regions=REGIONS)
        if command == "undeprecate":
            cloud = await Cloud.open(Endpoints.from_dict(sim.endpoints))
            try:
                done(await deprecate_images(cloud, REGIONS, "ipxe-c", replacement="ipxe-d"))
            finally:
                await cloud.aclose()
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        rules = tuple(FaultRule(f"ecs:{a}:{down}", transient_rate=1.0) for a in MUTATING)
        sim.ctx.faults.profile = profile("none").with_(rules=rules)
        args, verb = COMMANDS[command]
        regions = [a for r in REGIONS for a in ("-r", r)]
        code, report, err = await aliasync(*args, "--endpoints", endpoints, *regions)
        assert code == 1, err
        assert list(report["errors"]) == [down] and report["errors"][down]
        assert {a["region"] for a in report["actions"]} == set(REGIONS[:2])
        assert {a["action"] for a in report["actions"]} == {verb}
        if command in ("prune", "delete"):
            assert [r for r in REGIONS if images_named(sim, r, "ipxe-c")] == [down]
        else:
            changed = {
                "publish": ("public", True),
                "unpublish": ("public", False),
                "deprecate": ("status", "Deprecated"),
                "undeprecate": ("status", "Available"),
            }
            key, value = changed[command]
            assert [images_named(sim, r, "ipxe-c")[0][key] == value for r in REGIONS[:2]] == [
                True
            ] * 2
        assert sim.faults_injected()["counts"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_overwrite_under_faults_replaces_every_image_and_leaves_nothing(
    scenario: str, tmp_path: Path
) -> None:
    """--overwrite of public images under the scenario's faults: the old images and their
    snapshots are gone, the new ones published once each, nothing leaked."""
    async with Simulator(seed=53, profile="none") as sim:
        await run_import(sim, [BIOS, UEFI], name="ipxe-o", regions=REGIONS, public=True)
        old = {i["id"] for i in images(sim)}
        sim.ctx.faults.profile = SCENARIOS[scenario]
        new = rebuilt([BIOS, UEFI], tmp_path)
        report = await run_import(
            sim, new, name="ipxe-o", regions=REGIONS, public=True, overwrite=True
        )
        assert_published(sim, report, new, name="ipxe-o", regions=REGIONS, public=True)
        assert not old & {i["id"] for i in images(sim)}
        assert sim.ctx.faults.counts()
        assert_no_leaks(sim)
