"""Killing the command line at one kind of step, then resuming it: the crash matrix's machinery.

The CLI runs in a process of its own against an emulator in this process. A watcher on the
emulator's call log sees each call as it is answered; when the wanted step shows, it stops the
emulator's clock, so the cloud stands at that step (every task keeps its status, every further
call waits in its latency) while the CLI is SIGKILLed, whatever the machine's speed. The clock
runs again only once the next session's first call has arrived, so that no virtual time passes
while it starts up. Then ``aliasync import --resume RUN`` must finish the job: every
(region, image) once with the right content, nothing leaked, exit 0.

Used by ``tests/pipeline/test_crash.py`` (a subset) and ``benchmarks/fault_campaign.py`` (all).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from aliasync import inspect_image
from aliasync.pipeline._journal import Journal
from aliasync.sim import CallRecord, FaultProfile, Simulator, profile
from tests.importing import BIOS, UEFI, rebuilt, sha256

# Two uploading regions, a relay region and two copy regions (one without FC, one without
# new buckets): every strategy, and copies from more than one source.
REGIONS = ("ap-southeast-1", "eu-central-1", "cn-beijing", "cn-heyuan", "cn-zhangjiakou")
UPLOADERS = REGIONS[:2]
NAME = "ipxe-crash"
BIG_SIZE = 20 * 2**20  # three 8 MiB parts: a multipart upload with parts in flight
STEP_TIMEOUT = 120.0  # real seconds a session may take to reach its step (a hung run fails)

# (the case's emulator, an answered call) -> the virtual instant to stop the clock at, or None.
Reached = Callable[["Watch", CallRecord], float | None]


@dataclass
class Watch:
    """What a step's test sees: the emulator, and the images a first run made (overwrite)."""

    sim: Simulator
    old_ids: set[str] = field(default_factory=set)


def _on(action: str, *, region: str | None = None, ok: bool = False) -> Reached:
    """The step is the first answer to ``action`` (in ``region``; successful if ``ok``)."""

    def reached(watch: Watch, call: CallRecord) -> float | None:
        if call.action != action or (region is not None and call.region != region):
            return None
        if ok and call.status != 200:
            return None
        return watch.sim.clock.now()

    return reached


def _relay_running(watch: Watch, call: CallRecord) -> float | None:
    """A relay function, invoked and not yet answered, has made its first download."""
    invoking = any(k[:2] == ("fc", "InvokeFunction") for k in watch.sim.calls.in_flight)
    if call.origin is not None and call.action == "GetObject" and invoking:
        return watch.sim.clock.now()
    return None


def _relay_outlasting_uploads(watch: Watch, call: CallRecord) -> float | None:
    """Every uploading region has finished (family set on its last image) while a relay is
    still in flight: a resume has no upload left to relay from but those finished ones."""
    if call.action != "ModifyImageAttribute" or call.status != 200:
        return None
    if not any(k[:2] == ("fc", "InvokeFunction") for k in watch.sim.calls.in_flight):
        return None
    regions = watch.sim.ctx.models["ecs"].snapshot()["regions"]
    done = [i for r in UPLOADERS for i in regions.get(r, {}).get("images", []) if i["family"]]
    return watch.sim.clock.now() if len(done) == 2 * len(UPLOADERS) else None


def _copy_queued(watch: Watch, call: CallRecord) -> float | None:
    """A CopyImage was accepted and some copy waits in its source's queue behind another."""
    if call.action != "CopyImage" or call.status != 200:
        return None
    state = watch.sim.ctx.models["ecs"].snapshot()
    now = state["now"]
    jobs = [j for q in state["copy_queues"].values() for j in q if not j["cancelled"]]
    return now if any(j["start"] > now for j in jobs) else None


def _copy_running(watch: Watch, call: CallRecord) -> float | None:
    """A copy has been running for a minute (stops the clock then, mid-copy)."""
    if call.action != "CopyImage" or call.status != 200:
        return None
    state = watch.sim.ctx.models["ecs"].snapshot()
    now = state["now"]
    jobs = [j for q in state["copy_queues"].values() for j in q if not j["cancelled"]]
    starts = [max(now, j["start"]) + 60.0 for j in jobs if j["end"] > max(now, j["start"]) + 60]
    return min(starts) if starts else None


def _last_old_image_deleted(watch: Watch, call: CallRecord) -> float | None:
    """DeleteImage took the last old image in its region: only the snapshot sweep is left
    there before the new images go in."""
    if call.action != "DeleteImage" or call.status != 200 or call.region is None:
        return None
    region = watch.sim.ctx.models["ecs"].snapshot()["regions"].get(call.region, {})
    left = [i for i in region.get("images", []) if i["id"] in watch.old_ids]
    return None if left else watch.sim.clock.now()


@dataclass(frozen=True)
class Step:
    """A kind of step to kill the CLI at, and the run that gets there."""

    name: str
    reached: Reached
    public: bool = False
    overwrite: bool = False  # a first run publishes the images; the killed run overwrites
    big: bool = False  # a multi-part image instead of the BIOS one
    copy_slots: int = 5  # copies the emulator runs at once per source region
    copy_concurrency: int = 5  # the importer's --copy-concurrency
    cold_start: float | None = None  # virtual seconds a function's first invocation waits


STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step("planning", _on("CreateBucket")),
        Step("upload", _on("UploadPart", ok=True), big=True),
        Step("relay", _relay_running),
        Step("relay-outlasting-uploads", _relay_outlasting_uploads, cold_start=1200.0),
        Step("import", _on("ImportImage", region="ap-southeast-1", ok=True)),
        Step("import-relayed", _on("ImportImage", region="cn-beijing", ok=True)),
        Step("copy-queued", _copy_queued, copy_slots=1),
        Step("copy-running", _copy_running),
        Step("overwrite", _on("DeleteImage", ok=True), overwrite=True),
        Step("overwrite-last", _last_old_image_deleted, overwrite=True),
        Step("publishing", _on("ModifyImageSharePermission"), public=True),
        Step("cleanup", _on("DeleteBucket", region="ap-southeast-1")),
    )
}


@dataclass
class CrashOutcome:
    """What one case did: each kill, the final session, and what is wrong (empty: nothing)."""

    step: str
    kills: int
    # Per kill: the step was reached. A resumed session may have no such step left (the calls
    # the killed one had sent were served after its death): it then runs to the end.
    reached: list[bool] = field(default_factory=list)
    signals: list[int | None] = field(default_factory=list)  # per kill: the exit status
    exit_code: int | None = None  # of the final resume
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stderr: str = ""
    strategies: dict[str, list[str]] = field(default_factory=dict)  # final report, per region

    @property
    def ok(self) -> bool:
        return not self.problems


def _images(work: Path, big: bool) -> list[Path]:
    if not big:
        return [BIOS, UEFI]
    path = work / "ipxe-big.usb"
    with path.open("wb") as out:
        out.write(BIOS.read_bytes())
        out.truncate(BIG_SIZE)
    return [path, UEFI]


def _run_id(state: Path) -> str:
    journal = Journal(state / "journal.sqlite3")
    try:
        return journal.run(None).run_id
    finally:
        journal.close()


class _Trap:
    """Stops the emulator's clock the first time ``step`` is reached, while armed."""

    def __init__(self, watch: Watch, step: Step) -> None:
        self.watch, self.step = watch, step
        self.armed = False
        watch.sim.calls.watchers.append(self)

    def __call__(self, call: CallRecord) -> None:
        if self.armed:
            at = self.step.reached(self.watch, call)
            if at is not None:
                self.armed = False
                self.watch.sim.clock.pause(at=at, hold_calls=True)


async def _first_call(sim: Simulator, process: anyio.abc.Process, before: int) -> None:
    """Wait until ``process`` has sent its first call (or ended), then let the clock run."""
    with anyio.fail_after(STEP_TIMEOUT):
        while sim.calls.arrivals[None] == before and process.returncode is None:  # noqa: ASYNC110
            await anyio.sleep(0.01)
    sim.clock.resume()


async def _killed_session(
    sim: Simulator, trap: _Trap, command: list[str], env: dict[str, str], outcome: CrashOutcome
) -> None:
    """Run ``command`` until the step is reached, SIGKILL it there, and record that."""
    trap.armed = True
    before = sim.calls.arrivals[None]
    process = await anyio.open_process(command, env=env, stdout=-3, stderr=-3)
    async with process:
        await _first_call(sim, process, before)
        with anyio.fail_after(STEP_TIMEOUT):
            while not sim.clock.paused and process.returncode is None:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        reached = sim.clock.paused
        if reached:
            process.send_signal(signal.SIGKILL)
        await process.wait()
    trap.armed = False
    outcome.reached.append(reached)
    outcome.signals.append(process.returncode)
    # The clock stays stopped until the next session's first call (the killed session's calls
    # in flight are served then, as a cloud serves calls whose client has died).


async def crash_case(
    step: Step,
    *,
    kills: int = 1,
    seed: int = 1,
    fault_profile: FaultProfile | None = None,
    regions: Sequence[str] = REGIONS,
) -> CrashOutcome:
    """Kill the CLI ``kills`` times in a row at ``step`` (the first run, then each resume),
    resume once more to the end, and check the outcome."""
    started = time.monotonic()
    outcome = CrashOutcome(step.name, kills)
    work = Path(tempfile.mkdtemp(prefix="aliasync-crash-"))
    env = {**os.environ, "ALIASYNC_STATE_DIR": str(work / "state")}
    chosen = (fault_profile or profile("none")).with_(copy_concurrency=step.copy_slots)
    if step.cold_start is not None:
        chosen = chosen.with_(cold_start_seconds=step.cold_start)
    try:
        async with Simulator(seed=seed, profile=chosen) as sim:
            endpoints = str(sim.write_endpoints(work / "endpoints.json"))
            images = _images(work, step.big)
            base = [sys.executable, "-m", "aliasync", "import", "--endpoints", endpoints]
            command = [
                *base, "-n", NAME, *[a for r in regions for a in ("-r", r)],
                "--copy-concurrency", str(step.copy_concurrency),
                *(["--public"] if step.public else []), *map(str, images),
            ]  # fmt: skip
            old_ids: set[str] = set()
            if step.overwrite:
                # The first run publishes older builds of the same images: a run with the same
                # content would find them published already and overwrite nothing.
                older = rebuilt(images, work)
                first_command = [*command[: -len(images)], *map(str, older)]
                first = await anyio.run_process(first_command, env=env, check=False)
                if first.returncode != 0:
                    outcome.problems.append(f"the first run ended {first.returncode}")
                    return outcome
                old_ids = {i["id"] for i in _all_images(sim)}
                command.append("--overwrite")
            trap = _Trap(Watch(sim, old_ids), step)
            for _ in range(kills):
                await _killed_session(sim, trap, command, env, outcome)
                command = [*base, "--resume", _run_id(work / "state"), "--json"]
            before = sim.calls.arrivals[None]
            process = await anyio.open_process(command, env=env)
            async with process:
                await _first_call(sim, process, before)
                with anyio.fail_after(STEP_TIMEOUT * 2):
                    out, err = await _communicate(process)
            outcome.exit_code, outcome.stderr = process.returncode, err
            outcome.problems += _check(sim, outcome, step, images, regions, out, old_ids)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        outcome.seconds = time.monotonic() - started
    return outcome


async def _communicate(process: anyio.abc.Process) -> tuple[str, str]:
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    async def drain(stream: Any, into: list[bytes]) -> None:
        async for chunk in stream:
            into.append(chunk)

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain, process.stdout, chunks["out"])
        tg.start_soon(drain, process.stderr, chunks["err"])
    await process.wait()
    return b"".join(chunks["out"]).decode(), b"".join(chunks["err"]).decode()


def _all_images(sim: Simulator) -> list[dict[str, Any]]:
    regions = sim.ctx.models["ecs"].snapshot()["regions"]
    return [i for r in regions.values() for i in r["images"]]


def _check(
    sim: Simulator,
    outcome: CrashOutcome,
    step: Step,
    images: Sequence[Path],
    regions: Sequence[str],
    out: str,
    old_ids: set[str],
) -> list[str]:
    """Everything wrong after the final resume (empty: the case passed)."""
    problems = []
    for number, (reached, status) in enumerate(
        zip(outcome.reached, outcome.signals, strict=True), 1
    ):
        if not reached and number == 1:
            problems.append(f"the step was never reached (exit {status})")
        elif not reached and status != 0:
            problems.append(f"session {number} (step not reached) ended {status}")
        elif reached and status != -signal.SIGKILL:
            problems.append(f"kill {number}: the CLI ended {status}, not by SIGKILL")
    if outcome.exit_code != 0:
        last = outcome.stderr.strip().splitlines()[-1:] or [""]
        problems.append(f"resume exit {outcome.exit_code}: {last[0][:200]}")
    state = sim.ctx.models["ecs"].snapshot()["regions"]
    for region in regions:
        for path in images:
            name = NAME + inspect_image(path).suffix
            found = [i for i in state.get(region, {}).get("images", []) if i["name"] == name]
            if len(found) != 1:
                problems.append(f"{region}: {len(found)} images named {name}")
                continue
            (image,) = found
            if image["status"] != "Available":
                problems.append(f"{region}/{name}: {image['status']}")
            if image["content_digest"] != sha256(path):
                problems.append(f"{region}/{name}: wrong content")
            if image["public"] != step.public:
                problems.append(f"{region}/{name}: public is {image['public']}")
            if image["id"] in old_ids:
                problems.append(f"{region}/{name}: the old image was not overwritten")
    leaks = {kind: found for kind, found in sim.leaks().items() if found}
    if leaks:
        problems.append("leaked " + ", ".join(f"{len(v)} {k}" for k, v in sorted(leaks.items())))
    if outcome.exit_code == 0:
        try:
            report = json.loads(out)
            status = report["status"]
            outcome.strategies = {
                r["region"]: [i["strategy"] for i in r["images"]] for r in report["regions"]
            }
        except (ValueError, KeyError):
            status = "unreadable"
        if status != "success":
            problems.append(f"the report says {status}")
    return problems
