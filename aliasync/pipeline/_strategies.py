"""One image into one region: which way in, and the outcome.

The ways in live beside this module: the region's own upload then ImportImage (here, with the
upload), the relay (``_relaying``), CopyImage (``_copying``); ImportImage itself is
``_importing``. Every mutating call is safe to repeat: ImportImage and CopyImage carry
ClientTokens derived from the run, region, image and attempt; deletions treat "not found" as
done; buckets and functions carry this run's unique names, so finding one means it is ours.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio

from aliasync._exceptions import AliasyncError, PermanentCloudError
from aliasync.cloud._ecs import ImageInfo
from aliasync.pipeline._copying import copy_in
from aliasync.pipeline._copysources import NoSourceError
from aliasync.pipeline._importing import (
    ImportExhaustedError,
    ImportRoleMissingError,
    import_and_wait,
    reattach_import,
)
from aliasync.pipeline._job import ImageJob, in_flight, retire
from aliasync.pipeline._publishing import bring_up_to_date, finish
from aliasync.pipeline._relaying import RelayError, relay
from aliasync.pipeline._uploads import UploadedCopy

if TYPE_CHECKING:
    from aliasync.cloud._cloud import Cloud

__all__ = ["publish_image"]


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
        if in_flight(run, region, image.name, "import", "copy"):
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
        if job.plan.strategy == "copy" or in_flight(run, region, image.name, "copy"):
            if job.plan.strategy != "copy":  # an earlier session fell back to copying
                result.strategy = "copy"
                await run.done_importing(region, image.name)
            info = await copy_in(cloud, job, existing)
        else:
            try:
                reattached = await reattach_import(cloud, job)
                if reattached is not None:
                    info = reattached
                elif job.plan.strategy == "direct":
                    info = await _direct(cloud, job, existing)
                else:
                    info = await relay(cloud, job, existing)
            except (RelayError, ImportExhaustedError) as exc:
                # Another region's image can still be copied here: better late than never.
                run.emit(region, "copy", f"{exc.message}; copying instead", image.name)
                result.strategy = "copy"
                await run.done_importing(region, image.name)
                # Exhausted imports come after the old image was retired; relay failures before.
                still_there = [] if isinstance(exc, ImportExhaustedError) else existing
                info = await copy_in(cloud, job, still_there)
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


async def _already_published(cloud: Cloud, job: ImageJob, info: ImageInfo) -> None:
    """The image is there with this content: update what differs, create nothing."""
    run, region, image, result = job.run, job.region, job.image, job.result
    run.settle(region, image.name)  # it is a copy source already (PlanBoard.settle)
    result.image_id, result.strategy, result.existing = info.image_id, "existing", True
    await bring_up_to_date(cloud.ecs(region), run, region, image, info)
    result.status = "success"
    run.note(region, image.name, "result", "done", image_id=info.image_id, strategy="existing")
    run.emit(region, "done", f"{info.image_id} already published", image.name)


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
    await retire(cloud.ecs(region), job, existing)
    return await import_and_wait(cloud.ecs(region), job, job.plan.bucket, key)
