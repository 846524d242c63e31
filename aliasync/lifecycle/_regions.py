"""The capability map: how each region can receive images, detected live and cached.

Detection is the importer's (:func:`aliasync.pipeline._regionplan.detect_strategy`), run under a
throwaway run whose probe buckets are always deleted afterwards, shielded from cancellation.
The result is saved in the capability cache, so the next import skips the probes.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import anyio

from aliasync._exceptions import AliasyncError
from aliasync.cloud._cloud import Cloud
from aliasync.pipeline._options import ImportOptions
from aliasync.pipeline._regionplan import detect_strategy, strategy_reason
from aliasync.pipeline._report import Event
from aliasync.pipeline._run import Run
from aliasync.pipeline._state import CapabilityCache

__all__ = ["Capability", "RegionCapability", "detect_capabilities"]

log = logging.getLogger("aliasync.regions")

Capability = Literal["direct", "relay", "copy-only", "unreachable"]


@dataclass(frozen=True)
class RegionCapability:
    """How one region can receive images, and why."""

    region: str
    capability: Capability
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def detect_capabilities(cloud: Cloud, regions: Sequence[str]) -> list[RegionCapability]:
    """Probe every region at once; save what was learnt for the importer."""
    notes: dict[str, list[str]] = {}

    def on_event(event: Event) -> None:
        notes.setdefault(event.region, []).append(event.message)

    run = Run(
        run_id="probe" + secrets.token_hex(8),
        options=ImportOptions(),
        images=[],
        account_id=cloud.account,
        on_event=on_event,
    )
    found: dict[str, RegionCapability] = {}
    uncertain: set[str] = set()  # copy only because OSS did not answer: not remembered

    async def one(region: str) -> None:
        try:
            # ECS must answer first: without it, nothing can be published here at all.
            await cloud.ecs(region).find_images(name="aliasync-probe")
            strategy, _, certain = await detect_strategy(cloud, run, region, None)
        except AliasyncError as exc:
            found[region] = RegionCapability(region, "unreachable", str(exc))
            return
        reason = strategy_reason(strategy)
        if strategy == "copy" and notes.get(region):
            reason = f"{reason}: {'; '.join(notes[region])}"
        if not certain:
            uncertain.add(region)
        capability: Capability = "copy-only" if strategy == "copy" else strategy
        found[region] = RegionCapability(region, capability, reason)

    try:
        async with anyio.create_task_group() as tg:
            for region in regions:
                tg.start_soon(one, region)
    finally:
        with anyio.CancelScope(shield=True):
            await _remove_buckets(cloud, run)
    CapabilityCache.for_scope(cloud.cache_scope).save(
        {
            r.region: "copy" if r.capability == "copy-only" else r.capability
            for r in found.values()
            if r.capability != "unreachable" and r.region not in uncertain
        }
    )
    return [found[r] for r in sorted(found)]


async def _remove_buckets(cloud: Cloud, run: Run) -> None:
    async def one(region: str, bucket: str) -> None:
        try:
            # Probe buckets stay empty: deleting them is a control call, allowed everywhere.
            await cloud.oss.delete_bucket(region, bucket)
        except AliasyncError as exc:
            log.warning("could not remove probe bucket %s in %s: %s", bucket, region, exc)

    async with anyio.create_task_group() as tg:
        for region, bucket in list(run.buckets.items()):
            tg.start_soon(one, region, bucket)
