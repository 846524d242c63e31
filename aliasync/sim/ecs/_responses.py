"""One method per ECS action: read the parameters, call the model, shape the JSON answer.

Method names are the actions in snake_case (``CopyImage`` -> ``copy_image``). Each returns the
answer without ``RequestId``, which the service adds.
"""

from __future__ import annotations

import json
from typing import Any

from aliasync.sim._errors import SimError
from aliasync.sim.ecs._models import DiskSpec, EcsModel, ImportSpec
from aliasync.sim.ecs._params import Params, decode_token, encode_token, invalid, missing
from aliasync.sim.ecs._state import IMAGE_STATUSES, TASK_STATUSES, iso, parse_iso
from aliasync.sim.ecs._views import image_json, snapshot_json, task_json

Answer = dict[str, Any]

FORMATS = ("RAW", "VHD", "QCOW2", "VMDK")
BOOT_MODES = ("BIOS", "UEFI", "UEFI-Preferred")  # ModifyImageAttribute
IMPORT_BOOT_MODES = ("BIOS", "UEFI")  # ImportImage: UEFI-Preferred is set afterwards
NVME = ("supported", "unsupported")
SNAPSHOT_STATUSES = ("progressing", "accomplished", "failed", "all")
LIST_TAGS_PAGE = 50


def _page(p: Params) -> tuple[int, int]:
    return p.number("PageNumber", 1, 1, 2**31 - 1), p.number("PageSize", 10, 1, 100)


def _dry_run(p: Params) -> None:
    if p.flag("DryRun"):
        raise SimError(
            "DryRunOperation", "Request validation has been passed with DryRun flag set."
        )


class EcsResponses:
    """The ECS actions the emulator serves."""

    def __init__(self, model: EcsModel) -> None:
        self.model = model
        self.ctx = model.ctx

    def _region(self, p: Params, name: str = "RegionId") -> str:
        region = p.required(name)
        if region not in self.ctx.regions:
            raise SimError(
                "InvalidRegionId.NotFound", "The specified RegionId does not exist.", 404
            )
        return region

    # --- regions and tasks ------------------------------------------------------------------

    def describe_regions(self, p: Params) -> Answer:
        regions = [
            {
                "RegionId": r.id,
                "RegionEndpoint": f"ecs.{r.id}.aliyuncs.com",
                "LocalName": r.local_name or r.id,
                "Status": "available",
            }
            for r in self.ctx.regions
        ]
        return {"Regions": {"Region": regions}}

    def describe_tasks(self, p: Params) -> Answer:
        region = self._region(p)
        ids = [t for t in p.text("TaskIds").split(",") if t]
        if len(ids) > 100:
            raise invalid("TaskIds", "At most 100 task IDs are allowed.")
        action, status = p.opt("TaskAction"), p.opt("TaskStatus")
        start, end = (p.opt("StartTime"), p.opt("EndTime"))
        since = parse_iso(start) if start else None
        until = parse_iso(end) if end else None
        if (start and since is None) or (end and until is None):
            raise invalid("StartTime" if start and since is None else "EndTime")
        number, size = _page(p)
        now = self.model.now()
        tasks = [
            t
            for t in self.model.tasks(region)
            if (not ids or t.id in ids)
            and (action is None or t.action == action)
            and (status not in TASK_STATUSES or t.status(now) == status)
            and (since is None or t.created_at >= since)
            and (until is None or t.created_at <= until)
        ]
        tasks.sort(key=lambda t: (-t.created_at, t.id))
        chunk = tasks[(number - 1) * size : number * size]
        return {
            "RegionId": region,
            "TotalCount": len(tasks),
            "PageNumber": number,
            "PageSize": size,
            "TaskSet": {"Task": [task_json(t, now) for t in chunk]},
        }

    # --- images -----------------------------------------------------------------------------

    def import_image(self, p: Params) -> Answer:
        region = self._region(p)
        mappings = p.structs("DiskDeviceMapping")
        if not mappings:
            raise SimError(
                "MissingParameter.DiskDeviceMapping",
                "The specified parameter DiskDeviceMapping is not supplied.",
                403,
            )
        disks = []
        for n, fields in mappings.items():
            if not fields.get("OSSBucket"):
                raise missing(f"DiskDeviceMapping.{n}.OSSBucket")
            if not fields.get("OSSObject"):
                raise missing(f"DiskDeviceMapping.{n}.OSSObject")
            fmt = fields.get("Format", "")
            if fmt and fmt.upper() not in FORMATS:
                raise SimError(
                    "InvalidImageFormat.Malformed", "The specified Image Format is wrongly formed."
                )
            size_text = fields.get("DiskImageSize") or fields.get("DiskImSize")
            size = None
            if size_text:
                digits = size_text.isascii() and size_text.isdigit() and len(size_text) <= 9
                if not digits or not 1 <= int(size_text) <= 2048:
                    raise SimError(
                        "InvalidImageSize",
                        f"The specified DiskDeviceMapping.{n}.DiskImageSize is not valid.",
                    )
                size = int(size_text)
            disks.append(DiskSpec(fields["OSSBucket"], fields["OSSObject"], fmt.upper(), size))
        arch = p.text("Architecture", "x86_64")
        if arch not in ("i386", "x86_64", "arm64"):
            raise SimError(
                "InvalidArchitecture.Malformed", "The specified Architecture is wrongly formed."
            )
        os_type = p.text("OSType", "linux").lower()
        if os_type not in ("linux", "windows"):
            raise SimError("InvalidOSType.Malformed", "The specified OSType is wrongly formed.")
        boot = p.choice("BootMode", IMPORT_BOOT_MODES, "UEFI" if arch == "arm64" else "BIOS")
        if arch == "arm64" and boot == "BIOS":
            raise invalid("BootMode", "Images of the arm64 architecture support UEFI only.")
        license_type = p.text("LicenseType", "Auto")
        if license_type not in ("Auto", "Aliyun", "BYOL"):
            raise SimError(
                "InvalidLicenseType.NotSupported", "The specified LicenseType is not supported"
            )
        spec = ImportSpec(
            disks=tuple(disks),
            name=p.text("ImageName"),
            description=p.text("Description"),
            architecture=arch,
            os_type=os_type,
            platform=p.text("Platform", "Others Linux"),
            boot_mode=boot,
            license_type=license_type,
            role_name=p.text("RoleName"),
            nvme=p.choice("Features.NvmeSupport", NVME, "unsupported"),
            imds=p.choice("Features.ImdsSupport", ("v1", "v2"), ""),
            tags=tuple(p.tags()),
        )
        _dry_run(p)
        return self.model.import_image(region, spec, p.text("ClientToken"))

    def describe_images(self, p: Params) -> Answer:
        region = self._region(p)
        statuses = self._image_statuses(p.text("Status", "Available"))
        alias = p.opt("ImageOwnerAlias")
        if alias is not None and alias not in ("system", "self", "others", "marketplace"):
            raise SimError(
                "InvalidImageOwnerAlias.ValueNotSupported",
                "The specified ImageOwnerAlias value is not supported.",
            )
        ids = {i for i in p.text("ImageId").split(",") if i}
        name, family = p.opt("ImageName"), p.opt("ImageFamily")
        snapshot_id, arch, os_type = p.opt("SnapshotId"), p.opt("Architecture"), p.opt("OSType")
        public, tag_filter = p.flag("IsPublic"), p.tag_filter()
        number, size = _page(p)
        _dry_run(p)
        now = self.model.now()
        images = [
            i
            for i in self.model.images(region)
            if alias in (None, "self")
            and i.status(now) in statuses
            and (not ids or i.id in ids)
            and (name is None or name in i.name)
            and (family is None or i.family == family)
            and (snapshot_id is None or any(d.snapshot_id == snapshot_id for d in i.disks))
            and (arch is None or i.architecture == arch)
            and (os_type is None or i.os_type == os_type.lower())
            and (public is None or i.public == public)
            and all(k in i.tags and v in (None, i.tags[k]) for k, v in tag_filter)
        ]
        images.sort(key=lambda i: (-i.created_at, i.id))
        chunk = images[(number - 1) * size : number * size]
        return {
            "RegionId": region,
            "TotalCount": len(images),
            "PageNumber": number,
            "PageSize": size,
            "Images": {"Image": [image_json(self.model, i, now) for i in chunk]},
        }

    @staticmethod
    def _image_statuses(value: str) -> set[str]:
        wanted = [s.strip() for s in value.split(",") if s.strip()]
        if wanted == ["ALL"] or wanted == ["All"]:
            return set(IMAGE_STATUSES)
        if not wanted or any(s not in IMAGE_STATUSES for s in wanted):
            raise invalid("Status")
        return set(wanted)

    def copy_image(self, p: Params) -> Answer:
        region = self._region(p)
        image_id = p.required("ImageId")
        dest = p.text("DestinationRegionId", region)
        if dest not in self.ctx.regions:
            raise SimError("DestinationRegion.NotFound", "The destination region not found")
        tags = p.tags()
        if len({k for k, _ in tags}) != len(tags):
            raise SimError("Duplicate.TagKey", "The Tag.N.Key contains duplicate key.")
        _dry_run(p)
        return self.model.copy_image(
            region,
            image_id,
            dest,
            name=p.opt("DestinationImageName"),
            description=p.opt("DestinationDescription"),
            tags=dict(tags),
            token=p.text("ClientToken"),
        )

    def cancel_copy_image(self, p: Params) -> Answer:
        region = self._region(p)
        self.model.cancel_copy_image(region, p.required("ImageId"))
        return {}

    def delete_image(self, p: Params) -> Answer:
        region = self._region(p)
        image_id = p.required("ImageId")
        p.flag("Force")
        _dry_run(p)
        self.model.delete_image(region, image_id)
        return {}

    def modify_image_attribute(self, p: Params) -> Answer:
        region = self._region(p)
        image_id = p.required("ImageId")
        status = p.choice("Status", ("Deprecated", "Available")) or None
        boot = p.choice("BootMode", BOOT_MODES) or None
        nvme = p.choice("Features.NvmeSupport", NVME) or None
        license_type = p.choice("LicenseType", ("Auto", "Aliyun", "BYOL")) or None
        _dry_run(p)
        self.model.modify_image_attribute(
            region,
            image_id,
            name=p.opt("ImageName"),
            description=p.opt("Description"),
            family=p.opt("ImageFamily"),
            boot_mode=boot,
            status=status,
            nvme=nvme,
            license_type=license_type,
        )
        return {}

    def modify_image_share_permission(self, p: Params) -> Answer:
        region = self._region(p)
        image_id = p.required("ImageId")
        is_public = p.flag("IsPublic")
        # At most 10 of each per call; the cloud ignores the rest.
        add, remove = p.indexed("AddAccount", 10), p.indexed("RemoveAccount", 10)
        _dry_run(p)
        self.model.modify_image_share_permission(region, image_id, is_public, add, remove)
        return {}

    def describe_image_share_permission(self, p: Params) -> Answer:
        region = self._region(p)
        image = self.model.image(region, p.required("ImageId"))
        number, size = _page(p)
        accounts = sorted(image.shared.items(), key=lambda kv: (kv[1], kv[0]))
        chunk = accounts[(number - 1) * size : number * size]
        return {
            "ImageId": image.id,
            "RegionId": region,
            "TotalCount": len(accounts),
            "PageNumber": number,
            "PageSize": size,
            "Accounts": {"Account": [{"AliyunId": a, "SharedTime": iso(t)} for a, t in chunk]},
            "ShareGroups": {"ShareGroup": [{"Group": "all"}] if image.public else []},
        }

    # --- tags and snapshots ---------------------------------------------------------------

    def tag_resources(self, p: Params) -> Answer:
        region = self._region(p)
        resource_type = p.required("ResourceType")
        ids = p.indexed("ResourceId")
        if not ids:
            raise missing("ResourceId.1")
        tags = p.tags()
        if not tags:
            raise missing("Tag.1.Key")
        self.model.tag_resources(region, resource_type, ids, tags)
        return {}

    def untag_resources(self, p: Params) -> Answer:
        region = self._region(p)
        resource_type = p.required("ResourceType")
        ids = p.indexed("ResourceId")
        if not ids:
            raise missing("ResourceId.1")
        keys = p.indexed("TagKey")
        if not keys and not p.flag("All"):
            raise missing("TagKey.1")  # guess: neither keys nor All is refused
        self.model.untag_resources(region, resource_type, ids, keys or None)
        return {}

    def list_tag_resources(self, p: Params) -> Answer:
        region = self._region(p)
        resource_type = p.required("ResourceType")
        token = p.opt("NextToken")
        offset = decode_token(token) if token else 0
        rows = self.model.tag_rows(region, resource_type, p.indexed("ResourceId"), p.tag_filter())
        chunk = rows[offset : offset + LIST_TAGS_PAGE]
        more = offset + LIST_TAGS_PAGE < len(rows)
        return {
            "NextToken": encode_token(offset + LIST_TAGS_PAGE) if more else "",
            "TagResources": {"TagResource": chunk},
        }

    def describe_snapshots(self, p: Params) -> Answer:
        region = self._region(p)
        wanted: set[str] = set()
        if p.opt("SnapshotIds"):
            try:
                parsed = json.loads(p.required("SnapshotIds"))
            except ValueError:
                raise invalid("SnapshotIds") from None
            if not isinstance(parsed, list) or not all(isinstance(s, str) for s in parsed):
                raise invalid("SnapshotIds")
            if len(parsed) > 100:
                raise invalid("SnapshotIds", "At most 100 snapshot IDs are allowed.")
            wanted = set(parsed)
        status = p.choice("Status", SNAPSHOT_STATUSES, "all")
        usage = p.opt("Usage")
        tag_filter = p.tag_filter()
        token_mode = p.opt("NextToken") is not None or p.opt("MaxResults") is not None
        _dry_run(p)
        snaps = [
            s
            for s in self.model.snapshots(region)
            if (not wanted or s.id in wanted)
            and status in ("all", "accomplished")
            and (usage is None or usage == ("image" if self.model.snapshot_in_use(s) else "none"))
            and all(k in s.tags and v in (None, s.tags[k]) for k, v in tag_filter)
        ]
        snaps.sort(key=lambda s: (-s.created_at, s.id))
        answer: Answer = {"TotalCount": len(snaps)}
        if token_mode:
            token = p.opt("NextToken")
            offset = decode_token(token) if token else 0
            size = p.number("MaxResults", 10, 1, 100)
            chunk = snaps[offset : offset + size]
            more = offset + size < len(snaps)
            answer["NextToken"] = encode_token(offset + size) if more else ""
        else:
            number, size = _page(p)
            chunk = snaps[(number - 1) * size : number * size]
            answer.update(PageNumber=number, PageSize=size)
        answer["Snapshots"] = {"Snapshot": [snapshot_json(self.model, s) for s in chunk]}
        return answer

    def delete_snapshot(self, p: Params) -> Answer:
        snapshot_id = p.required("SnapshotId")
        p.flag("Force")
        self.model.delete_snapshot(snapshot_id)
        return {}
