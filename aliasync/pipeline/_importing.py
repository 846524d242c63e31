"""ImportImage: from an object in the region's own bucket to an Available image.

Every ImportImage carries a ClientToken derived from the run, region, image and attempt, so a
call repeated after a lost answer, or by a resumed session, finds the import it made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aliasync._exceptions import ConfigurationError, PermanentCloudError
from aliasync.cloud._ecs import EcsApi, ImageFailedError, ImageInfo
from aliasync.pipeline._job import ImageJob, in_flight, progress_reporter
from aliasync.pipeline._publishing import image_tags
from aliasync.pipeline._uploads import UploadedCopy

if TYPE_CHECKING:
    from aliasync.cloud._cloud import Cloud

__all__ = [
    "IMPORT_ROLE", "ImportExhaustedError", "ImportRoleMissingError", "import_and_wait",
    "reattach_import",
]  # fmt: skip

IMPORT_ATTEMPTS = 3  # a failed import task is retried as a new import this many times
IMPORT_TIMEOUT = 4 * 3600.0  # cloud seconds


class ImportExhaustedError(PermanentCloudError):
    """Every ImportImage attempt in a region failed; the image may still be copied there."""


# ImportImage's answer when the account has no role for ECS to read OSS (and [D21]'s spelling).
_NO_IMPORT_ROLE = frozenset({"NoSetRoletoECSServiceAccount", "NoSetRoletoECSServiceAcount"})
IMPORT_ROLE = "AliyunECSImageImportDefaultRole"


class ImportRoleMissingError(ConfigurationError):
    """The account cannot import at all: the whole run stops, with one error."""


async def import_and_wait(ecs: EcsApi, job: ImageJob, bucket: str, key: str) -> ImageInfo:
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
                on_sighting=progress_reporter(run, region, image, "import"),
            )
        except ImageFailedError as exc:
            run.emit(region, "retry", f"import failed ({exc.message}); importing again", image.name)
            await ecs.delete_image(image_id)
            run.note(region, image.name, "import", "failed", attempt=attempt + 1)
    raise ImportExhaustedError(
        "ImportFailed", f"ImportImage failed {IMPORT_ATTEMPTS} times", region=region
    )


async def reattach_import(cloud: Cloud, job: ImageJob) -> ImageInfo | None:
    """Finish the import an earlier session started, without uploading or relaying again.

    The object was complete in the run's bucket before that ImportImage was sent; the same
    ClientToken finds the import if it was made. None: nothing was in flight, or the object is
    gone (then the image goes in afresh).
    """
    run, region, image = job.run, job.region, job.image
    if job.plan.bucket is None or not in_flight(run, region, image.name, "import"):
        return None
    key = run.object_key(image)
    if job.plan.strategy == "direct":  # still a source for the relays of this session
        copy = UploadedCopy(region, job.plan.bucket, key)
        await run.uploads.finished(image.name, region, copy)
    run.emit(region, "import", "re-attaching to an earlier session's import", image.name)
    try:
        return await import_and_wait(cloud.ecs(region), job, job.plan.bucket, key)
    except PermanentCloudError as exc:
        if exc.code not in ("InvalidOSSObject.NotFound", "InvalidOSSBucket.NotFound"):
            raise
        return None
