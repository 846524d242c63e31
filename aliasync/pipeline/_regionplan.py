"""How to get images into a region, detected by the region's behaviour, not from a list.

- ``direct``: a new bucket can be created and its data read through the public endpoint;
- ``relay``: a bucket can be created but public data access is refused (mainland China), and
  Function Compute answers, so a temporary function can fill it through the internal endpoint;
- ``copy``: anything else (no new buckets, no OSS, no FC): CopyImage from another region.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aliasync._exceptions import (
    CloudError,
    ConfigurationError,
    PermanentCloudError,
    TransientCloudError,
)
from aliasync.cloud._ecs import ImageInfo
from aliasync.cloud._oss import BucketsForbiddenError
from aliasync.cloud._retry import RetryPolicy
from aliasync.pipeline._publishing import DIGEST_TAG
from aliasync.pipeline._report import Strategy, Way

# A temporary bucket's lifecycle rule expires its objects and aborts its uploads after this
# many days (OSS's smallest unit): what a run that died leaves behind empties itself.
TEMPORARY_DAYS = 1
# Three tries within about five seconds: enough to ride out a dropped connection.
_PROBE = RetryPolicy(attempts=3, timeout=60.0, wait_initial=1.0, wait_max=3.0, wait_jitter=0.5)

if TYPE_CHECKING:
    from aliasync.cloud._cloud import Cloud
    from aliasync.pipeline._prepare import PreparedImage
    from aliasync.pipeline._run import Run


@dataclass
class RegionPlan:
    """What one region needs and how it will get it."""

    region: str
    strategy: Strategy
    bucket: str | None = None  # temporary bucket (direct and relay)
    existing: dict[str, list[ImageInfo]] = field(default_factory=dict)  # by image name
    # False when the strategy was chosen because OSS did not answer: maybe only for now,
    # so it is used for this run but not remembered for the next.
    certain: bool = True
    # Images already there with this content (by name): nothing to create, only to update.
    published: dict[str, ImageInfo] = field(default_factory=dict)
    # Images whose name is taken by other content, and --overwrite was not given: why not.
    refused: dict[str, str] = field(default_factory=dict)

    def needs(self, name: str) -> bool:
        """Whether the region must create the image ``name``."""
        return name not in self.published and name not in self.refused


class PlanBoard:
    """Region plans as they arrive, so that no region waits for the slowest one's plan.

    Each region's pipeline starts as soon as its own plan is known. Until then the region
    counts as a possible uploader and importer of every image it needs: relays and copies
    waiting for sources keep waiting, and stop only once no region can still supply one.
    """

    def __init__(
        self,
        run: Run,
        todo: Mapping[str, Sequence[PreparedImage]],
        *,
        cached: Mapping[str, str] | None = None,
        on_planned: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self._run = run
        self.cached = dict(cached or {})  # strategies detected by earlier runs
        self.unreachable: ConfigurationError | None = None
        self._on_planned = on_planned  # called once, with the strategies worth caching
        self._todo = {region: list(images) for region, images in todo.items() if images}
        self._unplanned = set(self._todo)
        self.strategies: dict[str, Strategy] = {}
        self._plans: dict[str, RegionPlan] = {}
        self._certain: dict[str, str] = {}  # what is worth remembering for the next run
        for image in run.images:
            needing = [region for region, images in self._todo.items() if image in images]
            run.uploads.expect(image.name, len(needing))
            run.importers.update((region, image.name) for region in needing)

    @property
    def regions(self) -> list[str]:
        """The regions that need a plan: those with images still to publish."""
        return list(self._todo)

    async def settle(self, region: str, plan: RegionPlan | None) -> None:
        """``region`` is planned (``None``: planning failed); waiters learn what it will do.

        Once every region is planned, :attr:`unreachable` says if some image can never get
        anywhere (nobody uploads it and no region holds it): the run must stop.
        """
        self._unplanned.discard(region)
        strategy = plan.strategy if plan else None
        if plan is not None:
            self._plans[region] = plan
            for name, info in plan.published.items():
                if not info.is_public:  # a community image is no copy source
                    await self._run.pool.add_source(name, region, info.image_id)
            self.strategies[region] = plan.strategy
            if plan.certain:
                self._certain[region] = plan.strategy
        if not self._unplanned:
            if self._on_planned is not None:
                self._on_planned(dict(self._certain))
            # Checked before this last plan is applied, so that no waiter has been told yet
            # that its sources are gone.
            self.unreachable = self._check_reachable()
            if self.unreachable is not None:
                return
        for image in self._todo[region]:
            creates = plan is not None and plan.needs(image.name)
            if strategy != "direct" or not creates:
                await self._run.uploads.finished(image.name, region, None)
            if strategy in (None, "copy") or not creates:
                await self._run.done_importing(region, image.name)

    def _check_reachable(self) -> ConfigurationError | None:
        for image in self._run.images:
            needing = [
                r
                for r in self.strategies
                if image in self._todo[r] and self._plans[r].needs(image.name)
            ]
            uploaders = [r for r in needing if self.strategies[r] == "direct"]
            if needing and not uploaders and not self._run.pool.sources(image.name):
                return ConfigurationError(
                    "no usable uncensored region: every image must first be uploaded to a "
                    "region with public OSS access (outside mainland China); select at least "
                    "one such region with -r"
                )
        return None


async def plan_region(
    cloud: Cloud, run: Run, region: str, cached: str | None, images: Sequence[PreparedImage]
) -> RegionPlan:
    """Look up existing images first; then, if anything must be created, detect the strategy
    (creating the temporary bucket). A region that already has every image creates nothing."""
    ecs = cloud.ecs(region)
    plan = RegionPlan(region, "existing")
    for image in images:
        found = await ecs.find_images(name=image.name)
        plan.existing[image.name] = [i for i in found if i.name == image.name]
        _classify(run, plan, image)
    if not any(plan.needs(image.name) for image in images):
        run.emit(region, "plan", "every image is already there")
        plan.certain = False  # says nothing about how the region could receive one
        return plan
    plan.strategy, plan.bucket, plan.certain = await detect_strategy(cloud, run, region, cached)
    run.emit(region, "plan", f"{plan.strategy} ({strategy_reason(plan.strategy)})")
    return plan


def _classify(run: Run, plan: RegionPlan, image: PreparedImage) -> None:
    """Already published (same content), taken by other content, or still to create."""
    if _in_flight(run, plan.region, image.name):
        return  # an earlier session of this run is creating it: re-attach, as before
    found = plan.existing[image.name]
    same = [i for i in found if i.tag(DIGEST_TAG) == image.sha256 and i.status == "Available"]
    if same:
        plan.published[image.name] = same[0]
        plan.existing[image.name] = [i for i in found if i is not same[0]]
        return
    if found and not run.options.overwrite:
        old = found[0]
        digest = old.tag(DIGEST_TAG) or "unknown (not made by aliasync)"
        plan.refused[image.name] = (
            f"an image named {image.name!r} already exists with other content: {old.image_id}"
            f" holds sha256 {digest}, this file is sha256 {image.sha256}; use --overwrite to"
            " replace it"
        )


def _in_flight(run: Run, region: str, image: str) -> bool:
    """Whether an earlier session of this run sent ImportImage or CopyImage for it."""
    return any(run.earlier(region, image, step).get("state") in ("started", "sent")
               for step in ("import", "copy"))  # fmt: skip


def strategy_reason(strategy: Strategy) -> str:
    return {
        "existing": "every image is already there",
        "direct": "public OSS access works",
        "relay": "public OSS access refused, Function Compute available",
        "copy": "no usable OSS bucket or no Function Compute",
    }[strategy]


async def detect_strategy(
    cloud: Cloud, run: Run, region: str, cached: str | None
) -> tuple[Way, str | None, bool]:
    """The strategy, the temporary bucket, and whether the strategy is worth remembering."""
    if cached == "copy":
        return "copy", None, True
    bucket = run.bucket_name(region)
    # Registered before the call: a bucket created by a call whose answer was lost is ours too.
    # One an earlier session of this run left (found by the stale sweep) stays registered.
    left_before = region in run.buckets
    run.buckets[region] = bucket
    try:
        await _create_bucket(cloud, region, bucket)
    except (BucketsForbiddenError, TransientCloudError, PermanentCloudError) as exc:
        # Refused or unreachable: there is no bucket to clean up (a lost answer that did
        # create one leaves a prefixed bucket that the next run's stale cleanup removes).
        if not left_before:
            del run.buckets[region]
        run.emit(region, "plan", f"no temporary bucket: {_code(exc)}")
        return "copy", None, not isinstance(exc, TransientCloudError)
    # A cached relay skips the data-access probe (a relay works either way); every other
    # probe is one quick call, and is made: a region that changed since is detected afresh.
    if cached != "relay" and await cloud.oss.check_public_data_access(region, bucket):
        return "direct", bucket, True
    if await cloud.fc.probe(region):
        return "relay", bucket, True
    await cloud.oss.delete_bucket(region, bucket)  # empty: a control call, allowed publicly
    del run.buckets[region]
    return "copy", None, True


async def _create_bucket(cloud: Cloud, region: str, bucket: str) -> None:
    """Create the region's bucket with its expiry rule, giving up within seconds where no OSS
    endpoint answers.

    A region without OSS has no endpoint to connect to, and waiting out the full retry policy
    there (minutes) would delay its copies by as much. An endpoint that answers with errors
    is only having a bad moment: it gets the full policy.
    """
    try:
        await cloud.oss.create_bucket(
            region,
            bucket,
            policy=_PROBE.scaled(cloud.endpoints.time_scale),
            expire_days=TEMPORARY_DAYS,
        )
    except TransientCloudError as exc:
        if exc.code == "ConnectionError":
            raise
        await cloud.oss.create_bucket(region, bucket, expire_days=TEMPORARY_DAYS)


def _code(exc: CloudError) -> str:
    return exc.code
