"""Retiring images: unshare and unpublish, tag their snapshots, delete them, then delete the
snapshots.

Shared by the importer's ``--overwrite`` and by ``aliasync delete`` and ``prune``. ECS refuses
to delete an image that is shared (ImageUseShared) or public (ImageIsPublic), so it is
unshared first. Snapshots are tagged before their image is deleted so that a run killed in
between still finds them: every call here is safe to repeat. When a step fails, the error says
what state the image was left in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aliasync._exceptions import CloudError, PermanentCloudError
from aliasync.cloud._ecs import EcsApi, ImageInfo

__all__ = ["DELETE_TAG", "RetireError", "delete_tagged_snapshots", "retire_images"]

DELETE_TAG = ("aliasync:delete", "true")


class RetireError(PermanentCloudError):
    """A step of retiring an image failed; the message says where the image was left."""


async def retire_images(
    ecs: EcsApi,
    images: Sequence[ImageInfo],
    *,
    on_retire: Callable[[ImageInfo], None] | None = None,
    sweep: bool = False,
) -> None:
    """Unshare, tag snapshots, delete each image, then every snapshot tagged for deletion.

    With no image to retire, ``sweep`` still deletes the snapshots left tagged (by a run killed
    between DeleteImage and the snapshot delete); without it nothing is done.
    """
    if not images and not sweep:
        return
    for old in images:
        if on_retire is not None:
            on_retire(old)
        sharing = "public" if old.is_public else "shared or private as it was"
        await _step(ecs, old, "unsharing", f"{sharing}, not deleted",
                    ecs.unshare(old.image_id, public=old.is_public))  # fmt: skip
        if old.snapshot_ids:
            await _step(ecs, old, "tagging its snapshots", "unshared (private), not deleted",
                        ecs.tag_snapshots(list(old.snapshot_ids), *DELETE_TAG))  # fmt: skip
        await _step(ecs, old, "deleting it", "unshared (private), not deleted",
                    ecs.delete_image(old.image_id))  # fmt: skip
    try:
        await delete_tagged_snapshots(ecs)
    except CloudError as exc:
        raise RetireError(
            exc.code,
            f"the images are deleted, but deleting their snapshots failed ({exc.message}); they"
            f" stay tagged {DELETE_TAG[0]}={DELETE_TAG[1]} and the next delete or prune in"
            " this region removes them",
            region=ecs.region,
        ) from exc


async def _step(
    ecs: EcsApi, image: ImageInfo, doing: str, left: str, call: Awaitable[None]
) -> None:
    try:
        await call
    except CloudError as exc:
        raise RetireError(
            exc.code,
            f"{image.image_id} ({image.name}): {doing} failed ({exc.message}); the image is"
            f" left {left}",
            region=ecs.region,
        ) from exc


async def delete_tagged_snapshots(ecs: EcsApi) -> None:
    """Delete snapshots tagged for deletion, including leftovers of earlier attempts."""
    for snapshot_id in await ecs.snapshots_tagged(*DELETE_TAG):
        try:
            await ecs.delete_snapshot(snapshot_id)
        except PermanentCloudError as exc:
            if exc.code != "SnapshotCreatedImage":
                raise
