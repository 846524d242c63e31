"""Benchmarks 1 and 2: makespan against the model's lower bound, and API calls per image.

Four images into the emulator's default region map, without faults and with the default fault
profile, the importer (``import_images``) in its own process; each with one copy slot per source
region (the 2021 CopyImage documentation) and with five (the current one), the importer told the
same. The tables are drawn by ``benchmarks/_makespan_tables.py``. Upload and relay durations are not
in the model (they run at loopback speed), so they are measured first, each alone in an idle
emulator at the same time scale, and the bounds use those (see aliasync/sim/_bounds.py).

Real time spent computing is multiplied by the time scale in virtual time, so each profile runs
at two time scales; a straight line through the two makespans, evaluated at time scale 1,
estimates what the same run would take against the real cloud (where CPU time is not amplified).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from aliasync import inspect_image
from aliasync.sim import FaultProfile, RegionMap, profile
from aliasync.sim._bounds import ImageCost, copy_queue_bound, lower_bound, phase_barrier
from aliasync.sim.ecs._state import parse_iso
from benchmarks._harness import Hosted, child, four_images, hosted

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Variant:
    """One setting of the benchmark: a fault profile and the cloud's copy slots per region."""

    faults: str  # the emulator's fault profile
    slots: int  # copies a source region runs at once; the importer is told the same
    scales: tuple[float, ...]  # the first is the headline; two give the time-scale slope
    public: bool = False  # --public: published once no region needs a copy source

    def model(self) -> FaultProfile:
        return profile(self.faults).with_(copy_concurrency=self.slots)


SCALES = (20.0, 50.0)  # the first is the headline; the two give the slope
# Five slots is the current CopyImage documentation and the default; one the 2021 figure.
VARIANTS = {
    "none": Variant("none", 5, SCALES),
    "default": Variant("default", 5, SCALES),
    "default, --public": Variant("default", 5, SCALES[:1], public=True),
    "none, 1 slot": Variant("none", 1, SCALES[:1]),
    "default, 1 slot": Variant("default", 1, SCALES[:1]),
}
HEADLINE = "default"  # drawn as benchmarks/timeline.svg
TARGETS = {"none": 1.03, "default": 1.10}  # by fault profile
POLLS_PER_WAIT = 10  # "adapts": at most this many polls per wait, however long the wait
KINDS = ("direct", "relay", "copy")
Event = tuple[float, str, str, str | None, str]  # virtual s, region, stage, image, message
Copy = tuple[str, float, float, float, str, str]  # source, CopyImage at, start, end, region, image


async def calibrate(workdir: Path, paths: list[Path], time_scale: float) -> dict[str, Any]:
    """Upload and relay each image alone (real seconds, in an idle emulator)."""
    async with hosted(workdir, profile="none", time_scale=time_scale) as host:
        got = await child(
            workdir, "calibrate", host.endpoints_file, "ap-southeast-1", "cn-beijing", *paths
        )
    return {"upload": got["upload"], "relay": got["relay"]}


def costs(paths: list[Path], measured: dict[str, Any], time_scale: float) -> list[ImageCost]:
    """The calibration as the bounds need it: virtual seconds at ``time_scale``."""
    return [
        ImageCost(
            name="bench" + inspect_image(p).suffix,
            size=p.stat().st_size,
            upload=measured["upload"][str(p)] * time_scale,
            relay=measured["relay"][str(p)] * time_scale,
        )
        for p in paths
    ]


def bounds(images: list[ImageCost], variant: Variant) -> dict[str, Any]:
    regions, model = RegionMap.load(), variant.model()
    alone = lower_bound(regions, model, images)
    phased = phase_barrier(regions, model, images)
    return {
        "makespan": alone.makespan,
        "copy_queue": copy_queue_bound(regions, model, images),
        "phase_barrier": phased.makespan,
        "latest": {k: alone.latest(k) for k in KINDS},
    }


async def measure(
    workdir: Path, paths: list[Path], variant: Variant, time_scale: float, seed: int
) -> dict[str, Any]:
    """One run; everything in virtual seconds from the moment import_images was called."""
    model = variant.model()
    async with hosted(workdir, profile=model, time_scale=time_scale, seed=seed) as host:
        publicity = "public" if variant.public else "private"
        got = await child(
            workdir, "lib", host.endpoints_file, str(variant.slots), publicity, *paths
        )
        result = _analyse(host, got)
        result["run_id"] = got["run_id"]
        return result


def _analyse(host: Hosted, got: dict[str, Any]) -> dict[str, Any]:
    sim = host.sim
    start = host.virtual(got["ready"])
    report = got["report"]
    strategies = {r["region"]: r["strategy"] for r in report["regions"]}
    events: list[Event] = [
        (host.virtual(t) - start, region, stage, image, message)
        for t, region, stage, image, message in got["events"]
    ]
    done = {(r, i): t for t, r, s, i, _ in events if s == "done" and i is not None}
    ready: dict[tuple[str, str], float] = {}
    copies: list[Copy] = []
    for region, state in sim.ctx.models["ecs"].snapshot()["regions"].items():
        for image in state["images"]:
            if image["status"] != "Available":
                continue
            end = (parse_iso(image["ready_time"]) or 0.0) - start
            ready[(region, image["name"])] = end
            if image["copy_of"]:
                created = (parse_iso(image["creation_time"]) or 0.0) - start
                took = sim.ctx.faults.copy_seconds(image["content_bytes"])
                copies.append(
                    (image["copy_of"][0], created, end - took, end, region, image["name"])
                )
    images = len({i["name"] for r in report["regions"] for i in r["images"]})
    results = [i for r in report["regions"] for i in r["images"]]

    def first(stage: str, prefix: str = "") -> list[float]:
        return [t for t, _, s, _, m in events if s == stage and m.startswith(prefix)]

    return {
        "status": report["status"],
        "pairs": len(results),
        "succeeded": sum(1 for i in results if i["status"] == "success"),
        "makespan": max(done.values()),  # the importer knows every image is done
        "cloud_makespan": max(ready.values()),  # the last image became Available
        "run_end": host.virtual(got["end"]) - start,  # including cleanup
        "startup_real": got["ready"] - got["spawned"],
        "cpu_seconds": got["cpu_user"] + got["cpu_system"],
        "peak_rss_mb": got["peak_rss_mb"],
        "latest": {
            kind: max((t for (r, _), t in done.items() if strategies[r] == kind), default=0.0)
            for kind in KINDS
        },
        "milestones": {
            "every region planned": max(first("ready")),
            "first image done": min(done.values()),
            "first copy started": min(first("copy", "copying"), default=0.0),
        },
        "strategies": dict(Counter(strategies.values())),
        "calls": _calls(sim, strategies, images),
        "waits": _waits(events),
        "copy_slots": _copy_slots(copies, done, sim.ctx.faults.profile.copy_concurrency),
        "last": _last(events, done, copies),
        "faults": dict(sim.faults_injected()["counts"]),
        "leaks": {k: len(v) for k, v in sim.leaks().items() if v},
        "failed_events": [f"{r}: {m}" for _, r, s, _, m in events if s == "failed"][:5],
    }


def _waits(events: list[Event]) -> dict[str, float]:
    """Time spent waiting for imports and for copies (virtual s), and how many waits."""
    began: dict[tuple[str, str | None], tuple[str, float]] = {}
    spent: dict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    for t, region, stage, image, message in events:
        key = (region, image)
        if stage == "import" and message.startswith("m-") and message.endswith(" importing"):
            began[key] = ("import", t)  # ImportImage answered: the wait begins
        elif stage == "copy" and message.startswith("copying"):
            began[key] = ("copy", t)
        elif stage in ("done", "retry", "update", "publish") and key in began:
            kind, since = began.pop(key)
            spent[kind] += t - since
            count[kind] += 1
    return {f"{k}_seconds": v for k, v in spent.items()} | {
        f"{k}_waits": n for k, n in count.items()
    }


def _copy_slots(
    copies: list[Copy], done: dict[tuple[str, str], float], slots: int
) -> dict[str, float | None]:
    """How the copy slots of source regions were used.

    ``queued``: copies whose CopyImage came while the source's slot was busy (a poor pick).
    ``idle``: after a copy ended, how long its source's slot stayed free before the next copy
    from it began — the importer frees a slot only once its poll sees the copy Available.
    Measured with one slot per source only: with more, copies overlap and gaps mean nothing.
    """
    queued = [start - created for _, created, start, _, _, _ in copies]
    by_source: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for source, created, _, end, _, _ in copies:
        by_source[source].append((created, end))
    idle = []
    for jobs in by_source.values():
        jobs.sort()
        idle += [nxt[0] - prev[1] for prev, nxt in pairwise(jobs)]
    noticed = [done[(r, i)] - end for _, _, _, end, r, i in copies if (r, i) in done]
    return {
        "copies": len(copies),
        "queued": sum(1 for q in queued if q > 1),
        "follow_ups": len(idle),
        "idle_mean": statistics.mean(idle) if idle and slots == 1 else None,
        "notice_mean": statistics.mean(noticed) if noticed else 0.0,
    }


def _last(events: list[Event], done: dict[tuple[str, str], float], copies: list[Copy]) -> str:
    """The last (region, image) done, and how it got there."""
    region, image = max(done, key=lambda pair: done[pair])
    steps = [f"{t:.0f} {s}: {m}" for t, r, s, i, m in events if (r, i) == (region, image)]
    for source, created, start, end, r, name in copies:
        if (r, name) == (region, image):
            steps.append(f"(CopyImage from {source} at {created:.0f}, ran {start:.0f}-{end:.0f})")
    return f"{region}/{image}: " + "; ".join(steps)


def _calls(sim: Any, strategies: dict[str, str], images: int) -> dict[str, Any]:
    records = sim.calls.records
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        by_kind[strategies.get(r.region or "", "global")][f"{r.service}:{r.action}"] += 1
    regions = Counter(strategies.values())
    throttled = [r for r in records if r.error == "Throttling"]
    gaps = []
    for t in throttled:
        same = (t.service, t.action, t.region)
        later = [r.at for r in records if (r.service, r.action, r.region) == same and r.at > t.at]
        if later:
            gaps.append(min(later) - t.at)
    return {
        "total": len(records),
        "per_pair": len(records) / (len(strategies) * images),
        "by_action": dict(Counter(f"{r.service}:{r.action}" for r in records).most_common()),
        "per_pair_by_kind": {
            kind: {a: n / (regions[kind] * images) for a, n in counts.most_common()}
            for kind, counts in by_kind.items()
            if kind in regions
        },
        "faulted": sum(1 for r in records if r.fault),
        "throttled": len(throttled),
        "throttle_gap_median": statistics.median(gaps) if gaps else None,
    }


async def run(workdir: Path, *, seed: int = 1) -> dict[str, Any]:
    paths = four_images(workdir)
    keys = [f"{scale:g}" for scale in SCALES]  # JSON-safe keys
    results: dict[str, Any] = {
        "seed": seed,
        "scales": keys,
        "variants": {k: vars(v) | {"scales": list(v.scales)} for k, v in VARIANTS.items()},
        "runs": {},
        "images": {},
    }
    for key, scale in zip(keys, SCALES, strict=True):
        measured = await calibrate(workdir, paths, scale)
        images = costs(paths, measured, scale)
        results["images"][key] = [vars(i) for i in images]
        for name, variant in VARIANTS.items():
            if scale not in variant.scales:
                continue
            one = await measure(workdir, paths, variant, scale, seed)
            one["bound"] = bounds(images, variant)
            results["runs"].setdefault(name, {})[key] = one
            if name == HEADLINE and scale == SCALES[0]:
                _draw(workdir, one["run_id"], HERE / "timeline.svg")
        if scale == SCALES[0]:  # the bound against the real cloud: no amplification at all
            real = costs(paths, measured, 1.0)
            results["real_cloud_bound"] = {n: bounds(real, v) for n, v in VARIANTS.items()}
    for name in VARIANTS:
        if len(results["runs"][name]) < 2:
            continue
        (s1, r1), (s2, r2) = sorted((float(k), r) for k, r in results["runs"][name].items())[:2]
        slope = (r2["makespan"] - r1["makespan"]) / (s2 - s1)
        results.setdefault("extrapolated", {})[name] = {
            "makespan": r1["makespan"] + slope * (1 - s1),
            "real_seconds_amplified": slope,
        }
    return results


def _draw(workdir: Path, run_id: str, out: Path) -> None:
    """The headline run's timeline, from the importer's own journal."""
    from aliasync.cli._timeline import build_timeline, svg
    from aliasync.pipeline._journal import Journal

    journal = Journal(workdir / "state" / "journal.sqlite3")
    try:
        out.write_text(svg(build_timeline(journal.run(run_id), journal.steps(run_id))))
    finally:
        journal.close()


def markdown(results: dict[str, Any]) -> str:
    from benchmarks._makespan_tables import markdown as tables

    return tables(results)
