"""How ECS writes its resources in JSON answers (keys as the SDK models read them)."""

from __future__ import annotations

from typing import Any

from aliasync.sim.ecs._models import EcsModel
from aliasync.sim.ecs._state import Image, Snapshot, Task, iso


def tags_json(tags: dict[str, str]) -> dict[str, Any]:
    return {"Tag": [{"TagKey": k, "TagValue": v} for k, v in tags.items()]}


def image_json(model: EcsModel, image: Image, now: float) -> dict[str, Any]:
    status = image.status(now)
    if status == "Creating":
        if image.copy_of is not None:
            percent, remain = model.copy_progress(image)
        else:
            span = max(image.ready_at - image.created_at, 1e-9)
            percent = min(99, int(100 * (now - image.created_at) / span))
            remain = max(0, round(image.ready_at - now))
    else:
        percent, remain = 100, 0
    mappings = [
        {
            "Device": disk.device,
            "Type": "system" if disk.index == 1 else "data",
            "Size": str(disk.size_gib),
            "SnapshotId": disk.snapshot_id,
            "Format": disk.format,
            "ImportOSSBucket": "" if image.copy_of else disk.oss_bucket,
            "ImportOSSObject": "" if image.copy_of else disk.oss_object,
            "Progress": f"{percent}%",
            "RemainTime": remain,
            "Encrypted": False,
        }
        for disk in image.disks
    ]
    features: dict[str, str] = {"NvmeSupport": image.nvme}
    if image.imds:
        features["ImdsSupport"] = image.imds
    owner = model.ctx.account_id
    return {
        "ImageId": image.id,
        "ImageName": image.name,
        "ImageFamily": image.family,
        "ImageVersion": "",
        "Description": image.description,
        "Status": status,
        "Progress": f"{percent}%",
        "Size": image.size_gib,
        "CreationTime": iso(image.created_at),
        "Architecture": image.architecture,
        "BootMode": image.boot_mode,
        "OSType": image.os_type,
        "Platform": image.platform,
        "LicenseType": image.license_type,
        "ImageOwnerAlias": "self",
        "ImageOwnerId": int(owner) if owner.isdigit() else 0,
        "IsPublic": image.public,
        "IsCopied": image.copy_of is not None,
        "IsSelfShared": "True" if image.shared else "False",
        "IsSubscribed": False,
        "IsSupportCloudinit": True,
        "IsSupportIoOptimized": True,
        "Usage": "none",
        "ProductCode": "",
        "ResourceGroupId": "",
        "Features": features,
        "Tags": tags_json(image.tags),
        "DiskDeviceMappings": {"DiskDeviceMapping": mappings},
    }


def snapshot_json(model: EcsModel, snap: Snapshot) -> dict[str, Any]:
    return {
        "SnapshotId": snap.id,
        "SnapshotName": "",
        "Description": "",
        "Status": "accomplished",
        "Progress": "100%",
        "RemainTime": 0,
        "SourceDiskId": "",
        "SourceDiskSize": str(snap.size_gib),
        "SourceDiskType": "system" if snap.disk_index == 1 else "data",
        "SourceStorageType": "disk",
        "Usage": "image" if model.snapshot_in_use(snap) else "none",
        "CreationTime": iso(snap.created_at),
        "LastModifiedTime": iso(snap.created_at),
        "Encrypted": False,
        "Category": "standard",
        "SnapshotType": "user",
        "Available": True,
        "InstantAccess": False,
        "ProductCode": "",
        "RegionId": snap.region,
        "ResourceGroupId": "",
        "Tags": tags_json(snap.tags),
    }


def task_json(task: Task, now: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "TaskId": task.id,
        "TaskAction": task.action,
        "TaskStatus": task.status(now),
        "CreationTime": iso(task.created_at, seconds=False),
        "SupportCancel": "true",
        "ResourceId": task.resource_id,
    }
    if now >= task.finish_at:
        out["FinishedTime"] = iso(task.finish_at, seconds=False)
    return out
