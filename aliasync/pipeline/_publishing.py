"""Once an image is Available in a region: its attributes, its shares, and publishing.

Every image aliasync creates is tagged with its content digest (the SHA-256 of the file) and
its run, so a later run can tell "already published" from "a different image of that name".
A community (public) image is no CopyImage source, so an image is published in no region
until no region of the run may still copy it; the first refusal of the community-image terms
stops all publishing. Each call is made only where the image differs from what was asked, so
an identical re-run makes no mutating call at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aliasync._exceptions import PermanentCloudError
from aliasync.cloud._ecs import EcsApi, ImageInfo
from aliasync.pipeline._run import TERMS_STEP

if TYPE_CHECKING:
    from aliasync.pipeline._prepare import PreparedImage
    from aliasync.pipeline._run import Run

__all__ = [
    "DIGEST_TAG", "RUN_TAG", "PublishRefusedError", "bring_up_to_date", "finish", "image_tags",
]  # fmt: skip

DIGEST_TAG = "aliasync:sha256"
RUN_TAG = "aliasync:run"


class PublishRefusedError(PermanentCloudError):
    """The image is Available and private: the account may not publish (terms not accepted)."""


def image_tags(run: Run, image: PreparedImage) -> dict[str, str]:
    """The tags of every image a run creates: what it holds, and who made it."""
    return {DIGEST_TAG: image.sha256, RUN_TAG: run.run_id}


async def finish(ecs: EcsApi, run: Run, region: str, image: PreparedImage, info: ImageInfo) -> None:
    """A new image: family, boot mode and NVMe, then shares, then (once it may) publishing.

    The boot mode is set whatever the strategy: UEFI-Preferred can only be set here, and
    whether CopyImage keeps it is not documented.
    """
    await ecs.set_attributes(
        info.image_id, family=image.family, boot_mode=image.boot_mode, nvme=True
    )
    await _share(ecs, run, info, already=())
    await run.pool.add_source(image.name, region, info.image_id)
    run.settle(region, image.name)
    await _publish(ecs, run, region, image, info)


async def bring_up_to_date(
    ecs: EcsApi, run: Run, region: str, image: PreparedImage, info: ImageInfo
) -> None:
    """An image already published with this content: change only what differs from what was
    asked. Re-runs add (a family, a share, publicity); they never take away: unpublish and
    unshare are their own commands."""
    family = image.family if info.family != image.family else None
    boot_mode = image.boot_mode if info.boot_mode != image.boot_mode else None
    nvme = True if not info.nvme_support else None
    if family or boot_mode or nvme:
        run.emit(region, "update", "bringing its attributes up to date", image.name)
        await ecs.set_attributes(info.image_id, family=family, boot_mode=boot_mode, nvme=nvme)
    if run.options.share_accounts:
        await _share(ecs, run, info, already=await ecs.shared_accounts(info.image_id))
    if info.is_public or not run.options.public:
        return
    await _publish(ecs, run, region, image, info)


async def _share(ecs: EcsApi, run: Run, info: ImageInfo, already: Sequence[str]) -> None:
    missing = [a for a in run.options.share_accounts if a not in set(already)]
    if missing:
        await ecs.set_sharing(info.image_id, add_accounts=missing)


async def _publish(
    ecs: EcsApi, run: Run, region: str, image: PreparedImage, info: ImageInfo
) -> None:
    if not run.options.public:
        return
    run.emit(region, "publish", "waiting until no region needs it as a copy source", image.name)
    await run.all_settled(image.name)
    run.note(region, image.name, "publish", "started", image_id=info.image_id)
    if not await run.publish.attempt(lambda: ecs.set_sharing(info.image_id, public=True)):
        raise PublishRefusedError(
            "PublicImageAgreement.NotSigned",
            f"{info.image_id} is Available but private: {run.publish.refusal}; "
            + TERMS_STEP.format(name=image.name),
            region=region,
        )
    run.note(region, image.name, "publish", "done", image_id=info.image_id)
