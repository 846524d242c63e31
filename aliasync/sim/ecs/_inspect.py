"""Introspection of the ECS model for tests and benchmarks (not part of the cloud's API)."""

from __future__ import annotations

from typing import Any

from aliasync.sim.ecs._state import Image, Snapshot, Task, iso
from aliasync.sim.ecs._store import EcsStore


def image_view(image: Image, now: float) -> dict[str, Any]:
    return {
        "id": image.id,
        "name": image.name,
        "description": image.description,
        "family": image.family,
        "status": image.status(now),
        "content_digest": image.content_digest,
        "content_bytes": image.content_bytes,
        "disk_format": image.disks[0].format,
        "failure": image.failure,
        "size_gib": image.size_gib,
        "boot_mode": image.boot_mode,
        "architecture": image.architecture,
        "os_type": image.os_type,
        "platform": image.platform,
        "nvme": image.nvme,
        "public": image.public,
        "shared_accounts": sorted(image.shared),
        "tags": dict(image.tags),
        "snapshot_ids": [d.snapshot_id for d in image.disks if d.snapshot_id],
        "copy_of": list(image.copy_of) if image.copy_of else None,
        "task_id": image.task_id,
        "creation_time": iso(image.created_at),
        "ready_time": iso(image.ready_at),
    }


def snapshot_view(snap: Snapshot, in_use: bool) -> dict[str, Any]:
    return {
        "id": snap.id,
        "image_id": snap.image_id,
        "disk": snap.disk_index,
        "size_gib": snap.size_gib,
        "in_use": in_use,
        "tags": dict(snap.tags),
        "creation_time": iso(snap.created_at),
    }


def task_view(task: Task, now: float) -> dict[str, Any]:
    return {
        "id": task.id,
        "action": task.action,
        "resource_id": task.resource_id,
        "status": task.status(now),
        "creation_time": iso(task.created_at),
        "finish_time": iso(task.finish_at),
    }


class InspectMixin(EcsStore):
    """``snapshot()``, ``orphan_snapshots()`` and ``duplicate_images()``."""

    def snapshot(self) -> dict[str, Any]:
        """Everything, JSON-able, per region (regions with nothing in them are left out)."""
        now = self._settle()
        regions: dict[str, Any] = {}
        for region in sorted(set(self._images) | set(self._snapshots) | set(self._tasks)):
            images = [image_view(i, now) for i in self._images.get(region, {}).values()]
            snaps = [
                snapshot_view(s, self.snapshot_in_use(s))
                for s in self._snapshots.get(region, {}).values()
            ]
            tasks = [task_view(t, now) for t in self._tasks.get(region, {}).values()]
            if images or snaps or tasks:
                regions[region] = {"images": images, "snapshots": snaps, "tasks": tasks}
        queues: dict[str, Any] = {}
        for region, queue in sorted(self._queues.items()):
            jobs = [
                {
                    "image_id": j.image_id,
                    "source_id": j.source_id,
                    "dest_region": j.dest_region,
                    "start": j.start,
                    "end": j.end,
                    "cancelled": j.cancelled_at is not None,
                }
                for j in queue.jobs
                if j.end > now
            ]
            if jobs:
                queues[region] = jobs
        return {
            "now": now,
            "image_quota": self.image_quota,
            "regions": regions,
            "copy_queues": queues,
        }

    def client_tokens(self) -> list[dict[str, Any]]:
        """Every ClientToken an ImportImage or CopyImage came with, oldest first: the image it
        made and how often it was answered (its first call, then each replay of it)."""
        return [
            {
                "action": action,
                "region": region,
                "token": token,
                "image_id": result.get("ImageId", ""),
                "answers": self._token_answers[key],
            }
            for key, (_, result) in self._tokens.items()
            for _, action, region, token in [key]
        ]

    def orphan_snapshots(self) -> list[dict[str, Any]]:
        """Snapshots that no existing image uses (DeleteImage leaves them behind)."""
        self._settle()
        return [
            {"region": s.region, **snapshot_view(s, False)}
            for snaps in self._snapshots.values()
            for s in snaps.values()
            if not self.snapshot_in_use(s)
        ]

    def duplicate_images(self) -> list[dict[str, Any]]:
        """Names held by more than one image in a region (any status), one entry per name."""
        now = self._settle()
        out: list[dict[str, Any]] = []
        for region in sorted(self._images):
            by_name: dict[str, list[Image]] = {}
            for image in self._images[region].values():
                if image.name:
                    by_name.setdefault(image.name, []).append(image)
            for name, group in sorted(by_name.items()):
                if len(group) > 1:
                    out.append(
                        {
                            "region": region,
                            "name": name,
                            "image_ids": [i.id for i in group],
                            "statuses": [i.status(now) for i in group],
                        }
                    )
        return out
