"""CopyImage: the image from another region of the run, where it cannot be imported.

Sources come from the run's pool (``_copysources``), which spreads copies over the regions that
hold the image and keeps each within its copy slots; a refused or failed copy moves on to
another source. Every CopyImage carries a ClientToken, and a resumed session re-attaches to the
copy an earlier one sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from aliasync._exceptions import NotFoundError, PermanentCloudError
from aliasync.cloud._ecs import ImageFailedError, ImageInfo
from aliasync.pipeline._job import ImageJob, in_flight, progress_reporter, retire
from aliasync.pipeline._publishing import image_tags

if TYPE_CHECKING:
    from aliasync.cloud._cloud import Cloud

__all__ = ["COPY_ATTEMPTS", "copy_in"]

# A failed copy is retried from another source where there is one. Copies fail more often
# than imports in practice and cost no upload, so more attempts: 0.3 ** 8 < 1e-4.
COPY_ATTEMPTS = 8
# CopyImage answers that mean "not from this source, now": try another one.
_SOURCE_REFUSALS = frozenset(
    {"OperationDenied.ImageCopyConflict", "OperationDenied.CommunityImage"}
)
COPY_TIMEOUT = 12 * 3600.0
# A source busy copying the image for someone else refuses (ImageCopyConflict) until that copy
# ends: cloud seconds between asking it again, for at most COPY_TIMEOUT in all.
CONFLICT_WAIT = 60.0


async def copy_in(cloud: Cloud, job: ImageJob, existing: list[ImageInfo]) -> ImageInfo:
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
    if in_flight(run, region, image.name, "copy") and {"source", "source_id"} <= set(earlier):
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
                await retire(cloud.ecs(region), job, existing)
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
            new_id, timeout=COPY_TIMEOUT, on_sighting=progress_reporter(run, region, image, "copy")
        )
    except ImageFailedError as exc:
        run.emit(region, "retry", f"copy failed ({exc.message}); copying again", image.name)
        await cloud.ecs(region).delete_image(new_id)
        run.note(region, image.name, "copy", "failed", attempt=attempt + 1)
        return None
