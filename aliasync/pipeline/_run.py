"""The state of one run, shared by its region pipelines, and what it derives from its ID.

Every name and ClientToken is derived from the run ID, so a resumed run (same ID) reproduces
them exactly: buckets and functions are found again, and calls in flight are re-attached.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from aliasync._exceptions import CloudError
from aliasync.pipeline._copysources import CopySourcePool
from aliasync.pipeline._journal import Journal
from aliasync.pipeline._options import ImportOptions
from aliasync.pipeline._prepare import PreparedImage
from aliasync.pipeline._report import Event, EventHandler
from aliasync.pipeline._uploads import UploadBoard

BUCKET_PREFIX = "aliasync-tmp-"
TERMS_STEP = (
    "accept the community-image terms in the ECS console (Images > Community Images), then"
    " run: aliasync publish {name}"
)


class PublishVerdict:
    """Whether the account may publish: learnt from the run's first attempt, which the others
    wait for, so that an account without the community-image terms gets one refusal, not one
    per region."""

    def __init__(self) -> None:
        self._lock = anyio.Lock()
        self.refusal: str | None = None  # the cloud's words, once refused
        self.known = False

    async def attempt(self, publish: Callable[[], Awaitable[None]]) -> bool:
        """Run ``publish`` unless publishing was refused; False if it is (or just was)."""
        if not self.known:
            async with self._lock:
                if not self.known:
                    try:
                        await publish()
                    except CloudError as exc:
                        if exc.code != "PublicImageAgreement.NotSigned":
                            raise
                        self.refusal = exc.message
                        self.known = True
                        return False
                    self.known = True
                    return True
        if self.refusal is not None:
            return False
        await publish()
        return True


FUNCTION_PREFIX = "aliasync-relay-"


@dataclass
class Run:
    """The state of one run, shared by the region pipelines."""

    run_id: str
    options: ImportOptions
    images: list[PreparedImage]
    account_id: str
    started: float = field(default_factory=time.monotonic)
    on_event: EventHandler | None = None
    pool: CopySourcePool = field(init=False)
    uploads: UploadBoard = field(default_factory=UploadBoard)
    buckets: dict[str, str] = field(default_factory=dict)  # region -> temporary bucket
    functions: dict[str, str] = field(default_factory=dict)  # region -> relay function
    journal: Journal | None = None
    # Last step records of earlier sessions of this run, by (region, image, step).
    resumed: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # (region, image) pairs still importing: each may yet become a copy source.
    importers: set[tuple[str, str]] = field(default_factory=set)
    # Per image, the regions still working towards it: a community image is no copy source,
    # so an image is published nowhere until no region may still copy it.
    unsettled: dict[str, set[str]] = field(default_factory=dict)
    publish: PublishVerdict = field(default_factory=lambda: PublishVerdict())

    upload_slots: anyio.CapacityLimiter = field(init=False)

    time_scale: float = 1.0  # cloud seconds per real second (the emulator runs faster)
    _locks: dict[str, anyio.Lock] = field(default_factory=dict)
    _stages: dict[tuple[str, str], str] = field(default_factory=dict)
    _settled: dict[str, anyio.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pool = CopySourcePool(self.options.copy_concurrency)
        # Waiters are served first come, first served, and pipelines start their images
        # in order: every image's first uploads are the first to get a slot.
        self.upload_slots = anyio.CapacityLimiter(self.options.upload_concurrency)

    def expect(self, region: str, image: str) -> None:
        """``region`` will work towards ``image`` in this session."""
        self.unsettled.setdefault(image, set()).add(region)
        self._settled.setdefault(image, anyio.Event())

    def settle(self, region: str, image: str) -> None:
        """``region`` is done with ``image`` (it has it, waiting to publish, or failed)."""
        waiting = self.unsettled.get(image)
        if waiting is None:
            return
        waiting.discard(region)
        if not waiting:
            self._settled[image].set()

    async def all_settled(self, image: str) -> None:
        """Wait until no region of this session may still need ``image`` as a copy source."""
        event = self._settled.get(image)
        if event is not None:
            await event.wait()

    def region_lock(self, region: str) -> anyio.Lock:
        return self._locks.setdefault(region, anyio.Lock())

    @property
    def short_id(self) -> str:
        return self.run_id[:8]

    def bucket_name(self, region: str) -> str:
        return f"{BUCKET_PREFIX}{self.short_id}-{region}"[:63].rstrip("-")

    def function_name(self) -> str:
        return f"{FUNCTION_PREFIX}{self.short_id}"

    def object_key(self, image: PreparedImage) -> str:
        return f"{self.key_prefix}{image.sha256[:16]}/{image.name}{image.object_suffix}"

    @property
    def key_prefix(self) -> str:
        return f"aliasync/{self.run_id}/"

    def client_token(self, action: str, region: str, image: PreparedImage, attempt: int) -> str:
        """Deterministic per run, region, image and attempt: a retried call is the same call."""
        seed = f"{self.run_id}|{action}|{region}|{image.sha256}|{image.name}|{attempt}"
        return "as" + hashlib.sha256(seed.encode()).hexdigest()[:40]

    def emit(
        self,
        region: str,
        stage: str,
        message: str,
        image: str | None = None,
        *,
        progress: float | None = None,
        remaining: float | None = None,
        size: int | None = None,
    ) -> None:
        """Tell the caller (``on_event``); a new stage of a (region, image) is journaled too,
        with its time, for ``aliasync runs show --timeline``."""
        elapsed = time.monotonic() - self.started
        cloud = elapsed * self.time_scale
        key = (region, image or "")
        if self._stages.get(key) != stage:
            self._stages[key] = stage
            self.note(region, image or "", "stage", stage, cloud=round(cloud, 3),
                      message=message[:200])  # fmt: skip
        if self.on_event is not None:
            self.on_event(
                Event(region, stage, message, image, elapsed, cloud, progress, remaining, size)
            )

    async def done_importing(self, region: str, image: str) -> None:
        """``region`` will not import ``image`` (any more): once no region will, copies that
        wait for a source of it fail instead of waiting forever."""
        if (region, image) in self.importers:
            self.importers.discard((region, image))
            if not any(name == image for _, name in self.importers):
                await self.pool.give_up(image)

    # -- the journal ---------------------------------------------------------------------

    def note(self, region: str, image: str, step: str, state: str, **data: Any) -> None:
        """Record a step durably (before a mutating call is sent, and after its answer)."""
        if self.journal is not None:
            self.journal.record(self.run_id, region, image, step, state, **data)

    def earlier(self, region: str, image: str, step: str) -> dict[str, Any]:
        """What an earlier session of this run recorded last for this step, if anything."""
        return self.resumed.get((region, image, step), {})

    def first_attempt(self, region: str, image: str, step: str) -> int:
        """The attempt to start from: the one a killed session may have left in flight."""
        return int(self.earlier(region, image, step).get("attempt", 0))
