"""The ECS model: image import, copy, deletion, attributes, sharing; pure state, no HTTP.

Time-dependent states are computed from timestamps in virtual seconds: an import ends at
``created + import seconds``; a copy when its source region's copy queue (see
:class:`~aliasync.sim.ecs._state.CopyQueue`) has run it. Outcomes (snapshots appearing) are
recorded lazily the next time anyone looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aliasync.sim._errors import SimError
from aliasync.sim.ecs._attributes import AttributesMixin
from aliasync.sim.ecs._disks import read_disk
from aliasync.sim.ecs._inspect import InspectMixin
from aliasync.sim.ecs._state import (
    GIB,
    CopyJob,
    CopyQueue,
    Disk,
    Image,
    Task,
    check_description,
    check_image_name,
    check_tags,
)
from aliasync.sim.ecs._tags import TaggingMixin

IMPORT_ROLE = "AliyunECSImageImportDefaultRole"


@dataclass(frozen=True)
class DiskSpec:
    """DiskDeviceMapping.N of an ImportImage request."""

    oss_bucket: str
    oss_object: str
    format: str = ""  # "" (detect), RAW, VHD, QCOW2, VMDK
    size_gib: int | None = None


@dataclass(frozen=True)
class ImportSpec:
    """The parameters of an ImportImage request (also its idempotency fingerprint)."""

    disks: tuple[DiskSpec, ...]
    name: str = ""
    description: str = ""
    architecture: str = "x86_64"
    os_type: str = "linux"
    platform: str = "Others Linux"
    boot_mode: str = "BIOS"
    license_type: str = "Auto"
    role_name: str = ""
    nvme: str = "unsupported"
    imds: str = ""
    tags: tuple[tuple[str, str], ...] = ()


class EcsModel(AttributesMixin, TaggingMixin, InspectMixin):
    """The emulated account's ECS images, snapshots and tasks in every region."""

    name = "ecs"

    # --- idempotency ----------------------------------------------------------------------

    def _idempotent(
        self, action: str, region: str, token: str, fingerprint: object
    ) -> dict[str, str] | None:
        """The stored answer for a repeated ClientToken, or None for a new one."""
        if not token:
            return None
        if len(token) > 64 or not token.isascii():
            raise SimError(
                "InvalidParameter", 'The specified parameter "ClientToken" is not valid.'
            )
        key = (self.ctx.account_id, action, region, token)
        stored = self._tokens.get(key)
        if stored is None:
            return None
        if stored[0] != fingerprint:
            raise SimError(
                "IdempotentParameterMismatch",
                "The request uses the same client token as a previous, but non-identical request.",
            )
        self._token_answers[key] += 1
        return dict(stored[1])

    def _remember(
        self, action: str, region: str, token: str, fingerprint: object, result: dict[str, str]
    ) -> None:
        if token:
            key = (self.ctx.account_id, action, region, token)
            self._tokens[key] = (fingerprint, dict(result))
            self._token_answers[key] = 1

    def _check_room(self, region: str, name: str) -> None:
        images = self._images.get(region, {})
        if name and any(i.name == name for i in images.values()):
            raise SimError("InvalidImageName.Duplicated", "The destination image is exist.")
        if len(images) >= self.image_quota:
            raise SimError("QuotaExceed.Image", "The Image Quota exceeds.", 403)

    # --- ImportImage ----------------------------------------------------------------------

    def import_image(self, region: str, spec: ImportSpec, token: str = "") -> dict[str, str]:
        """Start importing OSS objects as an image; returns ImageId, RegionId and TaskId."""
        if spec.name:
            check_image_name(spec.name)
        if spec.description:
            check_description(spec.description)
        check_tags(dict(spec.tags))
        replay = self._idempotent("ImportImage", region, token, spec)
        if replay is not None:
            return replay
        ram = self.ctx.models.get("ram")
        if ram is not None and not ram.role_exists(spec.role_name or IMPORT_ROLE):
            raise SimError(
                "NoSetRoletoECSServiceAccount",
                "ECS service account Have no right to access your OSS.please attach a role of "
                "access your oss to ECS service account.",
                403,
            )
        now = self._settle()
        sources = [self._source_disk(region, n, d) for n, d in enumerate(spec.disks, start=1)]
        disks = [disk for disk, _ in sources]
        failure = next((problem for _, problem in sources if problem), "")
        self._check_room(region, spec.name)
        image_id, task_id = self.new_id("m-"), self.new_id("t-")
        ready = now + self.ctx.faults.import_seconds(sum(d.content_bytes for d in disks))
        injected = self.ctx.faults.chance("import", "import_failure_rate", region, key=image_id)
        failed = injected or bool(failure)
        image = Image(
            id=image_id,
            region=region,
            name=spec.name,
            description=spec.description,
            family="",
            architecture=spec.architecture,
            os_type=spec.os_type,
            platform=spec.platform,
            boot_mode=spec.boot_mode,
            license_type=spec.license_type,
            nvme=spec.nvme,
            imds=spec.imds,
            disks=disks,
            created_at=now,
            ready_at=ready,
            failed=failed,
            task_id=task_id,
            tags=dict(spec.tags),
            failure=failure,
        )
        self._images.setdefault(region, {})[image_id] = image
        self._pending[image_id] = image
        task = Task(task_id, region, "ImportImage", image_id, now, ready, failed)
        self._tasks.setdefault(region, {})[task_id] = task
        if injected:
            self.ctx.faults.record("import_failed", "ecs", "ImportImage", region, ready, image_id)
        result = {"ImageId": image_id, "RegionId": region, "TaskId": task_id}
        self._remember("ImportImage", region, token, spec, result)
        return result

    def _source_disk(self, region: str, index: int, spec: DiskSpec) -> tuple[Disk, str | None]:
        """The disk an object gives, and why the import task will fail, if it will."""
        oss = self.ctx.models.get("oss")
        if oss is None or not oss.bucket_exists(region, spec.oss_bucket):
            raise SimError(
                "InvalidOSSBucket.NotFound",
                "The specified OSS bucket does not exist in this region.",
            )
        info = oss.object_info(region, spec.oss_bucket, spec.oss_object)
        if info is None:
            raise SimError(
                "InvalidOSSObject.NotFound",
                "The specified OSS object does not exist in this region.",
            )
        content = read_disk(info.path, int(info.size), str(info.sha256), spec.format)
        # The disk must hold both the file and the disk inside it (docs: "greater than or
        # equal to the size of the imported image file"; the virtual size: a guess).
        needed = max(1, math.ceil(max(int(info.size), content.size) / GIB))
        size = needed if spec.size_gib is None else spec.size_gib
        if size < needed:
            raise SimError(
                "InvalidImageSize",
                f"The specified DiskDeviceMapping.{index}.DiskImageSize ({size} GiB) is smaller "
                f"than the image ({needed} GiB).",
            )
        disk = Disk(
            index=index,
            size_gib=size,
            format=content.format,
            oss_bucket=spec.oss_bucket,
            oss_object=spec.oss_object,
            content_bytes=content.size,
            content_digest=content.digest,
        )
        return disk, content.problem

    # --- CopyImage / CancelCopyImage --------------------------------------------------------

    def copy_image(
        self,
        region: str,
        image_id: str,
        dest_region: str,
        name: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        token: str = "",
    ) -> dict[str, str]:
        """Queue a copy of an Available image in its region's copy queue; returns ImageId."""
        tag_items = tuple(sorted((tags or {}).items()))
        fingerprint = (image_id, dest_region, name, description, tag_items)
        if name is not None:
            check_image_name(name, "destination Image name")
        if description:
            check_description(description)
        check_tags(dict(tag_items))
        replay = self._idempotent("CopyImage", region, token, fingerprint)
        if replay is not None:
            return replay
        source = self.image(region, image_id)
        now = self.now()
        if source.status(now) != "Available":
            raise SimError("IncorrectImageStatus", "The image not available.")
        if source.public:
            raise SimError(
                "OperationDenied.CommunityImage", "Community image does not support copy."
            )
        if self._being_copied_from(region, source):
            # "The same image cannot be copied concurrently" (current CopyImage page); read as
            # one copy at a time per source image, the stricter reading.
            raise SimError(
                "OperationDenied.ImageCopyConflict",
                "The same image cannot be copied concurrently. Please wait until the last copy"
                " is completed before performing the next operation.",
            )
        if source.disks[0].format == "VHD":
            raise SimError(
                "InvalidOperation.VhdImageUnsupported",
                "The specified vhd image is not supported for this operation. Please switch to"
                " a raw image and retry.",
                403,
            )
        new_name = source.name if name is None else name
        self._check_room(dest_region, new_name)
        new_id = self.new_id("m-")
        image = Image(
            id=new_id,
            region=dest_region,
            name=new_name,
            description=source.description if description is None else description,
            family=source.family,
            architecture=source.architecture,
            os_type=source.os_type,
            platform=source.platform,
            boot_mode=source.boot_mode,
            license_type=source.license_type,
            nvme=source.nvme,
            imds=source.imds,
            disks=[Disk(**{**vars(d), "snapshot_id": ""}) for d in source.disks],
            created_at=now,
            ready_at=now,
            copy_of=(region, source.id),
            tags=dict(tag_items),
        )
        image.failed = self.ctx.faults.chance("copy", "copy_failure_rate", dest_region, new_id)
        self._images.setdefault(dest_region, {})[new_id] = image
        self._pending[new_id] = image
        duration = self.ctx.faults.copy_seconds(source.content_bytes)
        job = CopyJob(new_id, dest_region, source.id, now, duration)
        queue = self._queues.setdefault(region, CopyQueue())
        self._apply_schedule(queue.submit(job, self._slots()))
        if image.failed:
            self.ctx.faults.record(
                "copy_failed", "ecs", "CopyImage", dest_region, image.ready_at, new_id
            )
        result = {"ImageId": new_id}
        self._remember("CopyImage", region, token, fingerprint, result)
        return result

    def copy_progress(self, image: Image) -> tuple[int, int]:
        """(percent done, seconds remaining) of a copy; (100, 0) when not being copied."""
        now = self.now()
        if image.copy_of is None or now >= image.ready_at:
            return 100, 0
        job = self.copy_job(image)
        remain = max(0, math.ceil(image.ready_at - now))
        if job is None or now <= job.start or job.duration <= 0:
            return 0, remain
        return min(99, int(100 * (now - job.start) / job.duration)), remain

    def cancel_copy_image(self, region: str, image_id: str) -> None:
        """Cancel a copy in progress: the destination image disappears, its slot frees."""
        image = self.image(region, image_id)
        if image.copy_of is None:
            raise SimError(
                "ImageCreatedNotFromCopy", "The specified image is not created from copy."
            )
        now = self.now()
        if image.status(now) != "Creating":
            raise SimError("IncorrectImageStatus", "The image has completed copy.")
        del self._images[region][image_id]
        self._pending.pop(image_id, None)
        queue = self._queues[image.copy_of[0]]
        self._apply_schedule(queue.cancel(image_id, now, self._slots()))
