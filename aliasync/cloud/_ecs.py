"""ECS image operations for one region, over the official async client.

Every call is retried by :mod:`aliasync.cloud._retry` and its errors mapped by
:mod:`aliasync.cloud._transport`. Calls that are not naturally idempotent are made safe to retry:
ImportImage and CopyImage carry a client token; deletes treat "not found" as done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client

from aliasync._exceptions import CloudError, NotFoundError, PermanentCloudError, TransientCloudError
from aliasync.cloud._credentials import CredentialSource, tea_config
from aliasync.cloud._ecs_attributes import ImageAttributes
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._polling import MIN_INTERVAL, PollSchedule, Sighting
from aliasync.cloud._retry import DEFAULT, RetryPolicy
from aliasync.cloud._transport import boundary

__all__ = ["ALL_STATUSES", "EcsApi", "ImageFailedError", "ImageInfo", "ImageTimeoutError"]

ALL_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"
_FAILED_STATUSES = frozenset({"CreateFailed", "UnAvailable"})
_PAGE = 100
# An image can take a moment to appear in DescribeImages after ImportImage/CopyImage answers.
_APPEAR_GRACE = 60.0


class ImageFailedError(PermanentCloudError):
    """An image import or copy ended in failure (CreateFailed, UnAvailable, task Failed)."""


class ImageTimeoutError(TransientCloudError):
    """An image did not become Available in time; waiting longer may still succeed."""


@dataclass(frozen=True)
class ImageInfo:
    """What DescribeImages says about one image."""

    image_id: str
    name: str
    family: str | None
    status: str
    progress: int  # percent
    boot_mode: str | None
    architecture: str | None
    is_public: bool
    snapshot_ids: tuple[str, ...]
    creation_time: str | None
    nvme_support: bool
    size_gib: int | None
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, key: str) -> str | None:
        """The value of the image's tag ``key``, if it has one."""
        return dict(self.tags).get(key)

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> ImageInfo:
        """Build from one ``Images.Image[]`` entry (wire keys)."""
        mappings = (item.get("DiskDeviceMappings") or {}).get("DiskDeviceMapping") or []
        progress = str(item.get("Progress") or "0").rstrip("%").strip() or "0"
        size = item.get("Size")
        return cls(
            image_id=str(item["ImageId"]),
            name=str(item.get("ImageName") or ""),
            family=item.get("ImageFamily") or None,
            status=str(item.get("Status") or ""),
            progress=int(float(progress)) if progress.replace(".", "", 1).isdigit() else 0,
            boot_mode=item.get("BootMode") or None,
            architecture=item.get("Architecture") or None,
            is_public=_truthy(item.get("IsPublic")),
            snapshot_ids=tuple(str(d["SnapshotId"]) for d in mappings if d.get("SnapshotId")),
            creation_time=item.get("CreationTime") or None,
            nvme_support=(item.get("Features") or {}).get("NvmeSupport") == "supported",
            size_gib=int(size)
            if isinstance(size, int | float | str) and str(size).isdigit()
            else None,
            tags=tuple(
                (str(tag.get("TagKey") or ""), str(tag.get("TagValue") or ""))
                for tag in (item.get("Tags") or {}).get("Tag") or []
            ),
        )


def _remain_time(item: Mapping[str, Any]) -> float | None:
    """The longest positive ``RemainTime`` of an image's disks (seconds), if any is reported."""
    mappings = (item.get("DiskDeviceMappings") or {}).get("DiskDeviceMapping") or []
    remains = [float(r) for d in mappings if isinstance(r := d.get("RemainTime"), int | float)]
    return max((r for r in remains if r > 0), default=None)


def _truthy(value: object) -> bool:
    return value is True or str(value).lower() == "true"


class EcsApi(ImageAttributes):
    """ECS in one region."""

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: CredentialSource,
        region: str,
        *,
        account_id: str = "",
        retry: RetryPolicy | None = None,
    ) -> None:
        self.region = region
        self._time_scale = endpoints.time_scale
        self._retry = retry or DEFAULT.scaled(endpoints.time_scale)
        host = endpoints.region(region, account_id or endpoints.account_id or "0").ecs
        self._client = Client(tea_config(endpoints, credentials, host, region=region))

    def __repr__(self) -> str:
        return f"EcsApi({self.region!r})"

    async def _call(
        self,
        action: str,
        fn: Callable[[], Awaitable[Any]],
        policy: RetryPolicy | None = None,
    ) -> dict[str, Any]:
        """Run one API call (retried, errors mapped); return the response body as wire keys."""

        async def once() -> dict[str, Any]:
            with boundary("ecs", action, self.region):
                response = await fn()
                body: dict[str, Any] = response.body.to_map() if response.body else {}
                return body

        return await (policy or self._retry).call_as(f"ecs:{action} {self.region}", once)

    # -- regions and images --------------------------------------------------------------------

    async def describe_regions(self) -> list[str]:
        """Every region ID ECS offers to this account (a run's second call: an ECS endpoint
        that cannot be reached is said within seconds)."""
        body = await self._call(
            "DescribeRegions",
            lambda: self._client.describe_regions_async(m.DescribeRegionsRequest()),
            self._retry.first_contact(),
        )
        return [str(r["RegionId"]) for r in (body.get("Regions") or {}).get("Region") or []]

    async def find_images(
        self,
        *,
        name: str | None = None,
        family: str | None = None,
        image_id: str | None = None,
        status: str = ALL_STATUSES,
    ) -> list[ImageInfo]:
        """This account's images matching every given filter (all pages; exact name match)."""
        items = await self._describe_images(
            image_name=name, image_family=family, image_id=image_id, status=status
        )
        found = [ImageInfo.from_api(item) for item in items]
        # ImageName is a fuzzy match on the server: keep only the exact name.
        return [i for i in found if name is None or i.name == name]

    async def _describe_images(self, **filters: str | None) -> list[dict[str, Any]]:
        """Every ``Images.Image[]`` entry (wire keys) DescribeImages answers, all pages."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            request = m.DescribeImagesRequest(
                region_id=self.region,
                image_owner_alias="self",
                page_number=page,
                page_size=_PAGE,
                **filters,
            )
            body = await self._call(
                "DescribeImages", partial(self._client.describe_images_async, request)
            )
            items = (body.get("Images") or {}).get("Image") or []
            found.extend(items)
            total = int(body.get("TotalCount") or 0)
            if not items or len(items) < _PAGE or page * _PAGE >= total:
                return found
            page += 1

    async def import_image(
        self,
        *,
        name: str,
        bucket: str,
        key: str,
        disk_image_size_gib: int,
        boot_mode: str,
        architecture: str,
        client_token: str,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        disk_format: str = "RAW",
    ) -> tuple[str, str]:
        """Start importing a disk image (RAW, QCOW2 or VHD) from OSS; return
        ``(image_id, task_id)``."""
        request = m.ImportImageRequest(
            region_id=self.region,
            image_name=name,
            description=description or None,
            architecture=architecture,
            ostype="linux",
            platform="Others Linux",
            boot_mode=boot_mode,
            client_token=client_token,
            # Some instance types refuse images not explicitly marked as NVMe-capable.
            features=m.ImportImageRequestFeatures(nvme_support="supported"),
            disk_device_mapping=[
                m.ImportImageRequestDiskDeviceMapping(
                    ossbucket=bucket,
                    ossobject=key,
                    format=disk_format,
                    disk_image_size=str(disk_image_size_gib),
                )
            ],
            tag=[m.ImportImageRequestTag(key=k, value=v) for k, v in (tags or {}).items()] or None,
        )
        body = await self._call("ImportImage", lambda: self._client.import_image_async(request))
        return str(body["ImageId"]), str(body.get("TaskId") or "")

    async def wait_available(
        self,
        image_id: str,
        *,
        timeout: float,  # noqa: ASYNC109 - cloud seconds, scaled like the polling
        task_id: str | None = None,
        on_sighting: Callable[[int, float | None], None] | None = None,
    ) -> ImageInfo:
        """Poll until the image is Available; ``timeout`` is in cloud seconds.

        Raises ImageFailedError if the image (or its ``task_id``) fails, NotFoundError if it
        vanishes, ImageTimeoutError after ``timeout``. How often it polls: :mod:`._polling`.
        ``on_sighting`` hears each poll's progress (percent) and remaining cloud seconds.
        """
        scale = self._time_scale
        began = anyio.current_time()  # the event loop's clock, which the retry layer sleeps on
        schedule = PollSchedule()
        seen = False
        while True:
            items = await self._describe_images(image_id=image_id, status=ALL_STATUSES)
            waited = (anyio.current_time() - began) * scale
            if items:
                seen = True
                info = ImageInfo.from_api(items[0])
                if info.status == "Available":
                    return info
                if info.status in _FAILED_STATUSES:
                    msg = f"image {image_id} is {info.status}"
                    raise self._error(ImageFailedError, info.status, msg, "DescribeImages")
                sighting = Sighting(waited, info.progress, _remain_time(items[0]))
                if on_sighting is not None:
                    on_sighting(info.progress, sighting.remain)
            elif task_id and await self._task_failed(task_id):
                msg = f"task {task_id} for image {image_id} failed"
                raise self._error(ImageFailedError, "TaskFailed", msg, "DescribeTasks")
            elif seen or waited >= _APPEAR_GRACE:
                msg = f"image {image_id} no longer exists"
                raise self._error(NotFoundError, "InvalidImageId.NotFound", msg, "DescribeImages")
            else:
                sighting = Sighting(waited)
            if waited >= timeout:
                msg = f"image {image_id} not Available after {timeout:.0f}s"
                raise self._error(ImageTimeoutError, "WaitTimeout", msg, "DescribeImages")
            # One last look at the deadline, but never sooner than the minimum interval.
            delay = min(schedule.next_delay(sighting), max(timeout - waited, MIN_INTERVAL))
            await anyio.sleep(delay / scale)

    def _error(self, kind: type[CloudError], code: str, message: str, action: str) -> CloudError:
        return kind(code, message, service="ecs", action=action, region=self.region)

    async def _task_failed(self, task_id: str) -> bool:
        request = m.DescribeTasksRequest(region_id=self.region, task_ids=task_id)
        body = await self._call("DescribeTasks", lambda: self._client.describe_tasks_async(request))
        tasks = (body.get("TaskSet") or {}).get("Task") or []
        return any(t.get("TaskStatus") == "Failed" for t in tasks)

    async def copy_image(
        self,
        *,
        image_id: str,
        destination_region: str,
        destination_name: str,
        client_token: str,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Copy an image of this region to ``destination_region``; return the new image ID."""
        request = m.CopyImageRequest(
            region_id=self.region,
            image_id=image_id,
            destination_region_id=destination_region,
            destination_image_name=destination_name,
            destination_description=description or None,
            client_token=client_token,
            tag=[m.CopyImageRequestTag(key=k, value=v) for k, v in (tags or {}).items()] or None,
        )
        body = await self._call("CopyImage", lambda: self._client.copy_image_async(request))
        return str(body["ImageId"])

    async def set_attributes(
        self,
        image_id: str,
        *,
        family: str | None = None,
        boot_mode: str | None = None,
        nvme: bool | None = None,
    ) -> None:
        """Set what is given in one ModifyImageAttribute call: the family, the boot mode
        (``UEFI-Preferred`` can only be set here: ImportImage takes BIOS or UEFI), NVMe."""
        features = None
        if nvme is not None:
            support = "supported" if nvme else "unsupported"
            features = m.ModifyImageAttributeRequestFeatures(nvme_support=support)
        request = m.ModifyImageAttributeRequest(
            region_id=self.region,
            image_id=image_id,
            image_family=family,
            boot_mode=boot_mode,
            features=features,
        )
        await self._call(
            "ModifyImageAttribute", lambda: self._client.modify_image_attribute_async(request)
        )

    async def delete_image(self, image_id: str) -> None:
        """Delete the image; an image that is already gone counts as deleted."""
        request = m.DeleteImageRequest(region_id=self.region, image_id=image_id)
        try:
            await self._call("DeleteImage", lambda: self._client.delete_image_async(request))
        except NotFoundError as exc:
            if exc.code != "InvalidImageId.NotFound":
                raise
