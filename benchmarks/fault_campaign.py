"""Fault campaign: full imports against the emulator under every kind of fault, many seeds.

Every run must end with every (region, image) Available with the right content, no duplicate
images, and an empty ``leaks()``. Prints one table row per scenario.

    .venv/bin/python benchmarks/fault_campaign.py --seeds 5
    .venv/bin/python benchmarks/fault_campaign.py --seeds 2 \\
        --regions ap-southeast-1,cn-beijing,cn-heyuan
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import anyio

from aliasync.sim import PROFILES, FaultProfile, FaultRule, Simulator

ROOT = Path(__file__).resolve().parent.parent
IMAGES = [ROOT / "examples" / "ipxe-bios.usb", ROOT / "examples" / "ipxe-uefi.usb"]
MUTATING = [
    *("ecs:ImportImage", "ecs:CopyImage", "ecs:DeleteImage", "ecs:ModifyImageAttribute"),
    *("ecs:ModifyImageSharePermission", "ecs:TagResources", "ecs:DeleteSnapshot"),
    *("oss:CreateBucket", "oss:DeleteBucket", "oss:PutObject", "oss:CreateMultipartUpload"),
    *("oss:UploadPart", "oss:CompleteMultipartUpload", "oss:AbortMultipartUpload"),
    *("oss:DeleteObjects", "fc:CreateFunction", "fc:DeleteFunction", "fc:InvokeFunction"),
]

NONE = PROFILES["none"]
SCENARIOS: dict[str, tuple[FaultProfile, bool]] = {
    "transient 0%": (NONE, False),
    "transient 1%": (PROFILES["default"], False),
    "transient 5%": (NONE.with_(transient_rate=0.05, download_failure_rate=0.1), False),
    "lost responses": (
        NONE.with_(rules=tuple(FaultRule(f"{a}:*", lost_response_rate=0.2) for a in MUTATING)),
        False,
    ),
    "throttling storms": (NONE.with_(throttle_burst_rate=0.01, throttle_burst_seconds=30), False),
    "download cuts": (NONE.with_(download_failure_rate=0.5), False),
    "failed imports": (NONE.with_(import_failure_rate=0.3), False),
    "cold starts+timeouts": (NONE.with_(cold_start_seconds=30, function_timeout_rate=0.3), False),
    "harsh": (PROFILES["harsh"], False),
    "SIGKILL + resume": (PROFILES["default"], True),
}


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


async def one_run(profile: FaultProfile, kill: bool, seed: int, regions: list[str]) -> Outcome:
    state = tempfile.mkdtemp(prefix="aliasync-campaign-")
    env = {**os.environ, "ALIASYNC_STATE_DIR": state}
    async with Simulator(seed=seed, profile=profile, time_scale=200.0) as sim:
        endpoints = str(sim.write_endpoints(Path(state) / "endpoints.json"))
        args = [sys.executable, "-m", "aliasync", "import", "--endpoints", endpoints]
        region_args = [a for r in regions for a in ("-r", r)]
        command = [*args, "-n", "ipxe-campaign", *region_args, *map(str, IMAGES)]
        if kill:
            process = await anyio.open_process(command, env=env, stdout=-3, stderr=-3)
            async with process:
                target = 1 + seed % 4  # kill at a different point each seed
                with anyio.move_on_after(60):
                    while sim.calls.count("ImportImage") < target:  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                process.send_signal(signal.SIGKILL)
                await process.wait()
            command = [*args, "--resume"]
        done = await anyio.run_process(command, env=env, check=False)
        detail = check(sim, regions, "ipxe-campaign")
        if done.returncode != 0:
            detail = f"exit {done.returncode}; " + detail
        retries = sum(1 for r in sim.calls.records if r.status == 0 or r.status >= 500 or r.fault)
        return Outcome(
            done.returncode == 0 and not detail, sim.ctx.faults.counts(), retries, detail
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--regions", help="comma-separated (default: every region)")
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    args = parser.parse_args()
    async with Simulator() as probe:
        regions = args.regions.split(",") if args.regions else probe.ctx.regions.ids()
    print(f"{'scenario':22} {'runs':>4} {'ok':>3} {'retries':>8}  faults injected")
    failures = []
    for name, (profile, kill) in SCENARIOS.items():
        if args.only and args.only not in name:
            continue
        faults: Counter[str] = Counter()
        ok = retries = 0
        for seed in range(1, args.seeds + 1):
            outcome = await one_run(profile, kill, seed, regions)
            faults += outcome.faults
            retries += outcome.retries
            ok += outcome.ok
            if not outcome.ok:
                failures.append(f"{name} seed {seed}: {outcome.detail}")
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(faults.items())) or "-"
        print(f"{name:22} {args.seeds:>4} {ok:>3} {retries:>8}  {kinds}", flush=True)
    for failure in failures:
        print("FAILED", failure)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    anyio.run(main)
