"""The relay: a temporary Function Compute function that fills a censored region's bucket.

It downloads the image from buckets in uncensored regions (presigned URLs, several in parallel)
and writes it through the region's internal OSS endpoint, which only code inside the cloud can
reach. The same function empties those buckets afterwards, for the same reason.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio

from aliasync._exceptions import CloudError, PermanentCloudError
from aliasync.cloud._ecs import ImageInfo
from aliasync.cloud._oss import EmptiedInsideOnlyError
from aliasync.cloud._oss_upload import part_size_for
from aliasync.pipeline._importing import import_and_wait
from aliasync.pipeline._job import ImageJob, retire
from aliasync.pipeline._run import BUCKET_PREFIX
from aliasync.relay.package import cleanup_event, relay_zip

if TYPE_CHECKING:
    from aliasync.cloud._cloud import Cloud
    from aliasync.pipeline._run import Run

__all__ = ["RELAY_ROLE", "RelayError", "ensure_function", "relay", "relay_limits", "remove_bucket"]

RELAY_ROLE = "AliasyncRelayRole"
RELAY_MEMORY_MB = 512  # enough for 4 parts of 8 MiB in flight, each maybe raced by a second GET
RELAY_PARALLEL = 4
RELAY_TIMEOUT = 900  # plus the time the image takes at RELAY_MIN_RATE
RELAY_MIN_RATE = 10 * 2**20  # bytes/s the relay is given time for: a slow cross-region link
FC_MAX_TIMEOUT = 86400  # Function Compute's limit on a function's timeout
FC_MAX_MEMORY_MB = 32768
RELAY_PRESIGN_SECONDS = 3600
CLEANUP_TIMEOUT = 900  # an emptying invocation: deletes and aborts, no data moved
EMPTY_ROUNDS = 4  # emptyings of a bucket another invocation may still be writing into
EMPTY_WAIT = 30.0  # cloud seconds between them


def relay_limits(size: int) -> tuple[int, int, int]:
    """(part size, memory in MB, timeout in s) of a relay for a ``size``-byte image.

    Parts grow with the image so that 10,000 of them always suffice (up to the 2048 GiB ECS
    imports); memory holds every part in flight twice (a racing second download) and a spare
    quarter, in FC's 64 MB steps; the timeout gives the copy RELAY_MIN_RATE, within FC's
    86,400 s. An image past what that rate moves in a day relies on faster links.
    """
    part = part_size_for(size)
    need_mb = 256 + (2 * RELAY_PARALLEL * part + part) * 5 // 4 // 2**20
    memory = min(FC_MAX_MEMORY_MB, max(RELAY_MEMORY_MB, -(-need_mb // 64) * 64))
    timeout = min(FC_MAX_TIMEOUT, RELAY_TIMEOUT + -(-size // RELAY_MIN_RATE))
    return part, memory, timeout


class RelayError(PermanentCloudError):
    """The relay function could not fill the region's bucket."""


async def relay(cloud: Cloud, job: ImageJob, existing: list[ImageInfo]) -> ImageInfo:
    run, region, image = job.run, job.region, job.image
    assert job.plan.bucket is not None
    run.emit(region, "wait", "waiting for an upload to an uncensored region", image.name)
    sources = await run.uploads.wait_for_sources(image.name, run.options.relay_sources)
    if not sources:
        raise RelayError("NoSource", "every upload to an uncensored region failed")
    try:
        function = await ensure_function(cloud, run, region)
    except CloudError as exc:  # refused, or FC stopped answering after all retries
        raise RelayError(exc.code, f"cannot deploy the relay function: {exc.message}") from exc
    urls = [
        await cloud.oss.presign_get(s.region, s.bucket, s.key, expires=RELAY_PRESIGN_SECONDS)
        for s in sources
    ]
    key = run.object_key(image)
    internal = cloud.endpoints.region(region, run.account_id).oss_internal
    part_size, _, timeout = relay_limits(max(i.size for i in run.images))
    event = {
        "sources": urls,
        "size": image.size,
        "sha256": image.sha256,
        "target": {
            "protocol": cloud.endpoints.protocol,
            "host": f"{job.plan.bucket}.{internal}",
            "bucket": job.plan.bucket,
            "key": key,
            "region": region,
        },
        "key_prefix": run.key_prefix,
        "part_size": max(part_size, part_size_for(image.size)),
        "parallel": RELAY_PARALLEL,
    }
    run.emit(region, "relay", f"relaying from {', '.join(s.region for s in sources)}", image.name)
    try:
        answer = await cloud.fc.invoke(
            region, function, json.dumps(event).encode(), timeout=timeout + 60
        )
        outcome = json.loads(answer)
    except (CloudError, ValueError) as exc:
        raise RelayError("RelayFailed", str(exc), region=region) from exc
    if not isinstance(outcome, dict) or outcome.get("sha256") != image.sha256:
        raise RelayError("RelayFailed", "the relayed copy does not match the image", region=region)
    await retire(cloud.ecs(region), job, existing)
    return await import_and_wait(cloud.ecs(region), job, job.plan.bucket, key)


async def ensure_function(cloud: Cloud, run: Run, region: str) -> str:
    """Deploy the relay function once per region and run, sized for the run's largest image."""
    async with run.region_lock(region):
        name = run.function_name()
        if region not in run.functions:
            _, memory, timeout = relay_limits(max((i.size for i in run.images), default=0))
            run.functions[region] = name  # registered first: cleanup finds it whatever happens
            run.note(region, "", "function", "started", name=name)  # and so does a resume
            await cloud.fc.create_function(
                region,
                name,
                code_zip=relay_zip(),
                handler="index.handler",
                timeout=timeout,
                memory_mb=memory,
                role_arn=f"acs:ram::{run.account_id}:role/{RELAY_ROLE.lower()}",
                env={},
            )
        return name


async def remove_bucket(cloud: Cloud, run: Run, region: str, bucket: str) -> None:
    """Delete a temporary bucket, all its objects and uploads, from outside the cloud.

    Where the public endpoint refuses data calls (mainland China) and the bucket is not empty,
    the relay function (this run's, deployed now if need be) empties it from inside the
    region through the internal endpoint; then the bucket is deleted, a control operation.
    """
    try:
        await cloud.oss.delete_bucket(region, bucket)
        return
    except EmptiedInsideOnlyError:
        run.emit(region, "cleanup", f"emptying {bucket} from inside the region")
    if not await cloud.fc.probe(region):
        raise PermanentCloudError(
            "BucketNotEmpty",
            f"{bucket} can only be emptied by a function in {region}, and Function Compute "
            "does not answer there; its lifecycle rule empties it within a day",
            region=region,
        )
    function = await ensure_function(cloud, run, region)
    internal = cloud.endpoints.region(region, run.account_id).oss_native_internal
    event = cleanup_event(
        host=f"{bucket}.{internal}",
        bucket=bucket,
        region=region,
        protocol=cloud.endpoints.protocol,
        bucket_prefix=BUCKET_PREFIX,
    )
    for emptied in range(1, EMPTY_ROUNDS + 1):
        await cloud.fc.invoke(region, function, event, timeout=CLEANUP_TIMEOUT)
        try:
            await cloud.oss.delete_bucket(region, bucket)
            return
        except EmptiedInsideOnlyError:
            # Written again since it was emptied: a relay invocation of a killed session of the
            # run is still running (FC finishes a synchronous invocation whose caller is gone).
            if emptied == EMPTY_ROUNDS:
                raise
            run.emit(region, "cleanup", f"{bucket} was written again; emptying it once more")
            await anyio.sleep(EMPTY_WAIT / cloud.endpoints.time_scale)
