"""Cleanup: this run's temporary buckets and relay functions, and those crashed runs left.

Buckets and functions carry the run's short ID in their names, so a run finds its own (also
those of its earlier sessions) and tells a crashed run's from one still going by age.
"""

from __future__ import annotations

import time

import anyio

from aliasync._exceptions import AliasyncError
from aliasync.cloud._cloud import Cloud
from aliasync.pipeline._relaying import remove_bucket
from aliasync.pipeline._run import BUCKET_PREFIX, FUNCTION_PREFIX, Run

__all__ = ["STALE_BUCKET_AGE", "clean_up", "remove_stale_buckets"]

# Cloud seconds after which a temporary bucket is taken for a crashed run's. A run uses its
# buckets from planning to its last import: the upload (hours for a large image), a relay (at
# most FC's 24 h timeout) and the imports (3 attempts of at most 4 h). Two days cover that;
# and by then the bucket's own lifecycle rule (one day) has already expired its objects.
STALE_BUCKET_AGE = 2 * 86400.0


async def remove_stale_buckets(cloud: Cloud, run: Run) -> None:
    """Temporary buckets left by crashed runs are found by their prefix and age, removed.

    A bucket younger than :data:`STALE_BUCKET_AGE` may belong to a run still going (on
    another machine): it is left alone.
    """
    found = await cloud.oss.list_buckets(BUCKET_PREFIX)
    own = f"{BUCKET_PREFIX}{run.short_id}-"
    now = time.time()
    async with anyio.create_task_group() as tg:
        for bucket in found:
            if bucket.name.startswith(own):
                # An earlier session's of this run: its imports may still read it, and
                # this session's cleanup removes it, whether or not the region has work left.
                run.buckets.setdefault(bucket.region, bucket.name)
                continue
            # Creation dates are wall-clock; an emulator's cloud runs time_scale faster.
            age = (now - bucket.created) * cloud.endpoints.time_scale
            if age < STALE_BUCKET_AGE:
                continue
            run.emit(bucket.region, "cleanup", f"removing stale bucket {bucket.name}")
            tg.start_soon(_remove_bucket, cloud, run, bucket.region, bucket.name)


async def _remove_bucket(cloud: Cloud, run: Run, region: str, name: str) -> None:
    try:
        await remove_bucket(cloud, run, region, name)
    except AliasyncError as exc:
        run.emit(region, "failed", f"could not remove bucket {name}: {exc}")


async def clean_up(cloud: Cloud, run: Run) -> None:
    """Remove this run's temporary buckets, then its relay functions (and stale ones).

    Per region, the bucket goes first: emptying a mainland bucket needs the function. A
    relay function belongs to a run still going while that run has a bucket in its region
    (it is deployed after the bucket, removed after it): only the others are stale.
    """
    alive: set[tuple[str, str]] | None = None  # None: no other run's function is touched
    try:
        if run.functions:
            alive = {(b.region, b.name[len(BUCKET_PREFIX) :].split("-")[0])
                     for b in await cloud.oss.list_buckets(BUCKET_PREFIX)}  # fmt: skip
    except AliasyncError as exc:
        run.emit("", "failed", f"could not list temporary buckets: {exc}")

    def stale(region: str, function: str) -> bool:
        owner = function[len(FUNCTION_PREFIX) :]
        if owner == run.short_id:
            return True
        return alive is not None and (region, owner) not in alive

    async def region_cleanup(region: str) -> None:
        name = run.buckets.get(region)
        if name is not None:
            await _remove_bucket(cloud, run, region, name)
        if region not in run.functions:
            return
        try:
            for function in await cloud.fc.list_functions(region, FUNCTION_PREFIX):
                if stale(region, function):
                    await cloud.fc.delete_function(region, function)
        except AliasyncError as exc:
            run.emit(region, "failed", f"could not remove relay functions: {exc}")

    async with anyio.create_task_group() as tg:
        for region in {**run.buckets, **run.functions}:
            tg.start_soon(region_cleanup, region)
