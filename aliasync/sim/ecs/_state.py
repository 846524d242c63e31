"""ECS resources as plain data: images, their disks and snapshots, import tasks, copy queues.

Nothing here knows about HTTP. States that change with time (an image being created, a task
running) are not stored: they are derived from timestamps in virtual seconds whenever asked.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aliasync.sim._errors import SimError

# Virtual second 0 of every emulator run, for the cloud's timestamps (CreationTime, ...).
EPOCH = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
GIB = 2**30

IMAGE_STATUSES = ("Creating", "Waiting", "Available", "UnAvailable", "CreateFailed", "Deprecated")
TASK_STATUSES = ("Finished", "Processing", "Failed")


def iso(virtual: float, *, seconds: bool = True) -> str:
    """A virtual time as the cloud writes it: ``2026-11-24T12:00:00Z`` (or without seconds)."""
    moment = EPOCH + timedelta(seconds=virtual)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ" if seconds else "%Y-%m-%dT%H:%MZ")


def parse_iso(value: str) -> float | None:
    """Virtual seconds of an ISO 8601 UTC time (``…THH:mmZ`` or ``…THH:mm:ssZ``); None if bad."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ"):
        try:
            moment = datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        return (moment - EPOCH).total_seconds()
    return None


# --- naming rules ----------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff.:_\-]{1,127}")


def valid_name(value: str) -> bool:
    """ECS image and family names: 2-128 characters, starting with a letter, no aliyun/acs:."""
    lowered = value.lower()
    return (
        bool(_NAME.fullmatch(value))
        and not lowered.startswith(("aliyun", "acs:"))
        and "http://" not in lowered
        and "https://" not in lowered
    )


def check_image_name(value: str, what: str = "Image name") -> None:
    if not valid_name(value):
        raise SimError("InvalidImageName.Malformed", f"The specified {what} is wrongly formed.")


def check_family(value: str) -> None:
    if not valid_name(value):
        raise SimError(
            "InvalidImageFamily.Malformed", "The specified ImageFamily is wrongly formed."
        )


def check_description(value: str) -> None:
    if not 2 <= len(value) <= 256 or value.lower().startswith(("http://", "https://")):
        raise SimError(
            "InvalidDescription.Malformed", "The specified description is wrongly formed."
        )


def check_tags(tags: dict[str, str], limit: int = 20) -> None:
    """Tag keys and values as ECS accepts them (keys non-empty, no system prefixes)."""
    if len(tags) > limit:
        raise SimError("NumberExceed.Tags", f"The maximum number of Tags is exceeded ({limit}).")
    for key, value in tags.items():
        low = key.lower()
        if (
            not key
            or len(key) > 128
            or low.startswith(("aliyun", "acs:"))
            or "http://" in low
            or "https://" in low
        ):
            raise SimError("InvalidTagKey.Malformed", "The specified Tag.n.Key is not valid.")
        vlow = value.lower()
        if len(value) > 128 or vlow.startswith("acs:") or "http://" in vlow or "https://" in vlow:
            raise SimError("InvalidTagValue.Malformed", "The specified Tag.n.Value is not valid.")


# --- resources -------------------------------------------------------------------------------


@dataclass
class Disk:
    """One disk of an image: the system disk (index 1) or a data disk."""

    index: int
    size_gib: int  # the disk size (DiskImageSize)
    format: str
    oss_bucket: str
    oss_object: str
    content_bytes: int  # bytes of the disk (the virtual disk of a QCOW2 or VHD file)
    content_digest: str  # hex SHA-256 of those bytes
    snapshot_id: str = ""  # set when the image becomes Available

    @property
    def device(self) -> str:
        return "/dev/xvd" + "abcdefghijklmnopq"[self.index - 1]


@dataclass
class Image:
    """A custom image in one region."""

    id: str
    region: str
    name: str
    description: str
    family: str
    architecture: str
    os_type: str
    platform: str
    boot_mode: str
    license_type: str
    nvme: str  # Features.NvmeSupport: "supported" | "unsupported"
    imds: str  # Features.ImdsSupport: "" | "v1" | "v2"
    disks: list[Disk]
    created_at: float
    ready_at: float  # imports: when creation ends; copies: from the copy queue
    failed: bool = False
    copy_of: tuple[str, str] | None = None  # (source region, source image ID)
    task_id: str = ""
    deprecated: bool = False
    public: bool = False
    shared: dict[str, float] = field(default_factory=dict)  # account -> shared at
    tags: dict[str, str] = field(default_factory=dict)
    failure: str = ""  # why the import fails, when the object itself is the reason

    @property
    def size_gib(self) -> int:
        return self.disks[0].size_gib

    @property
    def content_bytes(self) -> int:
        return sum(d.content_bytes for d in self.disks)

    @property
    def content_digest(self) -> str:
        return self.disks[0].content_digest

    def status(self, now: float) -> str:
        if now < self.ready_at:
            return "Creating"
        if self.failed:
            return "CreateFailed"
        return "Deprecated" if self.deprecated else "Available"


@dataclass
class Snapshot:
    """A snapshot an image was created with (imports and copies make one per disk)."""

    id: str
    region: str
    image_id: str  # the image it was created for
    disk_index: int
    size_gib: int
    created_at: float
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Task:
    """An asynchronous ECS task (here: ImportImage)."""

    id: str
    region: str
    action: str
    resource_id: str
    created_at: float
    finish_at: float
    failed: bool = False

    def status(self, now: float) -> str:
        if now < self.finish_at:
            return "Processing"
        return "Failed" if self.failed else "Finished"


@dataclass
class CopyJob:
    """One CopyImage in its source region's queue."""

    image_id: str  # the destination image
    dest_region: str
    source_id: str  # the source image (in the queue's region)
    submitted: float
    duration: float
    cancelled_at: float | None = None
    start: float = 0.0
    end: float = 0.0


class CopyQueue:
    """A source region's FIFO of copies with a fixed number of slots.

    A job starts at ``max(submitted, earliest free slot)`` and ends ``duration`` later. A job
    cancelled before it starts never takes a slot; one cancelled while running frees its slot
    at the moment of cancellation. The schedule is recomputed from the job list whenever it
    changes, so a cancellation moves later jobs forward (never into the past, since each of
    them waited for a slot that was busy at least until the cancellation). Jobs that finished
    before "now" are folded into the slots' free times to keep the list short.
    """

    def __init__(self) -> None:
        self.jobs: list[CopyJob] = []
        self._base: list[float] = []  # slot free times after the folded jobs
        self._dirty = True

    def submit(self, job: CopyJob, slots: int) -> list[CopyJob]:
        self.jobs.append(job)
        self._dirty = True
        return self.schedule(slots, job.submitted)

    def cancel(self, image_id: str, now: float, slots: int) -> list[CopyJob]:
        for job in self.jobs:
            if job.image_id == image_id and job.cancelled_at is None:
                job.cancelled_at = now
                self._dirty = True
        return self.schedule(slots, now)

    def schedule(self, slots: int, now: float) -> list[CopyJob]:
        """Recompute starts and ends if the jobs changed; return every job rescheduled."""
        slots = max(1, slots)
        if len(self._base) != slots:
            self._base = (self._base + [0.0] * slots)[:slots]
            self._dirty = True
        if not self._dirty:
            return []
        done = list(self.jobs)
        free = sorted(self._base)
        fold = 0
        folding = True
        for job in self.jobs:
            slot = heapq.heappop(free)
            job.start = max(job.submitted, slot)
            job.end = job.start + job.duration
            busy = job.end
            if job.cancelled_at is not None:
                if job.cancelled_at <= job.start:
                    busy = slot  # never started: the slot stays as it was
                    job.start = job.end = job.cancelled_at
                else:
                    busy = min(job.end, job.cancelled_at)
                    job.end = busy
            heapq.heappush(free, busy)
            if folding and busy <= now and job.end <= now:
                fold += 1
                self._base = list(free)
            else:
                folding = False
        del self.jobs[:fold]
        self._dirty = False
        return done

    def job(self, image_id: str) -> CopyJob | None:
        for job in self.jobs:
            if job.image_id == image_id:
                return job
        return None

    def busy(self) -> list[CopyJob]:
        return [j for j in self.jobs if j.cancelled_at is None]
