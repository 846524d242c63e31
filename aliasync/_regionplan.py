"""How to get images into a region, detected by the region's behaviour, not from a list.

- ``direct``: a new bucket can be created and its data read through the public endpoint;
- ``relay``: a bucket can be created but public data access is refused (mainland China), and
  Function Compute answers, so a temporary function can fill it through the internal endpoint;
- ``copy``: anything else (no new buckets, no OSS, no FC): CopyImage from another region.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aliasync._ecs import ImageInfo
from aliasync._exceptions import CloudError, PermanentCloudError, TransientCloudError
from aliasync._oss import BucketsForbiddenError
from aliasync._report import Strategy

if TYPE_CHECKING:
    from aliasync._cloud import Cloud
    from aliasync._run import Run


@dataclass
class RegionPlan:
    """What one region needs and how it will get it."""

    region: str
    strategy: Strategy
    bucket: str | None = None  # temporary bucket (direct and relay)
    existing: dict[str, list[ImageInfo]] = field(default_factory=dict)  # by image name


async def plan_region(cloud: Cloud, run: Run, region: str, cached: str | None) -> RegionPlan:
    """Look up existing images and detect the strategy, creating the temporary bucket."""
    ecs = cloud.ecs(region)
    existing = {}
    for image in run.images:
        found = await ecs.find_images(name=image.name)
        existing[image.name] = [i for i in found if i.name == image.name]
    strategy, bucket = await _detect(cloud, run, region, cached)
    run.emit(region, "plan", f"{strategy} ({_why(strategy)})")
    return RegionPlan(region, strategy, bucket, existing)


def _why(strategy: Strategy) -> str:
    return {
        "direct": "public OSS access works",
        "relay": "public OSS access refused, Function Compute available",
        "copy": "no usable OSS bucket or no Function Compute",
    }[strategy]


async def _detect(
    cloud: Cloud, run: Run, region: str, cached: str | None
) -> tuple[Strategy, str | None]:
    if cached == "copy":
        return "copy", None
    bucket = run.bucket_name(region)
    # Registered before the call: a bucket created by a call whose answer was lost is ours too.
    run.buckets[region] = bucket
    try:
        await cloud.oss.create_bucket(region, bucket)
    except (BucketsForbiddenError, TransientCloudError, PermanentCloudError) as exc:
        # Refused or unreachable: there is no bucket to clean up (a lost answer that did
        # create one leaves a prefixed bucket that the next run's stale cleanup removes).
        del run.buckets[region]
        run.emit(region, "plan", f"no temporary bucket: {_code(exc)}")
        return "copy", None
    if cached in ("direct", "relay"):
        return cached, bucket  # type: ignore[return-value]
    if await cloud.oss.check_public_data_access(region, bucket):
        return "direct", bucket
    if await cloud.fc.probe(region):
        return "relay", bucket
    await cloud.oss.delete_bucket(region, bucket, internal=True)
    del run.buckets[region]
    return "copy", None


def _code(exc: CloudError) -> str:
    return exc.code
