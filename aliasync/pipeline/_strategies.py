"""One image into one region: the three ways in, and the steps around them.

Every mutating call here is safe to repeat: ImportImage and CopyImage carry ClientTokens derived
from the run, region, image and attempt; deletions treat "not found" as done; buckets and
functions carry this run's unique names, so finding one already there means it is ours.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from aliasync._exceptions import (
    AliasyncError,
    CloudError,
    ConfigurationError,
    NotFoundError,
    PermanentCloudError,
)
from aliasync.cloud._ecs import EcsApi, ImageFailedError, ImageInfo
from aliasync.cloud._oss import EmptiedInsideOnlyError
from aliasync.cloud._oss_upload import part_size_for
from aliasync.cloud._retire import DELETE_TAG, delete_tagged_snapshots, retire_images
from aliasync.pipeline._copysources import NoSourceError
from aliasync.pipeline._publishing import bring_up_to_date, finish, image_tags
from aliasync.pipeline._report import ImageResult
from aliasync.pipeline._run import BUCKET_PREFIX
from aliasync.pipeline._uploads import UploadedCopy
from aliasync.relay.package import cleanup_event, relay_zip

if TYPE_CHECKING:
    from aliasync.cloud._cloud import Cloud
    from aliasync.pipeline._prepare import PreparedImage
    from aliasync.pipeline._regionplan import RegionPlan
    from aliasync.pipeline._run import Run

__all__ = [
    "DELETE_TAG", "ImageJob", "ImportRoleMissingError", "delete_tagged_snapshots",
    "publish_image", "relay_limits", "remove_bucket",
]  # fmt: skip

IMPORT_ATTEMPTS = 3  # a failed import task is retried as a new import this many times
# A failed copy is retried from another source where there is one. Copies fail more often
# than imports in practice and cost no upload, so more attempts: 0.3 ** 8 < 1e-4.
COPY_ATTEMPTS = 8
# CopyImage answers that mean "not from this source, now": try another one.
_SOURCE_REFUSALS = frozenset(
    {"OperationDenied.ImageCopyConflict", "OperationDenied.CommunityImage"}
)
IMPORT_TIMEOUT = 4 * 3600.0  # cloud seconds
COPY_TIMEOUT = 12 * 3600.0
# A source busy copying the image for someone else refuses (ImageCopyConflict) until that copy
# ends: cloud seconds between asking it again, for at most COPY_TIMEOUT in all.
CONFLICT_WAIT = 60.0
RELAY_ROLE = "AliasyncRelayRole"
RELAY_MEMORY_MB = 512  # enough for 4 parts of 8 MiB in flight, each maybe raced by a second GET
RELAY_PARALLEL = 4
RELAY_TIMEOUT = 900  # plus the time the image takes at RELAY_MIN_RATE
RELAY_MIN_RATE = 10 * 2**20  # bytes/s the relay is given time for: a slow cross-region link
FC_MAX_TIMEOUT = 86400  # Function Compute's limit on a function's timeout
FC_MAX_MEMORY_MB = 32768
RELAY_PRESIGN_SECONDS = 3600
CLEANUP_TIMEOUT = 900  # an emptying invocation: deletes and aborts, no data moved


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


class ImportExhaustedError(PermanentCloudError):
    """Every ImportImage attempt in a region failed; the image may still be copied there."""


# ImportImage's answer when the account has no role for ECS to read OSS (and [D21]'s spelling).
_NO_IMPORT_ROLE = frozenset({"NoSetRoletoECSServiceAccount", "NoSetRoletoECSServiceAcount"})
IMPORT_ROLE = "AliyunECSImageImportDefaultRole"


class ImportRoleMissingError(ConfigurationError):
    """The account cannot import at all: the whole run stops, with one error."""


@dataclass
class ImageJob:
    """One (region, image) pair and where its outcome goes."""

    run: Run
    plan: RegionPlan
    image: PreparedImage
    result: ImageResult

    @property
    def region(self) -> str:
        return self.plan.region


async def publish_image(cloud: Cloud, job: ImageJob) -> None:
    """Make ``job.image`` an Available, finished image in ``job.region``; record the outcome."""
    run, region, image, result = job.run, job.region, job.image, job.result
    started = time.monotonic()
    try:
        if image.name in job.plan.refused:
            raise PermanentCloudError(
                "InvalidImageName.Duplicated", job.plan.refused[image.name], region=region
            )
        if image.name in job.plan.published:
            await _already_published(cloud, job, job.plan.published[image.name])
            return
        existing = job.plan.existing.get(image.name, [])
        if _in_flight(run, region, image.name, "import", "copy"):
            # An earlier session of this run sent ImportImage or CopyImage: the image of that
            # name is (almost certainly) ours, and re-sending the same ClientToken finds it.
            existing = []
        if existing and not run.options.overwrite:
            ids = ", ".join(i.image_id for i in existing)
            raise PermanentCloudError(
                "InvalidImageName.Duplicated",
                f"an image named {image.name!r} already exists ({ids}); use --overwrite",
                region=region,
            )
        if job.plan.strategy == "copy" or _in_flight(run, region, image.name, "copy"):
            if job.plan.strategy != "copy":  # an earlier session fell back to copying
                result.strategy = "copy"
                await run.done_importing(region, image.name)
            info = await _copy(cloud, job, existing)
        else:
            try:
                reattached = await _reattach_import(cloud, job)
                if reattached is not None:
                    info = reattached
                elif job.plan.strategy == "direct":
                    info = await _direct(cloud, job, existing)
                else:
                    info = await _relay(cloud, job, existing)
            except (RelayError, ImportExhaustedError) as exc:
                # Another region's image can still be copied here: better late than never.
                run.emit(region, "copy", f"{exc.message}; copying instead", image.name)
                result.strategy = "copy"
                await run.done_importing(region, image.name)
                # Exhausted imports come after the old image was retired; relay failures before.
                still_there = [] if isinstance(exc, ImportExhaustedError) else existing
                info = await _copy(cloud, job, still_there)
        result.image_id = info.image_id
        await finish(cloud.ecs(region), run, region, image, info)
        result.status = "success"
        run.note(region, image.name, "result", "done", image_id=info.image_id,
                 strategy=result.strategy)  # fmt: skip
        run.emit(region, "done", f"{info.image_id} available", image.name)
    except ImportRoleMissingError:
        raise  # the account's, not the region's: the run stops
    except (AliasyncError, NoSourceError) as exc:
        message = (
            "no region holds this image to copy it from"
            if isinstance(exc, NoSourceError)
            else str(exc)
        )
        result.status, result.error = "error", message
        run.note(region, image.name, "result", "failed", error=message)
        run.emit(region, "failed", message, image.name)
    finally:
        result.elapsed = time.monotonic() - started


def _progress(
    run: Run, region: str, image: PreparedImage, stage: str
) -> Callable[[int, float | None], None]:
    """What a wait tells the caller at each poll: progress, and the time the API says is left
    (a copy at 0 % is still queued behind others in its source region)."""

    def seen(percent: int, remain: float | None) -> None:
        now = "queued" if stage == "copy" and percent == 0 else stage
        run.emit(region, now, f"{percent}%", image.name, progress=percent / 100, remaining=remain)

    return seen


async def _already_published(cloud: Cloud, job: ImageJob, info: ImageInfo) -> None:
    """The image is there with this content: update what differs, create nothing."""
    run, region, image, result = job.run, job.region, job.image, job.result
    run.settle(region, image.name)  # it is a copy source already (PlanBoard.settle)
    result.image_id, result.strategy, result.existing = info.image_id, "existing", True
    await bring_up_to_date(cloud.ecs(region), run, region, image, info)
    result.status = "success"
    run.note(region, image.name, "result", "done", image_id=info.image_id, strategy="existing")
    run.emit(region, "done", f"{info.image_id} already published", image.name)


def _in_flight(run: Run, region: str, image: str, *steps: str) -> bool:
    """An earlier session of this run sent (or was sending) one of these steps' calls."""
    return any(run.earlier(region, image, step).get("state") in ("started", "sent")
               for step in steps)  # fmt: skip


async def _reattach_import(cloud: Cloud, job: ImageJob) -> ImageInfo | None:
    """Finish the import an earlier session started, without uploading or relaying again.

    The object was complete in the run's bucket before that ImportImage was sent; the same
    ClientToken finds the import if it was made. None: nothing was in flight, or the object is
    gone (then the image goes in afresh).
    """
    run, region, image = job.run, job.region, job.image
    if job.plan.bucket is None or not _in_flight(run, region, image.name, "import"):
        return None
    key = run.object_key(image)
    if job.plan.strategy == "direct":  # still a source for the relays of this session
        copy = UploadedCopy(region, job.plan.bucket, key)
        await run.uploads.finished(image.name, region, copy)
    run.emit(region, "import", "re-attaching to an earlier session's import", image.name)
    try:
        return await _import(cloud.ecs(region), job, job.plan.bucket, key)
    except PermanentCloudError as exc:
        if exc.code not in ("InvalidOSSObject.NotFound", "InvalidOSSBucket.NotFound"):
            raise
        return None


async def _direct(cloud: Cloud, job: ImageJob, existing: list[ImageInfo]) -> ImageInfo:
    run, region, image = job.run, job.region, job.image
    assert job.plan.bucket is not None
    key = run.object_key(image)
    uploaded: UploadedCopy | None = None
    sent = 0
    shown = -1

    def on_progress(delta: int) -> None:
        nonlocal sent, shown
        sent += delta
        percent = 100 * sent // max(1, image.size)
        if percent != shown:  # at most a hundred events, whatever the size
            shown = percent
            run.emit(region, "upload", f"{sent} of {image.size} bytes", image.name,
                     progress=sent / max(1, image.size), size=image.size)  # fmt: skip

    try:
        run.emit(region, "upload", "waiting for an upload slot", image.name)
        async with run.upload_slots:
            run.emit(region, "upload", f"uploading {image.size} bytes", image.name, progress=0.0)
            digest = await cloud.oss.upload_file(
                region, job.plan.bucket, key, image.path, on_progress=on_progress
            )
        if digest != image.sha256:
            raise PermanentCloudError(
                "ContentChanged", f"{image.path} changed while it was being uploaded"
            )
        uploaded = UploadedCopy(region, job.plan.bucket, key)
    finally:
        with anyio.CancelScope(shield=True):
            await run.uploads.finished(image.name, region, uploaded)
    await _retire(cloud.ecs(region), job, existing)
    return await _import(cloud.ecs(region), job, job.plan.bucket, key)


async def _relay(cloud: Cloud, job: ImageJob, existing: list[ImageInfo]) -> ImageInfo:
    run, region, image = job.run, job.region, job.image
    assert job.plan.bucket is not None
    run.emit(region, "wait", "waiting for an upload to an uncensored region", image.name)
    sources = await run.uploads.wait_for_sources(image.name, run.options.relay_sources)
    if not sources:
        raise RelayError("NoSource", "every upload to an uncensored region failed")
    try:
        function = await _ensure_function(cloud, run, region)
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
    await _retire(cloud.ecs(region), job, existing)
    return await _import(cloud.ecs(region), job, job.plan.bucket, key)


async def _ensure_function(cloud: Cloud, run: Run, region: str) -> str:
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
    function = await _ensure_function(cloud, run, region)
    internal = cloud.endpoints.region(region, run.account_id).oss_native_internal
    event = cleanup_event(
        host=f"{bucket}.{internal}",
        bucket=bucket,
        region=region,
        protocol=cloud.endpoints.protocol,
        bucket_prefix=BUCKET_PREFIX,
    )
    await cloud.fc.invoke(region, function, event, timeout=CLEANUP_TIMEOUT)
    await cloud.oss.delete_bucket(region, bucket)


async def _copy(cloud: Cloud, job: ImageJob, existing: list[ImageInfo]) -> ImageInfo:
    run, region, image = job.run, job.region, job.image
    if image.disk.format == "VHD":
        # CopyImage refuses images imported from VHD (InvalidOperation.VhdImageUnsupported):
        # say so now instead of after waiting hours for a source.
        raise PermanentCloudError(
            "InvalidOperation.VhdImageUnsupported",
            "this region gets images only by CopyImage, which ECS refuses for images imported"
            " from VHD: publish a QCOW2 or RAW image to reach it",
            region=region,
        )
    attempt = run.first_attempt(region, image.name, "copy")
    earlier = run.earlier(region, image.name, "copy")
    if _in_flight(run, region, image.name, "copy") and {"source", "source_id"} <= set(earlier):
        info = await _reattach_copy(cloud, job)
        if info is not None:
            return info
        attempt += 1
    run.emit(region, "wait", "waiting for a region to copy it from", image.name)
    retired = False
    failed_sources: set[str] = set()
    public_sources: set[str] = set()  # community images: ECS never copies them
    failures, waited = 0, 0.0
    while failures < COPY_ATTEMPTS:
        refused: str | None = None
        async with run.pool.slot(
            image.name, exclude=region, avoid=failed_sources, never=public_sources
        ) as (source, source_id):
            if not retired:
                await _retire(cloud.ecs(region), job, existing)
                retired = True
            run.emit(region, "copy", f"copying {source_id} from {source}", image.name)
            try:
                new_id = await _send_copy(cloud, job, source, source_id, attempt)
            except PermanentCloudError as exc:
                if exc.code not in _SOURCE_REFUSALS:
                    raise
                refused = exc.code
                run.emit(region, "copy", f"{source} refused ({exc.code}); another", image.name)
                run.note(region, image.name, "copy", "failed", attempt=attempt + 1)
            else:
                info = await _wait_copy(cloud, job, new_id, attempt)
                if info is not None:
                    return info
                failures += 1
        attempt += 1
        if refused == "OperationDenied.CommunityImage":
            public_sources.add(source)
        elif refused is not None and source in failed_sources:
            # Refused again, with no other source free: that source is busy copying this
            # image for someone else (an earlier session, another run) until that copy ends.
            if waited >= COPY_TIMEOUT:
                raise PermanentCloudError(
                    "CopyFailed", f"every source kept refusing CopyImage ({refused})", region=region
                )
            await anyio.sleep(CONFLICT_WAIT / cloud.endpoints.time_scale)
            waited += CONFLICT_WAIT
        failed_sources.add(source)
    raise PermanentCloudError(
        "CopyFailed", f"CopyImage failed {COPY_ATTEMPTS} times", region=region
    )


async def _reattach_copy(cloud: Cloud, job: ImageJob) -> ImageInfo | None:
    """Finish the copy an earlier session sent: same source, same ClientToken, counted in the
    pool as running. None when it failed or never began: a new attempt is due."""
    run, region, image = job.run, job.region, job.image
    earlier = run.earlier(region, image.name, "copy")
    source, source_id = str(earlier["source"]), str(earlier["source_id"])
    attempt = int(earlier["attempt"])
    run.emit(region, "copy", f"re-attaching to an earlier session's copy from {source}",
             image.name)  # fmt: skip
    async with run.pool.occupy(source, image.name):
        new_id = earlier.get("image_id")
        try:
            if not new_id:
                new_id = await _send_copy(cloud, job, source, source_id, attempt)
            return await _wait_copy(cloud, job, str(new_id), attempt)
        except PermanentCloudError as exc:
            # Refused, or the source or copy is gone (NotFound).
            if exc.code not in _SOURCE_REFUSALS and not isinstance(exc, NotFoundError):
                raise
            run.note(region, image.name, "copy", "failed", attempt=attempt + 1)
            return None


async def _send_copy(cloud: Cloud, job: ImageJob, source: str, source_id: str, attempt: int) -> str:
    """CopyImage from ``source`` under this attempt's ClientToken, journaled around the call."""
    run, region, image = job.run, job.region, job.image
    job.result.source_region = source
    token = run.client_token("CopyImage", region, image, attempt)
    run.note(region, image.name, "copy", "started", attempt=attempt, token=token,
             source=source, source_id=source_id)  # fmt: skip
    new_id = await cloud.ecs(source).copy_image(
        image_id=source_id,
        destination_region=region,
        destination_name=image.name,
        client_token=token,
        description=f"{image.name} (aliasync run {run.run_id})",
        tags=image_tags(run, image),
    )
    run.note(region, image.name, "copy", "sent", attempt=attempt, token=token,
             source=source, source_id=source_id, image_id=new_id)  # fmt: skip
    return new_id


async def _wait_copy(cloud: Cloud, job: ImageJob, new_id: str, attempt: int) -> ImageInfo | None:
    """The copy once Available; None if it failed (it is deleted: a new attempt is due)."""
    run, region, image = job.run, job.region, job.image
    try:
        return await cloud.ecs(region).wait_available(
            new_id, timeout=COPY_TIMEOUT, on_sighting=_progress(run, region, image, "copy")
        )
    except ImageFailedError as exc:
        run.emit(region, "retry", f"copy failed ({exc.message}); copying again", image.name)
        await cloud.ecs(region).delete_image(new_id)
        run.note(region, image.name, "copy", "failed", attempt=attempt + 1)
        return None


async def _import(ecs: EcsApi, job: ImageJob, bucket: str, key: str) -> ImageInfo:
    """ImportImage and wait; a failed import task is deleted and imported afresh."""
    run, region, image = job.run, job.region, job.image
    for attempt in range(run.first_attempt(region, image.name, "import"), IMPORT_ATTEMPTS):
        run.emit(region, "import", "importing", image.name)
        token = run.client_token("ImportImage", region, image, attempt)
        run.note(region, image.name, "import", "started", attempt=attempt, token=token)
        try:
            image_id, task_id = await ecs.import_image(
                name=image.name,
                bucket=bucket,
                key=key,
                disk_image_size_gib=image.disk.disk_image_size_gib,
                boot_mode=image.import_boot_mode,
                architecture=image.architecture,
                disk_format=image.disk.format,
                client_token=token,
                description=f"{image.name} (aliasync run {run.run_id})",
                tags=image_tags(run, image),
            )
        except PermanentCloudError as exc:
            if exc.code not in _NO_IMPORT_ROLE:
                raise
            raise ImportRoleMissingError(
                f"ImportImage refused ({exc.code}): the account has no RAM role {IMPORT_ROLE}"
                " for ECS to read OSS; create it with `aliasync setup`, then continue with"
                f" `aliasync import --resume {run.run_id}`"
            ) from exc
        run.note(region, image.name, "import", "sent", attempt=attempt, token=token,
                 image_id=image_id, task_id=task_id)  # fmt: skip
        run.emit(region, "import", f"{image_id} importing", image.name)
        try:
            return await ecs.wait_available(
                image_id,
                timeout=IMPORT_TIMEOUT,
                on_sighting=_progress(run, region, image, "import"),
            )
        except ImageFailedError as exc:
            run.emit(region, "retry", f"import failed ({exc.message}); importing again", image.name)
            await ecs.delete_image(image_id)
            run.note(region, image.name, "import", "failed", attempt=attempt + 1)
    raise ImportExhaustedError(
        "ImportFailed", f"ImportImage failed {IMPORT_ATTEMPTS} times", region=region
    )


async def _retire(ecs: EcsApi, job: ImageJob, existing: list[ImageInfo]) -> None:
    """Overwrite: unpublish, tag snapshots, delete the image, then every tagged snapshot
    (also those of an image a killed run deleted, which is no longer there to retire)."""
    await retire_images(
        ecs,
        existing,
        on_retire=lambda old: job.run.emit(
            job.region, "overwrite", f"retiring {old.image_id}", job.image.name
        ),
        sweep=job.run.options.overwrite,
    )
