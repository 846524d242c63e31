"""What changes an existing ECS image: sharing and publishing, status, tags, its snapshots.

A mixin of :class:`~aliasync.cloud._ecs.EcsApi`. The rules it lives with: IsPublic is never
sent with account lists (403 InvalidParameter.IsPublic); a community (public) image cannot
be shared, and a shared one cannot be published; publishing twice is 403 Image.Public and
unpublishing a private image 403 Image.NotPublic, which here count as done, so that a retried
call whose first answer was lost succeeds.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any

from alibabacloud_ecs20140526 import models as m

from aliasync._exceptions import NotFoundError, PermanentCloudError

__all__ = ["ImageAttributes"]

_SHARE_CHUNK = 10  # ModifyImageSharePermission ignores accounts beyond the 10th
_TAG_CHUNK = 50  # TagResources takes at most 50 resource IDs
_PAGE = 100


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ImageAttributes:
    """Sharing, publishing, status, tags and snapshots of one region's images."""

    region: str
    _client: Any

    async def _call(self, action: str, fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        raise NotImplementedError  # EcsApi's

    async def set_sharing(
        self,
        image_id: str,
        *,
        public: bool | None = None,
        add_accounts: Sequence[str] = (),
        remove_accounts: Sequence[str] = (),
    ) -> None:
        """Share or unshare with accounts (ten per call), then publish or unpublish."""
        adds, removes = list(add_accounts), list(remove_accounts)
        rounds = math.ceil(max(len(adds), len(removes)) / _SHARE_CHUNK)
        for index in range(rounds):
            window = slice(index * _SHARE_CHUNK, (index + 1) * _SHARE_CHUNK)
            await self._share(image_id, add_account=adds[window] or None,
                              remove_account=removes[window] or None)  # fmt: skip
        if public is None:
            return
        try:
            await self._share(image_id, is_public=public)
        except PermanentCloudError as exc:
            if exc.code != ("Image.Public" if public else "Image.NotPublic"):
                raise

    async def _share(self, image_id: str, **changes: Any) -> None:
        request = m.ModifyImageSharePermissionRequest(
            region_id=self.region, image_id=image_id, **changes
        )
        await self._call(
            "ModifyImageSharePermission",
            partial(self._client.modify_image_share_permission_async, request),
        )

    async def shared_accounts(self, image_id: str) -> list[str]:
        """The accounts the image is shared with (all pages)."""
        accounts: list[str] = []
        page = 1
        while True:
            request = m.DescribeImageSharePermissionRequest(
                region_id=self.region, image_id=image_id, page_number=page, page_size=_PAGE
            )
            body = await self._call(
                "DescribeImageSharePermission",
                partial(self._client.describe_image_share_permission_async, request),
            )
            items = (body.get("Accounts") or {}).get("Account") or []
            accounts.extend(str(a["AliyunId"]) for a in items if a.get("AliyunId"))
            if len(items) < _PAGE or len(accounts) >= int(body.get("TotalCount") or 0):
                return accounts
            page += 1

    async def unshare(self, image_id: str, *, public: bool) -> None:
        """Unshare from every account and, if ``public``, unpublish: what deleting and
        deprecating need first."""
        await self.set_sharing(
            image_id,
            public=False if public else None,
            remove_accounts=await self.shared_accounts(image_id),
        )

    async def set_status(self, image_id: str, status: str) -> None:
        """Deprecate (``Deprecated``) or undeprecate (``Available``) an image."""
        request = m.ModifyImageAttributeRequest(
            region_id=self.region, image_id=image_id, status=status
        )
        await self._call(
            "ModifyImageAttribute", lambda: self._client.modify_image_attribute_async(request)
        )

    async def tag_image(self, image_id: str, key: str, value: str) -> None:
        """Add or overwrite one tag on an image."""
        await self._tag("image", [image_id], key, value)

    async def untag_image(self, image_id: str, key: str) -> None:
        """Remove one tag from an image (a tag it does not carry is no error)."""
        request = m.UntagResourcesRequest(
            region_id=self.region, resource_type="image", resource_id=[image_id], tag_key=[key]
        )
        await self._call("UntagResources", partial(self._client.untag_resources_async, request))

    # -- snapshots -------------------------------------------------------------------------------

    async def tag_snapshots(self, snapshot_ids: Sequence[str], key: str, value: str) -> None:
        """Tag snapshots (to find and delete them after their image is gone)."""
        await self._tag("snapshot", snapshot_ids, key, value)

    async def _tag(self, kind: str, ids: Sequence[str], key: str, value: str) -> None:
        for chunk in _chunks(list(ids), _TAG_CHUNK):
            request = m.TagResourcesRequest(
                region_id=self.region,
                resource_type=kind,
                resource_id=list(chunk),
                tag=[m.TagResourcesRequestTag(key=key, value=value)],
            )
            await self._call("TagResources", partial(self._client.tag_resources_async, request))

    async def snapshots_tagged(self, key: str, value: str) -> list[str]:
        """IDs of this region's snapshots tagged ``key=value`` (all pages)."""
        found: dict[str, None] = {}
        token: str | None = None
        while True:
            request = m.ListTagResourcesRequest(
                region_id=self.region,
                resource_type="snapshot",
                tag=[m.ListTagResourcesRequestTag(key=key, value=value)],
                next_token=token,
            )
            body = await self._call(
                "ListTagResources", partial(self._client.list_tag_resources_async, request)
            )
            for item in (body.get("TagResources") or {}).get("TagResource") or []:
                if item.get("TagKey", key) == key and item.get("TagValue", value) == value:
                    found[str(item["ResourceId"])] = None
            token = body.get("NextToken") or None
            if not token:
                return list(found)

    async def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot; already gone counts as deleted.

        A snapshot still used by an image raises PermanentCloudError (SnapshotCreatedImage).
        """
        request = m.DeleteSnapshotRequest(snapshot_id=snapshot_id)
        try:
            await self._call("DeleteSnapshot", lambda: self._client.delete_snapshot_async(request))
        except NotFoundError as exc:
            if exc.code != "InvalidSnapshotId.NotFound":
                raise
