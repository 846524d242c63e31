"""Sharing, publishing and their rules in the emulated ECS, through the official client.

Community (public) images cannot be shared or copied; a shared image cannot be published,
deprecated or deleted; publishing needs the account's community-image terms accepted.
Sources: docs/alibaba-api-facts.md, sections 7 and 11.
"""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client as EcsClient

from aliasync.sim import Simulator, profile
from tests.clients import ecs_client
from tests.sim.test_ecs import OTHER, REGION, describe, fails, imported, region_images

pytestmark = pytest.mark.anyio

ACCOUNTS = [str(1200000000000000 + n) for n in range(60)]


async def share(client: EcsClient, image_id: str, **kw: Any) -> Any:
    return await client.modify_image_share_permission_async(
        m.ModifyImageSharePermissionRequest(region_id=REGION, image_id=image_id, **kw)
    )


async def test_sharing_adds_and_removes_accounts_and_pages_them(sim: Simulator) -> None:
    """Accounts are shared ten per call at most (the rest ignored), listed page by page."""
    client = ecs_client(sim, REGION)
    image_id = await imported(sim, client, REGION, "shared")
    await share(client, image_id, add_account=ACCOUNTS[:12])
    body = (
        await client.describe_image_share_permission_async(
            m.DescribeImageSharePermissionRequest(region_id=REGION, image_id=image_id, page_size=5)
        )
    ).body
    assert body.total_count == 10  # only the first 10 AddAccount.N of a call count
    assert len(body.accounts.account) == 5 and body.accounts.account[0].shared_time
    assert region_images(sim, REGION)[image_id]["shared_accounts"] == sorted(ACCOUNTS[:10])
    await share(client, image_id, remove_account=ACCOUNTS[:9])
    assert region_images(sim, REGION)[image_id]["shared_accounts"] == [ACCOUNTS[9]]
    error = await fails(share(client, image_id, add_account=[sim.account_id]))
    assert (error.code, error.status_code) == ("InvalidAccount.Forbbiden", 404)


async def test_an_image_is_shared_with_fifty_accounts_at_most(sim: Simulator) -> None:
    """The 51st account is QuotaExceed.ShareImageUser, and nothing of that call is applied."""
    client = ecs_client(sim, REGION)
    image_id = await imported(sim, client, REGION, "popular")
    for start in range(0, 50, 10):
        await share(client, image_id, add_account=ACCOUNTS[start : start + 10])
    error = await fails(share(client, image_id, add_account=ACCOUNTS[50:52]))
    assert (error.code, error.status_code) == ("QuotaExceed.ShareImageUser", 403)
    assert len(region_images(sim, REGION)[image_id]["shared_accounts"]) == 50


async def test_a_community_image_is_neither_shared_nor_copied(sim: Simulator) -> None:
    """Public: group "all"; sharing it: Image.Public; copying: OperationDenied.CommunityImage."""
    client = ecs_client(sim, REGION)
    image_id = await imported(sim, client, REGION, "community")
    await share(client, image_id, is_public=True)
    body = (
        await client.describe_image_share_permission_async(
            m.DescribeImageSharePermissionRequest(region_id=REGION, image_id=image_id)
        )
    ).body
    assert [g.group for g in body.share_groups.share_group] == ["all"]
    (image,) = await describe(client, REGION, image_id=image_id)
    assert image.is_public is True
    error = await fails(share(client, image_id, add_account=ACCOUNTS[:1]))
    assert (error.code, error.status_code) == ("Image.Public", 403)
    error = await fails(
        client.copy_image_async(
            m.CopyImageRequest(region_id=REGION, image_id=image_id, destination_region_id=OTHER)
        )
    )
    assert (error.code, error.status_code) == ("OperationDenied.CommunityImage", 400)
    assert not region_images(sim, OTHER)


async def test_publishing_and_sharing_never_mix(sim: Simulator) -> None:
    """IsPublic with accounts in one call, or publishing a shared one: InvalidParameter.IsPublic."""
    client = ecs_client(sim, REGION)
    image_id = await imported(sim, client, REGION, "mixed")
    error = await fails(share(client, image_id, is_public=True, add_account=ACCOUNTS[:1]))
    assert (error.code, error.status_code) == ("InvalidParameter.IsPublic", 403)
    await share(client, image_id, add_account=ACCOUNTS[:1])
    error = await fails(share(client, image_id, is_public=True))
    assert (error.code, error.status_code) == ("InvalidParameter.IsPublic", 403)
    assert region_images(sim, REGION)[image_id]["public"] is False
    await share(client, image_id, remove_account=ACCOUNTS[:1])
    await share(client, image_id, is_public=True)
    assert region_images(sim, REGION)[image_id]["public"] is True


async def test_unpublishing_an_image_that_is_not_public_is_refused(sim: Simulator) -> None:
    """IsPublic=false on a private image is Image.NotPublic; publishing twice is Image.Public."""
    client = ecs_client(sim, REGION)
    image_id = await imported(sim, client, REGION, "private")
    error = await fails(share(client, image_id, is_public=False))
    assert (error.code, error.status_code) == ("Image.NotPublic", 403)
    await share(client, image_id, is_public=True)
    error = await fails(share(client, image_id, is_public=True))
    assert (error.code, error.status_code) == ("Image.Public", 403)


async def test_publishing_needs_the_community_image_terms() -> None:
    """Without the terms accepted: PublicImageAgreement.NotSigned; accepted later, it works."""
    async with Simulator(seed=0, profile="none", community_terms=False) as sim:
        client = ecs_client(sim, REGION)
        image_id = await imported(sim, client, REGION, "unsigned")
        error = await fails(share(client, image_id, is_public=True))
        assert (error.code, error.status_code) == ("PublicImageAgreement.NotSigned", 403)
        assert "Community Image Terms of Service" in error.message
        await share(client, image_id, add_account=ACCOUNTS[:1])  # sharing needs no terms
        await share(client, image_id, remove_account=ACCOUNTS[:1])
        sim.ctx.community_terms = True  # the account owner accepts them in the console
        await share(client, image_id, is_public=True)
        assert region_images(sim, REGION)[image_id]["public"] is True


async def test_shared_and_public_images_are_not_deleted(sim: Simulator) -> None:
    """DeleteImage: 403 ImageUseShared for a shared image, ImageIsPublic for a public one."""
    client = ecs_client(sim, REGION)
    shared = await imported(sim, client, REGION, "del-shared")
    public = await imported(sim, client, REGION, "del-public")
    await share(client, shared, add_account=ACCOUNTS[:1])
    await share(client, public, is_public=True)
    for image_id, code in ((shared, "ImageUseShared"), (public, "ImageIsPublic")):
        error = await fails(
            client.delete_image_async(m.DeleteImageRequest(region_id=REGION, image_id=image_id))
        )
        assert (error.code, error.status_code) == (code, 403)
    await share(client, shared, remove_account=ACCOUNTS[:1])
    await share(client, public, is_public=False)
    for image_id in (shared, public):
        await client.delete_image_async(m.DeleteImageRequest(region_id=REGION, image_id=image_id))
    assert not region_images(sim, REGION)


async def test_a_shared_image_is_not_deprecated_and_a_deprecated_one_not_shared(
    sim: Simulator,
) -> None:
    """Status=Deprecated needs the image unshared first; a deprecated image cannot be shared."""
    client = ecs_client(sim, REGION)
    image_id = await imported(sim, client, REGION, "old")
    await share(client, image_id, add_account=ACCOUNTS[:1])
    deprecate = m.ModifyImageAttributeRequest(
        region_id=REGION, image_id=image_id, status="Deprecated"
    )
    error = await fails(client.modify_image_attribute_async(deprecate))
    assert (error.code, error.status_code) == ("ImageUseShared", 403)
    await share(client, image_id, remove_account=ACCOUNTS[:1])
    await client.modify_image_attribute_async(deprecate)
    error = await fails(share(client, image_id, add_account=ACCOUNTS[:1]))
    assert (error.code, error.status_code) == ("OperationDenied.InvalidImageStatus", 403)


async def test_copies_fail_at_the_copy_failure_rate() -> None:
    """copy_failure_rate 1: the copy runs, then ends CreateFailed with no snapshot."""
    async with Simulator(seed=0, profile=profile("none").with_(copy_failure_rate=1.0)) as sim:
        sim.clock.pause()
        client = ecs_client(sim, REGION)
        source = await imported(sim, client, REGION, "fragile")
        copy_id = (
            await client.copy_image_async(
                m.CopyImageRequest(region_id=REGION, image_id=source, destination_region_id=OTHER)
            )
        ).body.image_id
        assert region_images(sim, OTHER)[copy_id]["status"] == "Creating"
        sim.clock.advance(2000)
        view = region_images(sim, OTHER)[copy_id]
        assert (view["status"], view["snapshot_ids"]) == ("CreateFailed", [])
        assert sim.faults_injected()["counts"] == {"copy_failed": 1}
