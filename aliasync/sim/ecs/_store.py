"""The ECS model's storage and its clock-driven bookkeeping, shared by the model's parts."""

from __future__ import annotations

import random
import string

from aliasync.sim._context import SimContext
from aliasync.sim._errors import SimError
from aliasync.sim.ecs._state import CopyJob, CopyQueue, Image, Snapshot, Task

_ALNUM = string.ascii_lowercase + string.digits


def image_not_found() -> SimError:
    return SimError("InvalidImageId.NotFound", "The specified ImageId does not exist.", 404)


class EcsStore:
    """Every region's images, snapshots, tasks and copy queues for the emulated account."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.image_quota = 100  # custom images per region ([D21] default)
        self.share_quota = 50  # accounts one image can be shared with
        self._images: dict[str, dict[str, Image]] = {}
        self._snapshots: dict[str, dict[str, Snapshot]] = {}
        self._tasks: dict[str, dict[str, Task]] = {}
        self._queues: dict[str, CopyQueue] = {}  # per source region
        self._pending: dict[str, Image] = {}  # images whose creation outcome is not recorded
        # ClientToken -> (request fingerprint, answer), keyed by (account, action, region, token)
        self._tokens: dict[tuple[str, str, str, str], tuple[object, dict[str, str]]] = {}
        self._token_answers: dict[tuple[str, str, str, str], int] = {}  # first call + replays
        self._rng = random.Random(f"aliasync-ecs-{ctx.faults.seed}")
        self._ids: set[str] = set()

    def now(self) -> float:
        return self.ctx.clock.now()

    def new_id(self, prefix: str) -> str:
        """``m-``/``s-``/``t-`` plus 20 lower-case letters and digits, reproducible per seed."""
        while True:
            value = prefix + "".join(self._rng.choice(_ALNUM) for _ in range(20))
            if value not in self._ids:
                self._ids.add(value)
                return value

    def _slots(self) -> int:
        return max(1, int(self.ctx.faults.profile.copy_concurrency))

    def _apply_schedule(self, jobs: list[CopyJob]) -> None:
        for job in jobs:
            image = self._images.get(job.dest_region, {}).get(job.image_id)
            if image is not None and job.cancelled_at is None:
                image.ready_at = job.end

    def _settle(self) -> float:
        """Record the outcome of every creation that has ended by now; return now."""
        now = self.now()
        for queue in self._queues.values():
            self._apply_schedule(queue.schedule(self._slots(), now))
        for image in list(self._pending.values()):
            if now < image.ready_at:
                continue
            del self._pending[image.id]
            if image.failed or self._images.get(image.region, {}).get(image.id) is not image:
                continue
            for disk in image.disks:
                snap = Snapshot(
                    id=self.new_id("s-"),
                    region=image.region,
                    image_id=image.id,
                    disk_index=disk.index,
                    size_gib=disk.size_gib,
                    created_at=image.ready_at,
                )
                disk.snapshot_id = snap.id
                self._snapshots.setdefault(image.region, {})[snap.id] = snap
        return now

    # --- reading ------------------------------------------------------------------------------

    def images(self, region: str) -> list[Image]:
        """The region's images, oldest first."""
        self._settle()
        return list(self._images.get(region, {}).values())

    def image(self, region: str, image_id: str) -> Image:
        self._settle()
        image = self._images.get(region, {}).get(image_id)
        if image is None:
            raise image_not_found()
        return image

    def tasks(self, region: str) -> list[Task]:
        self._settle()
        return list(self._tasks.get(region, {}).values())

    def snapshots(self, region: str) -> list[Snapshot]:
        self._settle()
        return list(self._snapshots.get(region, {}).values())

    def snapshot_in_use(self, snap: Snapshot) -> bool:
        return snap.image_id in self._images.get(snap.region, {})

    def copy_job(self, image: Image) -> CopyJob | None:
        if image.copy_of is None:
            return None
        queue = self._queues.get(image.copy_of[0])
        return queue.job(image.id) if queue is not None else None
