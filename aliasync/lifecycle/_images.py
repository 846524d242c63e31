"""The image lifecycle across regions: list, delete, prune, publish, deprecate.

Every coroutine works on all the given regions concurrently, through the same ECS client (and
so the same retry policy and error boundary) as the importer, and returns data: a region that
fails is reported in :attr:`Outcome.errors`, the others are done. Bad input (an unknown region,
an image that exists nowhere, ``retain=0`` without ``everything``) raises
:class:`~aliasync._exceptions.UsageError` before anything is changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import anyio

from aliasync._exceptions import AliasyncError, CloudError, UsageError
from aliasync.cloud._cloud import Cloud
from aliasync.cloud._ecs import EcsApi, ImageInfo
from aliasync.cloud._retire import RetireError, retire_images

__all__ = [
    "REPLACEMENT_TAG",
    "Action",
    "Listing",
    "Outcome",
    "delete_images",
    "deprecate_images",
    "list_images",
    "prune_images",
    "select_regions",
    "share_images",
]

REPLACEMENT_TAG = "aliasync:replacement"
# The per-firmware variants the importer appends to a family (see aliasync.disk._inspect).
_VARIANTS = (
    "", "-uefi-x86-64", "-uefi-arm64", "-uefi-multi", "-hybrid-x86-64", "-hybrid-multi",
)  # fmt: skip

T = TypeVar("T")


@dataclass(frozen=True)
class Action:
    """One thing done (or, in a dry run, to be done) to one image in one region."""

    region: str
    image_id: str
    name: str
    action: str  # "deleted", "would delete", "kept", "published", "deprecated", ...
    detail: str = ""


@dataclass
class Outcome:
    """What a mutating command did, and the regions where it failed."""

    actions: list[Action] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # region -> message

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "error" if self.errors else "success",
            "actions": [asdict(a) for a in sorted(self.actions, key=_action_key)],
            "errors": dict(sorted(self.errors.items())),
        }


@dataclass
class Listing:
    """Images per region (and regions that could not be listed)."""

    images: list[tuple[str, ImageInfo]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": [
                {"region": region, **asdict(info)}
                for region, info in sorted(self.images, key=_listed_key)
            ],
            "errors": dict(sorted(self.errors.items())),
        }


def _action_key(action: Action) -> tuple[str, str]:
    return action.region, action.image_id


def _listed_key(item: tuple[str, ImageInfo]) -> tuple[str, str, str]:
    region, info = item
    return region, info.name, info.image_id


async def select_regions(cloud: Cloud, wanted: Sequence[str] | None) -> list[str]:
    """The regions to work on: ``wanted`` (checked against DescribeRegions) or all of them."""
    return await cloud.select_regions(wanted)


async def _each_region(
    regions: Sequence[str], work: Callable[[str], Awaitable[T]]
) -> tuple[dict[str, T], dict[str, str]]:
    """Run ``work`` for every region at once; collect results and per-region errors."""
    results: dict[str, T] = {}
    errors: dict[str, str] = {}

    async def one(region: str) -> None:
        try:
            results[region] = await work(region)
        except AliasyncError as exc:
            errors[region] = str(exc)

    async with anyio.create_task_group() as tg:
        for region in regions:
            tg.start_soon(one, region)
    return results, errors


def _in_family(info: ImageInfo, family: str | None) -> bool:
    """``family`` itself or one of the importer's per-firmware variants of it."""
    return family is None or info.family in {family + v for v in _VARIANTS}


async def list_images(
    cloud: Cloud,
    regions: Sequence[str],
    *,
    family: str | None = None,
    name: str | None = None,
) -> Listing:
    """This account's images in every region, optionally of one family or name."""

    async def one(region: str) -> list[ImageInfo]:
        found = await cloud.ecs(region).find_images(name=name)
        return [i for i in found if _in_family(i, family)]

    results, errors = await _each_region(regions, one)
    listing = Listing(errors=errors)
    for region, images in results.items():
        listing.images.extend((region, info) for info in images)
    listing.images.sort(key=_listed_key)
    return listing


async def _find_named(
    cloud: Cloud, regions: Sequence[str], name: str | None, image_id: str | None
) -> tuple[dict[str, list[ImageInfo]], dict[str, str]]:
    """The images called ``name`` (or with ID ``image_id``) per region; UsageError if none."""
    if (name is None) == (image_id is None):
        raise UsageError("give either an image NAME or --image-id")

    async def one(region: str) -> list[ImageInfo]:
        return await cloud.ecs(region).find_images(name=name, image_id=image_id)

    results, errors = await _each_region(regions, one)
    found = {region: images for region, images in results.items() if images}
    if not found and not errors:
        what = f"named {name!r}" if name is not None else f"with ID {image_id!r}"
        raise UsageError(f"no image {what} in any of the {len(regions)} region(s) searched")
    return found, errors


async def _apply(
    found: dict[str, list[ImageInfo]],
    errors: dict[str, str],
    work: Callable[[EcsApi, list[ImageInfo]], Awaitable[list[Action]]],
    cloud: Cloud,
) -> Outcome:
    async def one(region: str) -> list[Action]:
        return await work(cloud.ecs(region), found[region])

    results, failed = await _each_region(sorted(found), one)
    return _collect(results, {**errors, **failed})


def _collect(results: dict[str, list[Action]], errors: dict[str, str]) -> Outcome:
    """Every region's actions in one outcome, in a stable order."""
    outcome = Outcome(errors=errors)
    for actions in results.values():
        outcome.actions.extend(actions)
    outcome.actions.sort(key=_action_key)
    return outcome


async def delete_images(
    cloud: Cloud,
    regions: Sequence[str],
    *,
    name: str | None = None,
    image_id: str | None = None,
) -> Outcome:
    """Unpublish and delete the image (with its snapshots) in every region that has it."""
    found, errors = await _find_named(cloud, regions, name, image_id)

    async def work(ecs: EcsApi, images: list[ImageInfo]) -> list[Action]:
        await retire_images(ecs, images)
        return [Action(ecs.region, i.image_id, i.name, "deleted") for i in images]

    return await _apply(found, errors, work, cloud)


async def prune_images(
    cloud: Cloud,
    regions: Sequence[str],
    *,
    family: str,
    retain: int,
    dry_run: bool = False,
    everything: bool = False,
) -> Outcome:
    """Keep the newest ``retain`` images per (family, architecture, public) in each region.

    ``family`` also matches the importer's per-firmware variants (``<family>-uefi-x86-64``...).
    ``retain=0`` deletes the whole family and so needs ``everything=True``.
    """
    if retain < 0:
        raise UsageError("--retain must be 0 or more")
    if retain == 0 and not everything:
        raise UsageError("--retain 0 deletes every image of the family: add --all to confirm")

    async def one(region: str) -> list[Action]:
        ecs = cloud.ecs(region)
        images = [i for i in await ecs.find_images() if _in_family(i, family)]
        groups: dict[tuple[str, str, bool], list[ImageInfo]] = {}
        for info in images:
            key = (info.family or "", info.architecture or "", info.is_public)
            groups.setdefault(key, []).append(info)
        doomed: list[ImageInfo] = []
        actions: list[Action] = []
        for members in groups.values():
            members.sort(key=lambda i: (i.creation_time or "", i.image_id), reverse=True)
            for info in members[:retain]:
                actions.append(Action(region, info.image_id, info.name, "kept"))
            doomed.extend(members[retain:])
        verb = "would delete" if dry_run else "deleted"
        if doomed and not dry_run:
            await retire_images(ecs, doomed)
        actions.extend(Action(region, i.image_id, i.name, verb) for i in doomed)
        return actions

    results, errors = await _each_region(regions, one)
    return _collect(results, errors)


async def share_images(
    cloud: Cloud,
    regions: Sequence[str],
    name: str,
    *,
    publish: bool,
    accounts: Sequence[str] = (),
) -> Outcome:
    """Publish (or unpublish) the image everywhere it exists.

    Without ``accounts`` the image is made public (or private); with them, it is shared with
    (or unshared from) those accounts only and its public flag is left alone.
    """
    found, errors = await _find_named(cloud, regions, name, None)

    async def work(ecs: EcsApi, images: list[ImageInfo]) -> list[Action]:
        for info in images:
            if accounts:
                await ecs.set_sharing(
                    info.image_id,
                    add_accounts=accounts if publish else (),
                    remove_accounts=() if publish else accounts,
                )
            else:
                await ecs.set_sharing(info.image_id, public=publish)
        if accounts:
            verb, detail = ("shared" if publish else "unshared"), ", ".join(accounts)
        else:
            verb, detail = ("published" if publish else "unpublished"), ""
        return [Action(ecs.region, i.image_id, i.name, verb, detail) for i in images]

    return await _apply(found, errors, work, cloud)


async def deprecate_images(
    cloud: Cloud,
    regions: Sequence[str],
    name: str,
    *,
    deprecate: bool = True,
    replacement: str | None = None,
) -> Outcome:
    """Mark the image Deprecated (tagged with its replacement), or Available again.

    Deprecating unshares the image from every account and unpublishes it first: ECS refuses
    to deprecate a shared image, and a deprecated one cannot be shared.

    Undeprecating removes the replacement tag (UntagResources).
    """
    if replacement is not None and not deprecate:
        raise UsageError("--replacement only goes with deprecate")
    found, errors = await _find_named(cloud, regions, name, None)

    async def work(ecs: EcsApi, images: list[ImageInfo]) -> list[Action]:
        for info in images:
            if deprecate:
                # ECS deprecates only an image shared with nobody: unshare (and unpublish) first.
                try:
                    await ecs.unshare(info.image_id, public=info.is_public)
                except CloudError as exc:
                    raise RetireError(
                        exc.code,
                        f"{info.image_id}: unsharing failed ({exc.message}); the image is left"
                        " shared as it was, not deprecated",
                        region=ecs.region,
                    ) from exc
            await ecs.set_status(info.image_id, "Deprecated" if deprecate else "Available")
            if not deprecate:
                await ecs.untag_image(info.image_id, REPLACEMENT_TAG)
            elif replacement is not None:
                await ecs.tag_image(info.image_id, REPLACEMENT_TAG, replacement)
        verb = "deprecated" if deprecate else "undeprecated"
        detail = f"replacement {replacement}" if replacement else ""
        return [Action(ecs.region, i.image_id, i.name, verb, detail) for i in images]

    return await _apply(found, errors, work, cloud)
