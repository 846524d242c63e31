"""Image attributes, sharing, tags and snapshots in the emulated ECS, via the official client."""

from __future__ import annotations

import json

import pytest
from alibabacloud_ecs20140526 import models as m

from aliasync.sim import Simulator
from tests.clients import ecs_client
from tests.sim.test_ecs import REGION, describe, fails, imported, region_images

pytestmark = pytest.mark.anyio


async def test_modify_image_attribute(sim: Simulator) -> None:
    """ModifyImageAttribute renames, describes, families, deprecates; bad values are refused."""
    sim.clock.pause()  # "taken" stays Creating, which cannot be deprecated
    client = ecs_client(sim, REGION)
    image_id = await imported(sim, client, REGION, "before")
    other = await imported(sim, client, REGION, "taken", wait=False)
    await client.modify_image_attribute_async(
        m.ModifyImageAttributeRequest(
            region_id=REGION,
            image_id=image_id,
            image_name="after",
            description="a new description",
            image_family="fam-1",
            boot_mode="UEFI",
            features=m.ModifyImageAttributeRequestFeatures(nvme_support="supported"),
        )
    )
    (image,) = await describe(client, REGION, image_id=image_id)
    assert (image.image_name, image.description, image.image_family) == (
        "after",
        "a new description",
        "fam-1",
    )
    assert (image.boot_mode, image.features.nvme_support) == ("UEFI", "supported")
    assert [i.image_id for i in await describe(client, REGION, image_family="fam-1")] == [image_id]
    cases = [
        ({"image_name": "taken"}, "InvalidImageName.Duplicated"),
        ({"image_name": "-bad"}, "InvalidImageName.Malformed"),
        ({"image_family": "aliyun-fam"}, "InvalidImageFamily.Malformed"),
        ({"description": "x"}, "InvalidDescription.Malformed"),
    ]
    for change, code in cases:
        request = m.ModifyImageAttributeRequest(region_id=REGION, image_id=image_id, **change)
        error = await fails(client.modify_image_attribute_async(request))
        assert (error.code, error.status_code) == (code, 400), change
    error = await fails(
        client.modify_image_attribute_async(
            m.ModifyImageAttributeRequest(region_id=REGION, image_id=other, status="Deprecated")
        )
    )
    assert error.code == "IncorrectImageStatus"
    await client.modify_image_attribute_async(
        m.ModifyImageAttributeRequest(region_id=REGION, image_id=image_id, status="Deprecated")
    )
    assert await describe(client, REGION, status=None) == []
    (image,) = await describe(client, REGION, status="Deprecated")
    assert image.image_id == image_id
    error = await fails(
        client.modify_image_attribute_async(
            m.ModifyImageAttributeRequest(region_id=REGION, image_id="m-missing", image_name="abc")
        )
    )
    assert (error.code, error.status_code) == ("InvalidImageId.NotFound", 404)


async def test_tags_and_list_tag_resources_paging(sim: Simulator) -> None:
    """TagResources tags images and snapshots; ListTagResources pages with NextToken."""
    client = ecs_client(sim, REGION)
    ids = [await imported(sim, client, REGION, f"tagged-{n}", wait=False) for n in range(3)]
    tags = [m.TagResourcesRequestTag(key=f"k{n:02d}", value=str(n)) for n in range(20)]
    await client.tag_resources_async(
        m.TagResourcesRequest(region_id=REGION, resource_type="image", resource_id=ids, tag=tags)
    )
    rows, token, pages = [], None, 0
    while True:
        page = await client.list_tag_resources_async(
            m.ListTagResourcesRequest(region_id=REGION, resource_type="image", next_token=token)
        )
        rows += page.body.tag_resources.tag_resource
        pages += 1
        token = page.body.next_token
        if not token:
            break
    assert (len(rows), pages) == (60, 2)
    assert {(r.resource_id, r.resource_type) for r in rows} == {(i, "image") for i in ids}
    filtered = await client.list_tag_resources_async(
        m.ListTagResourcesRequest(
            region_id=REGION,
            resource_type="image",
            resource_id=[ids[1]],
            tag=[m.ListTagResourcesRequestTag(key="k05", value="5")],
        )
    )
    assert {r.resource_id for r in filtered.body.tag_resources.tag_resource} == {ids[1]}
    # The snapshot exists once the import has finished.
    sim.clock.advance(200)
    (snap,) = region_images(sim, REGION)[ids[0]]["snapshot_ids"]
    await client.tag_resources_async(
        m.TagResourcesRequest(
            region_id=REGION,
            resource_type="snapshot",
            resource_id=[snap],
            tag=[m.TagResourcesRequestTag(key="owner", value="aliasync")],
        )
    )
    snaps = await client.describe_snapshots_async(
        m.DescribeSnapshotsRequest(region_id=REGION, snapshot_ids=json.dumps([snap]))
    )
    (found,) = snaps.body.snapshots.snapshot
    assert [(t.tag_key, t.tag_value) for t in found.tags.tag] == [("owner", "aliasync")]
    cases = [
        (["m-missing"], tags[:1], "InvalidResourceId.NotFound", 404),
        ([ids[0]], [*tags, m.TagResourcesRequestTag(key="x", value="y")], "NumberExceed.Tags", 400),
        ([ids[0]], [tags[0], tags[0]], "Duplicate.TagKey", 400),
        (
            [ids[0]],
            [m.TagResourcesRequestTag(key="acs:x", value="1")],
            "InvalidTagKey.Malformed",
            400,
        ),
    ]
    for resource_ids, tag_list, code, status in cases:
        error = await fails(
            client.tag_resources_async(
                m.TagResourcesRequest(
                    region_id=REGION, resource_type="image", resource_id=resource_ids, tag=tag_list
                )
            )
        )
        assert (error.code, error.status_code) == (code, status)


async def test_untag_resources_removes_keys_or_all_and_refuses_bad_requests(sim: Simulator) -> None:
    """UntagResources removes the named keys (an absent one is no error), or every tag with
    All; unknown resources, duplicate or malformed keys and a request naming none are refused,
    changing nothing."""
    client = ecs_client(sim, REGION)
    ids = [await imported(sim, client, REGION, f"untag-{n}", wait=False) for n in range(2)]
    tags = [m.TagResourcesRequestTag(key=k, value="v") for k in ("a", "b", "c")]
    await client.tag_resources_async(
        m.TagResourcesRequest(region_id=REGION, resource_type="image", resource_id=ids, tag=tags)
    )

    def untag(**kw: object) -> object:
        request = m.UntagResourcesRequest(region_id=REGION, resource_type="image", **kw)
        return client.untag_resources_async(request)

    await untag(resource_id=ids, tag_key=["a", "missing"])
    assert [sorted(region_images(sim, REGION)[i]["tags"]) for i in ids] == [["b", "c"]] * 2
    cases = [
        ({"resource_id": [ids[0], "m-missing"], "tag_key": ["b"]},
         "InvalidResourceId.NotFound", 404),
        ({"resource_id": ids, "tag_key": ["b", "b"]}, "Duplicate.TagKey", 400),
        ({"resource_id": ids, "tag_key": ["acs:b"]}, "InvalidTagKey.Malformed", 400),
        ({"resource_id": ids, "tag_key": [f"k{n}" for n in range(21)]}, "NumberExceed.Tags", 400),
        ({"resource_id": ids}, "MissingParameter", 400),
        ({"tag_key": ["b"]}, "MissingParameter", 400),
    ]  # fmt: skip
    for request, code, status in cases:
        error = await fails(untag(**request))
        assert (error.code, error.status_code) == (code, status), request
    assert [sorted(region_images(sim, REGION)[i]["tags"]) for i in ids] == [["b", "c"]] * 2
    await untag(resource_id=ids[:1], all=True)
    assert [region_images(sim, REGION)[i]["tags"] for i in ids] == [{}, {"b": "v", "c": "v"}]


async def test_describe_snapshots_paging_and_delete_snapshot(sim: Simulator) -> None:
    """DescribeSnapshots pages by NextToken and by page; DeleteSnapshot refuses used ones."""
    client = ecs_client(sim, REGION)
    ids = [await imported(sim, client, REGION, f"snap-{n}", wait=False) for n in range(3)]
    sim.clock.advance(200)
    seen, token = [], None
    while True:
        page = await client.describe_snapshots_async(
            m.DescribeSnapshotsRequest(region_id=REGION, max_results=2, next_token=token)
        )
        seen += [s.snapshot_id for s in page.body.snapshots.snapshot]
        token = page.body.next_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 3
    paged = await client.describe_snapshots_async(
        m.DescribeSnapshotsRequest(region_id=REGION, page_number=2, page_size=2)
    )
    assert (paged.body.total_count, len(paged.body.snapshots.snapshot)) == (3, 1)
    used = region_images(sim, REGION)[ids[0]]["snapshot_ids"][0]
    error = await fails(client.delete_snapshot_async(m.DeleteSnapshotRequest(snapshot_id=used)))
    assert (error.code, error.status_code) == ("SnapshotCreatedImage", 403)
    error = await fails(
        client.delete_snapshot_async(m.DeleteSnapshotRequest(snapshot_id="s-missing"))
    )
    assert (error.code, error.status_code) == ("InvalidSnapshotId.NotFound", 404)
    bad = await fails(
        client.describe_snapshots_async(
            m.DescribeSnapshotsRequest(region_id=REGION, snapshot_ids="not json")
        )
    )
    assert (bad.code, bad.status_code) == ("InvalidParameter", 400)
