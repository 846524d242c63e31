"""The orchestrator: every image into every region, one pipeline per region, nothing leaked.

A run reads top to bottom:

1. prepare the images (inspect, hash, name) — bad input stops here, before any cloud call;
2. plan every region at once: which images it still needs, and how to get them there
   (``direct`` upload + ImportImage, ``relay`` through a temporary function, or ``copy``);
3. run one pipeline per region in a task group; a region waits for another only where it
   truly depends on it (a relay on its sources' uploads, a copy on one source image);
4. remove every temporary bucket and function, whatever happened, shielded from cancellation.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import anyio

from aliasync._cloud import Cloud
from aliasync._copysources import CopySourcePool
from aliasync._endpoints import Endpoints
from aliasync._exceptions import AliasyncError, ConfigurationError
from aliasync._prepare import PreparedImage, prepare_images
from aliasync._regionplan import RegionPlan, plan_region
from aliasync._report import Event, EventHandler, ImageResult, ImportReport, RegionResult
from aliasync._strategies import ImageJob, publish_image
from aliasync._uploads import UploadBoard

BUCKET_PREFIX = "aliasync-tmp-"
FUNCTION_PREFIX = "aliasync-relay-"
CLEANUP_DEADLINE = 600.0


@dataclass(frozen=True)
class ImportOptions:
    """What to publish where, and how."""

    regions: tuple[str, ...] | None = None  # None: every region DescribeRegions returns
    name: str | None = None  # default: "<family>-YYYYMMDD"
    family: str = "ipxe"
    public: bool = False
    share_accounts: tuple[str, ...] = ()
    overwrite: bool = False
    copy_concurrency: int = 1  # copies per source region the cloud runs at once
    relay_sources: int = 3  # uncensored buckets a relay downloads from in parallel


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
    # Per image: regions that may still import it, and so still become a copy source.
    importers_left: dict[str, int] = field(default_factory=dict)

    _locks: dict[str, anyio.Lock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pool = CopySourcePool(self.options.copy_concurrency)

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
        return f"{self.key_prefix}{image.sha256[:16]}/{image.name}.raw"

    @property
    def key_prefix(self) -> str:
        return f"aliasync/{self.run_id}/"

    def client_token(self, action: str, region: str, image: PreparedImage, attempt: int) -> str:
        """Deterministic per run, region, image and attempt: a retried call is the same call."""
        seed = f"{self.run_id}|{action}|{region}|{image.sha256}|{image.name}|{attempt}"
        return "as" + hashlib.sha256(seed.encode()).hexdigest()[:40]

    def emit(self, region: str, stage: str, message: str, image: str | None = None) -> None:
        if self.on_event is not None:
            elapsed = time.monotonic() - self.started
            self.on_event(Event(region, stage, message, image, elapsed))


class Importer:
    """Publishes disk images into regions. Use as an async context manager::

    async with Importer(endpoints) as importer:
        report = await importer.run(["ipxe.usb"], ImportOptions(regions=("cn-hangzhou",)))
    """

    def __init__(
        self, endpoints: Endpoints | None = None, *, on_event: EventHandler | None = None
    ) -> None:
        self.endpoints = endpoints or Endpoints()
        self.on_event = on_event
        self._cloud: Cloud | None = None

    async def __aenter__(self) -> Importer:
        self._cloud = await Cloud.open(self.endpoints)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._cloud is not None:
            with anyio.CancelScope(shield=True):
                await self._cloud.aclose()
            self._cloud = None

    @property
    def cloud(self) -> Cloud:
        if self._cloud is None:
            raise RuntimeError("use Importer as an async context manager")
        return self._cloud

    async def run(
        self, paths: Sequence[str | Path], options: ImportOptions | None = None
    ) -> ImportReport:
        """Publish ``paths`` as configured; partial failure is in the report, not raised."""
        options = options or ImportOptions()
        images = await prepare_images(paths, name=options.name, family=options.family)
        cloud = self.cloud
        regions = await self._select_regions(options.regions)
        run = Run(
            run_id=secrets.token_hex(8),
            options=options,
            images=images,
            account_id=await cloud.account_id(),
            on_event=self.on_event,
        )
        report = ImportReport(run.run_id)
        results = {r: RegionResult(r) for r in regions}
        report.regions = list(results.values())
        try:
            await self._remove_stale_buckets(run)
            plans = await self._plan(run, regions, results)
            async with anyio.create_task_group() as tg:
                for region in regions:
                    if region in plans:
                        tg.start_soon(self._region, run, plans[region], results[region])
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_DEADLINE):
                await self._cleanup(run)
            report.elapsed = time.monotonic() - run.started
        return report

    async def _select_regions(self, wanted: tuple[str, ...] | None) -> list[str]:
        available = await self.cloud.ecs(None).describe_regions()
        if not wanted:
            return available
        unknown = [r for r in wanted if r not in available]
        if unknown:
            raise ConfigurationError(
                f"unknown region(s): {', '.join(unknown)}; DescribeRegions offers "
                f"{', '.join(sorted(available))}"
            )
        return list(dict.fromkeys(wanted))

    async def _plan(
        self, run: Run, regions: list[str], results: dict[str, RegionResult]
    ) -> dict[str, RegionPlan]:
        """Detect every region's strategy at once; fail early if nothing can be uploaded."""
        plans: dict[str, RegionPlan] = {}
        cached = self.cloud.capabilities.load()

        async def one(region: str) -> None:
            result = results[region]
            try:
                plan = await plan_region(self.cloud, run, region, cached.get(region))
            except AliasyncError as exc:
                result.error = str(exc)
                for image in run.images:
                    result.images.append(
                        ImageResult(image.name, image.family, status="error", error=str(exc))
                    )
                run.emit(region, "failed", str(exc))
                return
            result.strategy = plan.strategy
            plans[region] = plan

        async with anyio.create_task_group() as tg:
            for region in regions:
                tg.start_soon(one, region)
        self.cloud.capabilities.save({r: p.strategy for r, p in plans.items()})
        if not any(p.strategy == "direct" for p in plans.values()):
            raise ConfigurationError(
                "no usable uncensored region: every image must first be uploaded to a region "
                "with public OSS access (outside mainland China); select at least one such "
                "region with -r"
            )
        # Copies and relays wait for sources; tell them how many regions may still supply one.
        importers = sum(1 for p in plans.values() if p.strategy != "copy")
        uploaders = sum(1 for p in plans.values() if p.strategy == "direct")
        for image in run.images:
            run.uploads.expect(image.name, uploaders)
            run.importers_left[image.name] = importers
        return plans

    async def _region(self, run: Run, plan: RegionPlan, result: RegionResult) -> None:
        """One region's pipeline: each image it needs, concurrently."""
        run.emit(plan.region, "plan", f"strategy {plan.strategy}")

        async def one(image: PreparedImage) -> None:
            image_result = ImageResult(image.name, image.family, strategy=plan.strategy)
            result.images.append(image_result)
            job = ImageJob(run=run, plan=plan, image=image, result=image_result)
            try:
                await publish_image(self.cloud, job)
            finally:
                await self._settle(run, plan, image, image_result)

        async with anyio.create_task_group() as tg:
            for image in run.images:
                tg.start_soon(one, image)

    async def _settle(
        self, run: Run, plan: RegionPlan, image: PreparedImage, result: ImageResult
    ) -> None:
        """Record a finished (region, image) so that waiters never wait for a lost cause."""
        with anyio.CancelScope(shield=True):
            if result.ok and result.image_id:
                await run.pool.add_source(image.name, plan.region, result.image_id)
            if plan.strategy != "copy":
                run.importers_left[image.name] -= 1
                if run.importers_left[image.name] == 0:
                    await run.pool.give_up(image.name)

    async def _remove_stale_buckets(self, run: Run) -> None:
        """Temporary buckets left by crashed runs are found by their prefix and removed."""
        stale = await self.cloud.oss.list_buckets(BUCKET_PREFIX)
        async with anyio.create_task_group() as tg:
            for bucket, region in stale:
                run.emit(region, "cleanup", f"removing stale bucket {bucket}")
                tg.start_soon(self._delete_bucket, region, bucket)

    async def _delete_bucket(self, region: str, bucket: str) -> None:
        try:
            await self.cloud.oss.delete_bucket(region, bucket, internal=True)
        except AliasyncError:
            # A bucket we cannot reach internally may still be reachable publicly.
            await self.cloud.oss.delete_bucket(region, bucket)

    async def _cleanup(self, run: Run) -> None:
        """Remove this run's temporary buckets and functions, and stale relay functions."""

        async def bucket(region: str, name: str) -> None:
            try:
                await self._delete_bucket(region, name)
            except AliasyncError as exc:
                run.emit(region, "failed", f"could not remove bucket {name}: {exc}")

        async def functions(region: str) -> None:
            try:
                for name in await self.cloud.fc.list_functions(region, FUNCTION_PREFIX):
                    await self.cloud.fc.delete_function(region, name)
            except AliasyncError as exc:
                run.emit(region, "failed", f"could not remove relay functions: {exc}")

        async with anyio.create_task_group() as tg:
            for region, name in list(run.buckets.items()):
                tg.start_soon(bucket, region, name)
            for region in list(run.functions):
                tg.start_soon(functions, region)


async def import_images(
    paths: Sequence[str | Path],
    *,
    endpoints: Endpoints | None = None,
    options: ImportOptions | None = None,
    on_event: EventHandler | None = None,
) -> ImportReport:
    """Publish disk images in every selected region; the report tells each region's outcome.

    Raises :class:`~aliasync.UsageError` for bad input, before anything is created.
    """
    async with Importer(endpoints, on_event=on_event) as importer:
        return await importer.run(paths, options)
