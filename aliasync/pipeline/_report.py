"""What an import produces: progress events while it runs, a structured report at the end.

Partial success is data, not an exception: every region ends ``success``, ``partial`` or
``error``, and the report says which and why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["success", "partial", "error"]
Way = Literal["direct", "relay", "copy"]  # how a region receives images
# "existing": the image was already there (same content), so nothing was created.
Strategy = Literal["direct", "relay", "copy", "existing"]


@dataclass(frozen=True)
class Event:
    """One step of progress, for a live view or a pipeline's log."""

    region: str
    # "plan", "upload", "wait" (for another region: a source to copy, an upload to relay),
    # "relay", "import", "queued" (a copy in its source region's queue), "copy", "retry",
    # "update", "publish", "done", "failed", "cleanup", "warning"
    stage: str
    message: str
    image: str | None = None  # the ECS image name this event is about
    elapsed: float = 0.0  # seconds since the run started
    cloud_elapsed: float = 0.0  # the same in the cloud's time (the emulator's is faster)
    progress: float | None = None  # 0..1 of the stage: bytes uploaded, or the API's Progress
    remaining: float | None = None  # cloud seconds the API says are left, if it says
    size: int | None = None  # bytes the stage moves (uploads), with ``progress`` of them done


EventHandler = Callable[[Event], None]


@dataclass(frozen=True)
class ImageSummary:
    """One input file: what inspection found in it, and how it is registered."""

    path: str
    name: str
    family: str
    format: str  # RAW, QCOW2 or VHD: ImportImage's Format
    boot_mode: str  # as registered
    architecture: str  # as registered
    evidence: str  # why inspection decided what it did
    size: int
    virtual_size: int
    sha256: str
    warnings: tuple[str, ...] = ()  # where --boot-mode or --arch overrode the evidence


@dataclass
class ImageResult:
    """One image in one region."""

    name: str
    family: str
    image_id: str | None = None
    strategy: Strategy | None = None
    status: Literal["success", "error", "pending"] = "pending"
    error: str | None = None
    elapsed: float = 0.0
    source_region: str | None = None  # for copies
    existing: bool = False  # already published with this content: nothing was created

    @property
    def ok(self) -> bool:
        return self.status == "success"


@dataclass
class RegionResult:
    """Everything that happened in one region."""

    region: str
    strategy: Strategy | None = None
    images: list[ImageResult] = field(default_factory=list)
    error: str | None = None  # a failure of the region as a whole

    @property
    def status(self) -> Status:
        done = sum(1 for image in self.images if image.ok)
        if self.error is None and self.images and done == len(self.images):
            return "success"
        return "partial" if done else "error"


@dataclass
class ImportReport:
    """The outcome of a run: per region, per image."""

    run_id: str
    regions: list[RegionResult] = field(default_factory=list)
    elapsed: float = 0.0  # wall seconds
    images: list[ImageSummary] = field(default_factory=list)
    time_scale: float = 1.0  # cloud seconds per wall second (1 in the cloud itself)

    @property
    def cloud_elapsed(self) -> float:
        """How long the run took in the cloud's time (the emulator's runs faster)."""
        return self.elapsed * self.time_scale

    def counts(self) -> dict[str, int]:
        """(region, image) pairs: published, failed, total; and regions."""
        pairs = [i for r in self.regions for i in r.images]
        published = sum(1 for i in pairs if i.ok)
        return {
            "published": published,
            "failed": len(pairs) - published,
            "total": len(pairs),
            "regions": len(self.regions),
        }

    def summary(self) -> str:
        """One line: ``90 of 90 published in 30 regions in 2 h 13 min``."""
        counts = self.counts()
        line = (
            f"{counts['published']} of {counts['total']} published in {counts['regions']}"
            f" region{'s' if counts['regions'] != 1 else ''} in {duration(self.cloud_elapsed)}"
        )
        if self.time_scale != 1.0:
            line += f" of cloud time ({duration(self.elapsed)} here)"
        return line

    @property
    def status(self) -> Status:
        statuses = {region.status for region in self.regions}
        if statuses == {"success"}:
            return "success"
        if statuses == {"error"}:
            return "error"
        return "partial"

    @property
    def exit_code(self) -> int:
        """0 when every region has every image, 1 otherwise."""
        return 0 if self.status == "success" else 1

    def image_ids(self) -> dict[str, dict[str, str]]:
        """``{region: {image name: image ID}}`` for every image that was published."""
        return {
            r.region: {i.name: i.image_id for i in r.images if i.ok and i.image_id}
            for r in self.regions
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "elapsed": round(self.elapsed, 3),
            "cloud_elapsed": round(self.cloud_elapsed, 3),
            "summary": {**self.counts(), "text": self.summary()},
            "images": [asdict(i) for i in self.images],
            "regions": [
                {**asdict(r), "status": r.status} for r in sorted(self.regions, key=_region_key)
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def duration(seconds: float) -> str:
    """``2 h 13 min``, ``4 min 10 s``, ``9 s``, ``0.4 s``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _region_key(result: RegionResult) -> str:
    return result.region
