"""Tags on images and snapshots: TagResources, UntagResources and ListTagResources."""

from __future__ import annotations

from aliasync.sim._errors import SimError
from aliasync.sim.ecs._state import Image, Snapshot, check_tags
from aliasync.sim.ecs._store import EcsStore

# ResourceType values the SDK documents; only images and snapshots exist in the emulator.
RESOURCE_TYPES = frozenset(
    [
        "instance",
        "disk",
        "snapshot",
        "image",
        "securitygroup",
        "volume",
        "eni",
        "ddh",
        "ddhcluster",
        "keypair",
        "launchtemplate",
        "reservedinstance",
        "snapshotpolicy",
        "elasticityassurance",
        "capacityreservation",
        "command",
        "invocation",
        "activation",
        "managedinstance",
    ]
)
MAX_RESOURCES = 50
MAX_TAGS = 20


def _check_type(resource_type: str) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise SimError(
            "InvalidResourceType.NotFound", "The specified ResourceType is not found.", 404
        )


class TaggingMixin(EcsStore):
    """Tag bookkeeping (tags live on the resources themselves)."""

    def _tagged(self, region: str, resource_type: str) -> list[Image] | list[Snapshot]:
        if resource_type == "image":
            return self.images(region)
        if resource_type == "snapshot":
            return self.snapshots(region)
        return []

    def tag_resources(
        self, region: str, resource_type: str, ids: list[str], tags: list[tuple[str, str]]
    ) -> None:
        """Add or overwrite tags on up to 50 resources (all or nothing)."""
        _check_type(resource_type)
        if len(ids) > MAX_RESOURCES:
            raise SimError(
                "NumberExceed.ResourceIds", "The maximum number of ResourceIds is exceeded."
            )
        if len({k for k, _ in tags}) != len(tags):
            raise SimError("Duplicate.TagKey", "The Tag.N.Key contains duplicate key.")
        new = dict(tags)
        check_tags(new, MAX_TAGS)
        targets = self._resources(region, resource_type, ids)
        if any(len(resource.tags | new) > MAX_TAGS for resource in targets):
            raise SimError("InvalidTagCount", "The specified tags are beyond the permitted range.")
        for resource in targets:
            resource.tags.update(new)

    def _resources(self, region: str, resource_type: str, ids: list[str]) -> list[Image | Snapshot]:
        """The resources named, all of them or an error (nothing changes then)."""
        by_id = {r.id: r for r in self._tagged(region, resource_type)}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise SimError(
                "InvalidResourceId.NotFound",
                "The specified ResourceIds are not found in our records.",
                404,
            )
        return [by_id[i] for i in ids]

    def untag_resources(
        self, region: str, resource_type: str, ids: list[str], keys: list[str] | None
    ) -> None:
        """Remove the tags ``keys`` (all tags when None) from up to 50 resources (all or
        nothing). A key a resource does not carry is no error (guess: the docs are silent)."""
        _check_type(resource_type)
        if len(ids) > MAX_RESOURCES:
            raise SimError(
                "NumberExceed.ResourceIds",
                "The ResourceIds parameter's number is exceed , Valid : 50",
            )
        if keys is not None:
            if len(keys) > MAX_TAGS:
                raise SimError(
                    "NumberExceed.Tags", "The Tags parameter's number is exceed , Valid : 20"
                )
            if len(set(keys)) != len(keys):
                raise SimError("Duplicate.TagKey", "The Tag.N.Key contain duplicate key.")
            check_tags(dict.fromkeys(keys, ""), MAX_TAGS)
        targets = self._resources(region, resource_type, ids)
        for resource in targets:
            for key in list(resource.tags) if keys is None else keys:
                resource.tags.pop(key, None)

    def tag_rows(
        self,
        region: str,
        resource_type: str,
        ids: list[str],
        tag_filter: list[tuple[str, str | None]],
    ) -> list[dict[str, str]]:
        """One row per (resource, tag) for ListTagResources, in a stable order."""
        _check_type(resource_type)
        if len(ids) > MAX_RESOURCES:
            raise SimError(
                "NumberExceed.ResourceIds", "The maximum number of ResourceIds is exceeded."
            )
        if len(tag_filter) > MAX_TAGS:
            raise SimError("NumberExceed.Tags", "The maximum number of Tags is exceeded.")
        wanted = set(ids)
        rows: list[dict[str, str]] = []
        for resource in self._tagged(region, resource_type):
            if wanted and resource.id not in wanted:
                continue
            if any(
                key not in resource.tags or (value is not None and resource.tags[key] != value)
                for key, value in tag_filter
            ):
                continue
            rows.extend(
                {
                    "ResourceId": resource.id,
                    "ResourceType": resource_type,
                    "TagKey": k,
                    "TagValue": v,
                }
                for k, v in sorted(resource.tags.items())
            )
        return rows
