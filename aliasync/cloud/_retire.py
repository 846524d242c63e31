"""Retiring images: unpublish, tag their snapshots, delete them, then delete the snapshots.

Shared by the importer's ``--overwrite`` and by ``aliasync delete`` and ``prune``. Snapshots
are tagged before their image is deleted so that a run killed in between still finds them:
every call here is safe to repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aliasync._exceptions import PermanentCloudError
from aliasync.cloud._ecs import EcsApi, ImageInfo

__all__ = ["DELETE_TAG", "delete_tagged_snapshots", "retire_images"]

DELETE_TAG = ("aliasync:delete", "true")


async def retire_images(
    ecs: EcsApi,
    images: Sequence[ImageInfo],
    *,
    on_retire: Callable[[ImageInfo], None] | None = None,
) -> None:
    """Unpublish, tag snapshots, delete each image, then every snapshot tagged for deletion."""
    if not images:
        return
    for old in images:
        if on_retire is not None:
            on_retire(old)
        await ecs.set_sharing(old.image_id, public=False)
        if old.snapshot_ids:
            await ecs.tag_snapshots(list(old.snapshot_ids), *DELETE_TAG)
        await ecs.delete_image(old.image_id)
    await delete_tagged_snapshots(ecs)


async def delete_tagged_snapshots(ecs: EcsApi) -> None:
    """Delete snapshots tagged for deletion, including leftovers of earlier attempts."""
    for snapshot_id in await ecs.snapshots_tagged(*DELETE_TAG):
        try:
            await ecs.delete_snapshot(snapshot_id)
        except PermanentCloudError as exc:
            if exc.code != "SnapshotCreatedImage":
                raise
