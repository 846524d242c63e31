"""Fault campaign: full imports under every kind of fault, the lifecycle commands under faults,
and the crash matrix (SIGKILL at each kind of step, then resume), against the emulator.

Every import must end with every (region, image) Available with the right content, no duplicate
images, and an empty ``leaks()``; every lifecycle command with the cloud as asked (exit 1 and
the other regions done when one region is down); every crash case as ``tests/crashing.py``
checks it. Prints one table row per scenario and exits 1 if anything failed.

    .venv/bin/python -m benchmarks.fault_campaign --seeds 3 --crash-seeds 2
    .venv/bin/python -m benchmarks.fault_campaign --only crash --crash-seeds 1
    .venv/bin/python -m benchmarks.fault_campaign --only faults --seeds 2 \\
        --regions ap-southeast-1,cn-beijing,cn-heyuan
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio

from aliasync.sim import PROFILES, FaultProfile, FaultRule, Simulator
from tests.crashing import STEPS, crash_case

ROOT = Path(__file__).resolve().parent.parent
IMAGES = [ROOT / "examples" / "ipxe-bios.usb", ROOT / "examples" / "ipxe-uefi.usb"]
MUTATING = [
    *("ecs:ImportImage", "ecs:CopyImage", "ecs:DeleteImage", "ecs:ModifyImageAttribute"),
    *("ecs:ModifyImageSharePermission", "ecs:TagResources", "ecs:UntagResources"),
    *("ecs:DeleteSnapshot", "oss:CreateBucket", "oss:DeleteBucket", "oss:PutObject"),
    *("oss:CreateMultipartUpload", "oss:UploadPart", "oss:CompleteMultipartUpload"),
    *("oss:AbortMultipartUpload", "oss:DeleteObjects", "fc:CreateFunction"),
    *("fc:DeleteFunction", "fc:InvokeFunction"),
]

NONE = PROFILES["none"]
LOST = NONE.with_(rules=tuple(FaultRule(f"{a}:*", lost_response_rate=0.2) for a in MUTATING))
SCENARIOS: dict[str, FaultProfile] = {
    "transient 0%": NONE,
    "transient 1%": PROFILES["default"],
    "transient 5%": NONE.with_(transient_rate=0.05, download_failure_rate=0.1),
    "lost responses": LOST,
    "throttling storms": NONE.with_(throttle_burst_rate=0.01, throttle_burst_seconds=30),
    "download cuts": NONE.with_(download_failure_rate=0.5),
    "failed imports": NONE.with_(import_failure_rate=0.3),
    "cold starts+timeouts": NONE.with_(cold_start_seconds=30, function_timeout_rate=0.3),
    "harsh": PROFILES["harsh"],
}
LIFECYCLE_REGIONS = ["ap-southeast-1", "eu-central-1", "cn-heyuan"]
DOWN = LIFECYCLE_REGIONS[2]
LIFECYCLE: dict[str, FaultProfile] = {
    "lost responses": LOST,
    "transient 5%": NONE.with_(transient_rate=0.05),
    "transient 20% (ECS)": NONE.with_(rules=(FaultRule("ecs:*", transient_rate=0.2),)),
    "one region down": NONE.with_(
        rules=tuple(FaultRule(f"{a}:{DOWN}", transient_rate=1.0) for a in MUTATING[2:8])
    ),
}
COMMANDS = [
    (["publish", "ipxe-campaign"], "published"),
    (["unpublish", "ipxe-campaign"], "unpublished"),
    (["deprecate", "ipxe-campaign", "--replacement", "ipxe-next"], "deprecated"),
    (["undeprecate", "ipxe-campaign"], "undeprecated"),
    (["delete", "ipxe-campaign"], "deleted"),
    (["prune", "--family", "ipxe", "--retain", "0", "--all"], "deleted"),  # ipxe-other
]


@dataclass
class Outcome:
    ok: bool
    faults: Counter[str]
    retries: int
    detail: str


def check(sim: Simulator, regions: list[str], name: str) -> str:
    """'' when every (region, image) is published correctly and nothing leaked."""
    from aliasync import inspect_image

    state = sim.ctx.models["ecs"].snapshot()["regions"]
    for region in regions:
        for path in IMAGES:
            disk = inspect_image(path)
            found = [
                i
                for i in state.get(region, {}).get("images", [])
                if i["name"] == name + disk.suffix
            ]
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if len(found) != 1 or found[0]["status"] != "Available":
                return f"{region}: {len(found)} images named {name + disk.suffix}"
            if found[0]["content_digest"] != digest:
                return f"{region}: wrong content"
    leaks = {k: v for k, v in sim.leaks().items() if v}
    return f"leaks: {sorted(leaks)}" if leaks else ""


def _retries(sim: Simulator) -> int:
    return sum(1 for r in sim.calls.records if r.status == 0 or r.status >= 500 or r.fault)


async def _cli(env: dict[str, str], *args: str) -> tuple[int, dict[str, object]]:
    done = await anyio.run_process([sys.executable, "-m", "aliasync", *args], env=env, check=False)
    try:
        return done.returncode, json.loads(done.stdout or b"{}")
    except ValueError:
        return done.returncode, {}


async def import_run(profile: FaultProfile, seed: int, regions: list[str]) -> Outcome:
    state = tempfile.mkdtemp(prefix="aliasync-campaign-")
    env = {**os.environ, "ALIASYNC_STATE_DIR": state}
    async with Simulator(seed=seed, profile=profile, time_scale=200.0) as sim:
        endpoints = str(sim.write_endpoints(Path(state) / "endpoints.json"))
        region_args = [a for r in regions for a in ("-r", r)]
        code, _ = await _cli(env, "import", "--endpoints", endpoints, "-n", "ipxe-campaign",
                             *region_args, *map(str, IMAGES))  # fmt: skip
        detail = check(sim, regions, "ipxe-campaign")
        if code != 0:
            detail = f"exit {code}; " + detail
        return Outcome(code == 0 and not detail, sim.ctx.faults.counts(), _retries(sim), detail)


async def lifecycle_run(profile: FaultProfile, seed: int, down: bool) -> Outcome:
    """Import two images fault-free, then every lifecycle command under ``profile`` (the
    whole series: each command's exit code, where it acted, what is left in the end)."""
    state = tempfile.mkdtemp(prefix="aliasync-campaign-")
    env = {**os.environ, "ALIASYNC_STATE_DIR": state}
    regions = [a for r in LIFECYCLE_REGIONS for a in ("-r", r)]
    async with Simulator(seed=seed, profile="none", time_scale=1000.0) as sim:
        endpoints = str(sim.write_endpoints(Path(state) / "endpoints.json"))
        for name in ("ipxe-campaign", "ipxe-other"):
            code, _ = await _cli(env, "import", "--endpoints", endpoints, "-n", name,
                                 *regions, str(IMAGES[0]))  # fmt: skip
            if code != 0:
                return Outcome(False, Counter(), 0, f"setup import exit {code}")
        sim.ctx.faults.profile = profile
        problems = []
        for args, verb in COMMANDS:
            code, report = await _cli(env, *args, "--endpoints", endpoints, *regions, "--json")
            actions = report.get("actions") or []
            assert isinstance(actions, list)
            where = {a["region"] for a in actions if a["action"] == verb}
            expected = set(LIFECYCLE_REGIONS) - ({DOWN} if down else set())
            if code != (1 if down else 0) or where != expected:
                problems.append(f"{args[0]}: exit {code}, {verb} in {sorted(where)}")
        left = [r for r in LIFECYCLE_REGIONS if sim.ctx.models["ecs"].images(r)]
        if left != ([DOWN] if down else []):
            problems.append(f"images left in {left}")
        orphans = [s for s in sim.ctx.models["ecs"].orphan_snapshots() if s["region"] != DOWN]
        if orphans:
            problems.append(f"{len(orphans)} orphan snapshots")
        counts = sim.ctx.faults.counts()
        return Outcome(not problems, counts, _retries(sim), "; ".join(problems))


def _row(name: str, runs: int, ok: int, retries: int, faults: Counter[str]) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(faults.items())) or "-"
    return f"| {name} | {runs} | {ok} | {retries} | {kinds} |"


async def _scenario_row(
    kind: str, name: str, seeds: int, run: Callable[[int], Awaitable[Outcome]], failures: list[str]
) -> str:
    """Run one scenario once per seed; its table row (failures are added to ``failures``)."""
    faults: Counter[str] = Counter()
    ok = retries = 0
    for seed in range(1, seeds + 1):
        outcome = await run(seed)
        faults += outcome.faults
        retries += outcome.retries
        ok += outcome.ok
        if not outcome.ok:
            failures.append(f"{kind}, {name}, seed {seed}: {outcome.detail}")
    return _row(name, seeds, ok, retries, faults)


async def fault_tables(args: argparse.Namespace, regions: list[str], failures: list[str]) -> None:
    print("| imports under | runs | ok | retries | faults injected |\n|---|---|---|---|---|")
    for name, chosen in SCENARIOS.items():
        row = await _scenario_row(
            "import", name, args.seeds, partial(import_run, chosen, regions=regions), failures
        )
        print(row, flush=True)
    print("\n| lifecycle commands under | runs | ok | retries | faults injected |")
    print("|---|---|---|---|---|")
    for name, chosen in LIFECYCLE.items():
        run = partial(lifecycle_run, chosen, down=name == "one region down")
        print(await _scenario_row("lifecycle", name, args.seeds, run, failures), flush=True)


async def crash_matrix(args: argparse.Namespace, failures: list[str]) -> None:
    profiles = {name: PROFILES[name] for name in args.crash_profiles.split(",")}
    print("\n| killed at | kills | profile | runs | ok | reached (per kill) | s per case |")
    print("|---|---|---|---|---|---|---|")
    for step in STEPS.values():
        for kills in (1, 2):
            for name, profile in profiles.items():
                ok, seconds, reached = 0, 0.0, Counter[int]()
                for seed in range(1, args.crash_seeds + 1):
                    outcome = await crash_case(step, kills=kills, seed=seed, fault_profile=profile)
                    ok += outcome.ok
                    seconds += outcome.seconds
                    reached.update(n for n, hit in enumerate(outcome.reached, 1) if hit)
                    if not outcome.ok:
                        failures.append(f"crash {step.name} x{kills} {name} seed {seed}: "
                                        + "; ".join(outcome.problems))  # fmt: skip
                runs = args.crash_seeds
                hits = "/".join(f"{reached[n]}" for n in range(1, kills + 1))
                print(f"| {step.name} | {kills} | {name} | {runs} | {ok} | {hits} "
                      f"| {seconds / runs:.1f} |", flush=True)  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="runs per fault scenario")
    parser.add_argument("--regions", help="comma-separated (default: every region)")
    parser.add_argument("--only", choices=("faults", "crash"), help="one part of the campaign")
    parser.add_argument("--crash-seeds", type=int, default=2, help="runs per crash case")
    parser.add_argument("--crash-profiles", default="none,default", help="fault profiles")
    args = parser.parse_args()
    async with Simulator() as probe:
        regions = args.regions.split(",") if args.regions else probe.ctx.regions.ids()
    started = time.monotonic()
    failures: list[str] = []
    if args.only != "crash":
        await fault_tables(args, regions, failures)
    if args.only != "faults":
        await crash_matrix(args, failures)
    print(f"\n{len(failures)} failed; {time.monotonic() - started:.0f} s")
    for failure in failures:
        print("FAILED", failure)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    anyio.run(main)
