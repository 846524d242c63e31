"""One (region, image) pair on its way in, and what every way in does along the way.

Imported by the strategies (``_importing``, ``_relaying``, ``_copying``, ``_strategies``); it
imports only the run's state and the cloud clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aliasync.cloud._ecs import EcsApi, ImageInfo
from aliasync.cloud._retire import retire_images

if TYPE_CHECKING:
    from aliasync.pipeline._prepare import PreparedImage
    from aliasync.pipeline._regionplan import RegionPlan
    from aliasync.pipeline._report import ImageResult
    from aliasync.pipeline._run import Run

__all__ = ["ImageJob", "in_flight", "progress_reporter", "retire"]


@dataclass
class ImageJob:
    """One (region, image) pair and where its outcome goes."""

    run: Run
    plan: RegionPlan
    image: PreparedImage
    result: ImageResult

    @property
    def region(self) -> str:
        return self.plan.region


def in_flight(run: Run, region: str, image: str, *steps: str) -> bool:
    """An earlier session of this run sent (or was sending) one of these steps' calls."""
    return any(run.earlier(region, image, step).get("state") in ("started", "sent")
               for step in steps)  # fmt: skip


def progress_reporter(
    run: Run, region: str, image: PreparedImage, stage: str
) -> Callable[[int, float | None], None]:
    """What a wait tells the caller at each poll: progress, and the time the API says is left
    (a copy at 0 % is still queued behind others in its source region)."""

    def seen(percent: int, remain: float | None) -> None:
        now = "queued" if stage == "copy" and percent == 0 else stage
        run.emit(region, now, f"{percent}%", image.name, progress=percent / 100, remaining=remain)

    return seen


async def retire(ecs: EcsApi, job: ImageJob, existing: list[ImageInfo]) -> None:
    """Overwrite: unpublish, tag snapshots, delete the image, then every tagged snapshot
    (also those of an image a killed run deleted, which is no longer there to retire)."""
    await retire_images(
        ecs,
        existing,
        on_retire=lambda old: job.run.emit(
            job.region, "overwrite", f"retiring {old.image_id}", job.image.name
        ),
        sweep=job.run.options.overwrite,
    )
