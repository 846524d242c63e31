"""The orchestrator: every image into every region, one pipeline per region, nothing leaked.

A run reads top to bottom:

1. prepare the images (inspect, hash, name) — bad input stops here, before any cloud call;
2. one pipeline per region, all in one task group: each first plans (which images it still
   needs, and how: ``direct`` upload + ImportImage, ``relay`` through a temporary function,
   or ``copy``), then publishes them; a region waits for another only where it truly
   depends on it (a relay on its sources' uploads, a copy on one source image), never for
   another region's plan;
3. remove every temporary bucket and function, whatever happened, shielded from cancellation.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio

from aliasync._exceptions import AliasyncError, JournalError
from aliasync.cloud._cloud import Cloud
from aliasync.cloud._endpoints import Endpoints
from aliasync.pipeline._cleanup import clean_up, remove_stale_buckets
from aliasync.pipeline._importing import ImportRoleMissingError
from aliasync.pipeline._job import ImageJob
from aliasync.pipeline._journal import Journal
from aliasync.pipeline._options import ImportOptions, check_options
from aliasync.pipeline._prepare import PreparedImage, base_name, prepare_images
from aliasync.pipeline._regionplan import PlanBoard, RegionPlan, plan_region
from aliasync.pipeline._report import (
    EventHandler,
    ImageResult,
    ImageSummary,
    ImportReport,
    RegionResult,
)
from aliasync.pipeline._run import Run
from aliasync.pipeline._state import CapabilityCache, state_dir
from aliasync.pipeline._strategies import publish_image
from aliasync.pipeline._uploads import UploadedCopy

CLEANUP_DEADLINE = 600.0


class Importer:
    """Publishes disk images into regions. Use as an async context manager::

    async with Importer(endpoints) as importer:
        report = await importer.run(["ipxe.usb"], ImportOptions(regions=("cn-hangzhou",)))
    """

    def __init__(
        self,
        endpoints: Endpoints | None = None,
        *,
        on_event: EventHandler | None = None,
        journal: Path | None = None,
    ) -> None:
        self.endpoints = endpoints or Endpoints()
        self.on_event = on_event
        self._journal_path = journal or state_dir() / "journal.sqlite3"
        self._journal: Journal | None = None
        self._cloud: Cloud | None = None

    async def __aenter__(self) -> Importer:
        self._journal = Journal(self._journal_path)
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
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("use Importer as an async context manager")
        return self._journal

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
        check_options(options)
        # The name is fixed when the run starts: a run resumed after midnight keeps it.
        options = replace(options, name=base_name(options.name, options.family))
        images = await _prepare(paths, options)
        regions = await self.cloud.select_regions(options.regions)
        run = self._new_run(secrets.token_hex(8), options, images)
        if run.journal is not None:
            plan = _plan_record(options, images, regions)
            plan["time_scale"] = run.time_scale  # for the timeline: cloud time, not the host's
            run.journal.start_run(run.run_id, plan)
        return await self._execute(run, regions)

    async def resume(self, run_id: str | None = None) -> ImportReport:
        """Continue a killed run (the latest by default) without redoing finished work."""
        record = self.journal.run(run_id)
        options, paths, regions = _from_plan_record(record.plan, self.journal.path)
        images = await _prepare([p for p, _ in paths], options)
        for image, (path, digest) in zip(images, paths, strict=True):
            if image.sha256 != digest:
                raise JournalError(
                    f"{path}: the file changed since run {record.run_id} started "
                    "(its SHA-256 differs); start a new run instead"
                )
        run = self._new_run(record.run_id, options, images)
        run.resumed = self.journal.latest_steps(record.run_id)
        for region, _, step in run.resumed:
            if step == "function":  # deployed by an earlier session: cleanup removes it
                run.functions.setdefault(region, run.function_name())
        self.journal.set_status(record.run_id, "running")
        return await self._execute(run, regions)

    def _new_run(self, run_id: str, options: ImportOptions, images: list[PreparedImage]) -> Run:
        return Run(
            run_id=run_id,
            options=options,
            images=images,
            account_id=self.cloud.account,
            on_event=self.on_event,
            journal=self._journal,
            time_scale=self.cloud.endpoints.time_scale,
        )

    async def _execute(self, run: Run, regions: list[str]) -> ImportReport:
        report = ImportReport(run.run_id, images=[_summary(i) for i in run.images])
        for image in run.images:
            for warning in image.warnings:
                run.emit("", "warning", warning, image.name)
        results = {r: RegionResult(r) for r in regions}
        report.regions = list(results.values())
        status = "interrupted"
        try:
            todo = await self._take_finished(run, results)
            for region, images in todo.items():
                for image in images:
                    run.expect(region, image.name)
                    run.emit(region, "plan", "looking up the region", image.name)
            await remove_stale_buckets(self.cloud, run)
            capabilities = CapabilityCache.for_scope(self.cloud.cache_scope)
            board = PlanBoard(
                run,
                todo,
                cached=capabilities.load(),
                on_planned=capabilities.save,
            )
            try:
                async with anyio.create_task_group() as tg:
                    for region in board.regions:
                        tg.start_soon(
                            self._plan_and_run,
                            run,
                            board,
                            tg.cancel_scope,
                            results[region],
                            todo[region],
                        )
            except* ImportRoleMissingError as group:
                status = "error"  # every region stopped: the account cannot import
                raise _first(group) from None
            if board.unreachable is not None:
                raise board.unreachable
            status = report.status
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_DEADLINE):
                await clean_up(self.cloud, run)
                if run.journal is not None:
                    run.journal.set_status(run.run_id, status)
            report.elapsed = time.monotonic() - run.started
            report.time_scale = run.time_scale
        return report

    async def _take_finished(
        self, run: Run, results: dict[str, RegionResult]
    ) -> dict[str, list[PreparedImage]]:
        """Images an earlier session finished are reported, not redone; they are sources."""
        todo: dict[str, list[PreparedImage]] = {}
        for region, result in results.items():
            todo[region] = []
            for image in run.images:
                earlier = run.earlier(region, image.name, "result")
                if earlier.get("state") == "done" and earlier.get("image_id"):
                    result.strategy = earlier.get("strategy")
                    result.images.append(
                        ImageResult(
                            image.name,
                            image.family,
                            image_id=earlier["image_id"],
                            strategy=earlier.get("strategy"),
                            status="success",
                        )
                    )
                    await run.pool.add_source(image.name, region, earlier["image_id"])
                    if earlier.get("strategy") == "direct":
                        # Its upload is still in the run's bucket: a relay of this session
                        # can download it from there.
                        copy = UploadedCopy(region, run.bucket_name(region), run.object_key(image))
                        await run.uploads.finished(image.name, region, copy)
                    run.emit(region, "done", f"{earlier['image_id']} (earlier session)", image.name)
                else:
                    todo[region].append(image)
        return todo

    async def _plan_and_run(
        self,
        run: Run,
        board: PlanBoard,
        stop: anyio.CancelScope,
        result: RegionResult,
        images: list[PreparedImage],
    ) -> None:
        """Detect one region's strategy, then run its pipeline without waiting for others."""
        region = result.region
        plan: RegionPlan | None = None
        try:
            plan = await plan_region(self.cloud, run, region, board.cached.get(region), images)
        except AliasyncError as exc:
            result.error = str(exc)
            for image in images:
                result.images.append(
                    ImageResult(image.name, image.family, status="error", error=str(exc))
                )
            run.emit(region, "failed", str(exc))
            for image in images:
                run.settle(region, image.name)
        await board.settle(region, plan)
        if board.unreachable is not None:
            stop.cancel()
        elif plan is not None:
            result.strategy = plan.strategy
            await self._region(run, plan, result, images)

    async def _region(
        self, run: Run, plan: RegionPlan, result: RegionResult, images: list[PreparedImage]
    ) -> None:
        """One region's pipeline: each image it needs, concurrently."""
        run.emit(plan.region, "ready", f"strategy {plan.strategy}")

        async def one(image: PreparedImage) -> None:
            image_result = ImageResult(image.name, image.family, strategy=plan.strategy)
            result.images.append(image_result)
            job = ImageJob(run=run, plan=plan, image=image, result=image_result)
            try:
                await publish_image(self.cloud, job)
            finally:
                await self._settle(run, plan, image, image_result)

        async with anyio.create_task_group() as tg:
            for image in images:
                tg.start_soon(one, image)

    async def _settle(
        self, run: Run, plan: RegionPlan, image: PreparedImage, result: ImageResult
    ) -> None:
        """Record a finished (region, image) so that waiters never wait for a lost cause."""
        with anyio.CancelScope(shield=True):
            run.settle(plan.region, image.name)
            if plan.strategy == "direct":
                await run.uploads.finished(image.name, plan.region, None)
            if result.ok and result.image_id:
                await run.pool.add_source(image.name, plan.region, result.image_id)
            await run.done_importing(plan.region, image.name)


async def import_images(
    paths: Sequence[str | Path],
    *,
    endpoints: Endpoints | None = None,
    options: ImportOptions | None = None,
    on_event: EventHandler | None = None,
) -> ImportReport:
    """Publish disk images in every selected region; the report tells each region's outcome.

    Raises :class:`~aliasync.UsageError` for bad input, before the first cloud call.
    """
    options = options or ImportOptions()
    check_options(options)
    await _prepare(paths, replace(options, name=base_name(options.name, options.family)))
    async with Importer(endpoints, on_event=on_event) as importer:
        return await importer.run(paths, options)


def _first(group: BaseExceptionGroup[ImportRoleMissingError]) -> ImportRoleMissingError:
    """One error of a task group's (nested) group, to report once."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, ImportRoleMissingError)
    return leaf


def _summary(image: PreparedImage) -> ImageSummary:
    return ImageSummary(
        path=str(image.path),
        name=image.name,
        family=image.family,
        format=image.disk.format,
        boot_mode=image.boot_mode,
        architecture=image.architecture,
        evidence=image.disk.evidence,
        size=image.size,
        virtual_size=image.disk.virtual_size,
        sha256=image.sha256,
        warnings=image.warnings,
    )


async def _prepare(paths: Sequence[str | Path], options: ImportOptions) -> list[PreparedImage]:
    return await prepare_images(
        paths,
        name=options.name,
        family=options.family,
        boot_mode=options.boot_mode,
        architecture=options.architecture,
    )


def _plan_record(
    options: ImportOptions, images: list[PreparedImage], regions: list[str]
) -> dict[str, Any]:
    """What a resumed run needs to redo the same plan (no secrets: paths, digests, options)."""
    return {
        "options": asdict(options),
        "images": [{"path": str(i.path.resolve()), "sha256": i.sha256} for i in images],
        "regions": regions,
    }


def _from_plan_record(
    plan: dict[str, Any], source: Path
) -> tuple[ImportOptions, list[tuple[str, str]], list[str]]:
    try:
        raw = dict(plan["options"])
        for key in ("regions", "share_accounts"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        options = ImportOptions(**raw)
        images = [(str(i["path"]), str(i["sha256"])) for i in plan["images"]]
        regions = [str(r) for r in plan["regions"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise JournalError(f"{source}: the run's plan is corrupt ({exc})") from exc
    return options, images, regions
