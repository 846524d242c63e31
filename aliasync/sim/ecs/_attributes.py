"""Changes to existing images: deletion, attributes, sharing and publishing, snapshots.

The rules for community (public) images and shared ones come from the current ECS
documentation (docs/alibaba-api-facts.md, sections 7 and 11); where it names no error code,
the choice is marked "guess" there.
"""

from __future__ import annotations

from aliasync.sim._errors import SimError
from aliasync.sim.ecs._state import Image, check_description, check_family, check_image_name
from aliasync.sim.ecs._store import EcsStore

_NOT_SIGNED = 'The current account has not signed "Community Image Terms of Service".'


class AttributesMixin(EcsStore):
    """DeleteImage, ModifyImageAttribute, ModifyImageSharePermission and DeleteSnapshot."""

    def _being_copied_from(self, region: str, image: Image) -> bool:
        queue = self._queues.get(region)
        now = self.now()
        return queue is not None and any(
            j.source_id == image.id and j.end > now and j.cancelled_at is None for j in queue.jobs
        )

    def delete_image(self, region: str, image_id: str) -> None:
        """Delete an image. Its snapshots stay behind, as in the cloud."""
        image = self.image(region, image_id)
        now = self.now()
        if image.status(now) == "Creating":
            if image.copy_of is not None:
                raise SimError(
                    "OperationDenied.ImageCopying",
                    "The image is being copied. Please use the CancelCopyImage API.",
                    403,
                )
            raise SimError("ImageIsImporting", "The specified Image is importing.", 403)
        if self._being_copied_from(region, image):
            raise SimError(
                "OperationDenied.ImageCopying",
                "The image is being copied. Please use the CancelCopyImage API.",
                403,
            )
        if image.public:
            raise SimError(
                "ImageIsPublic",
                "You can not delete public image, please modify it to private.",
                403,
            )
        if image.shared:
            raise SimError("ImageUseShared", "The specified image has been shared to others.", 403)
        del self._images[region][image_id]
        self._pending.pop(image_id, None)

    def modify_image_attribute(
        self,
        region: str,
        image_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        family: str | None = None,
        boot_mode: str | None = None,
        status: str | None = None,
        nvme: str | None = None,
        license_type: str | None = None,
    ) -> None:
        """Change what was given; validation happens before any change."""
        image = self.image(region, image_id)
        if name is not None:
            check_image_name(name)
            if any(i.name == name and i is not image for i in self._images[region].values()):
                raise SimError(
                    "InvalidImageName.Duplicated", "The specified Image name has already bean used."
                )
        if description is not None:
            check_description(description)
        if family is not None:
            check_family(family)
        if boot_mode is not None and boot_mode != "UEFI" and image.architecture == "arm64":
            raise SimError(
                "InvalidParameter", "Images of the arm64 architecture support UEFI only."
            )
        if status is not None and image.status(self.now()) not in ("Available", "Deprecated"):
            raise SimError(
                "IncorrectImageStatus",
                "The current status of the image does not support this operation.",
            )
        if status == "Deprecated" and (image.shared or image.public):
            # "If you have shared the custom image, you must unshare it before you can set it
            # to the deprecated state" ([SDK]); the code is a guess, and so is counting a
            # community image (shared with everyone) as shared.
            raise SimError("ImageUseShared", "The specified image has been shared to others.", 403)
        for attr, value in (
            ("name", name),
            ("description", description),
            ("family", family),
            ("boot_mode", boot_mode),
            ("nvme", nvme),
            ("license_type", license_type),
        ):
            if value is not None:
                setattr(image, attr, value)
        if status is not None:
            image.deprecated = status == "Deprecated"

    def modify_image_share_permission(
        self,
        region: str,
        image_id: str,
        is_public: bool | None = None,
        add: list[str] | tuple[str, ...] = (),
        remove: list[str] | tuple[str, ...] = (),
    ) -> None:
        """Share with or unshare from accounts; publish or unpublish (never both at once)."""
        image = self.image(region, image_id)
        now = self.now()
        for account in [*add, *remove]:
            if not account.isdigit():
                raise SimError(
                    "InvalidAccount.NotFound",
                    'The specified parameter "AddAccount.n" or "RemoveAccount.n" does not exist.',
                    404,
                )
            if account == self.ctx.account_id:
                raise SimError(
                    "InvalidAccount.Forbbiden", "The specified Account does not yourself.", 404
                )
        if is_public is not None and (add or remove):
            raise SimError(
                "InvalidParameter.IsPublic",
                "The specified parameter IsPublic is conflicted with other parameters.",
                403,
            )
        if add or is_public:
            status = image.status(now)
            if status == "Deprecated":
                raise SimError(
                    "OperationDenied.InvalidImageStatus",
                    "The specified image cannot be shared when it is deprecated.",
                    403,
                )
            if status != "Available":
                raise SimError("IncorrectImageStatus", "The image not available.")
        if add and image.public:
            raise SimError("Image.Public", "The specified image is public image.", 403)
        if is_public is True:
            self._check_publishable(image)
        if is_public is False and not image.public:
            raise SimError("Image.NotPublic", "The specified image is not public image.", 403)
        shared = {a: t for a, t in image.shared.items() if a not in remove}
        for account in add:
            shared.setdefault(account, now)
        if len(shared) > self.share_quota:
            raise SimError(
                "QuotaExceed.ShareImageUser", "The shared Image user Quota exceeds.", 403
            )
        image.shared = shared
        if is_public is not None:
            image.public = is_public

    def _check_publishable(self, image: Image) -> None:
        if image.public:
            raise SimError("Image.Public", "The specified image is public image.", 403)
        if not self.ctx.community_terms:
            raise SimError("PublicImageAgreement.NotSigned", _NOT_SIGNED, 403)
        if image.shared:
            # "Community images cannot be shared": a shared image is not published (guess:
            # the documented code for IsPublic conflicting with other parameters).
            raise SimError(
                "InvalidParameter.IsPublic",
                "The specified parameter IsPublic is conflicted with other parameters.",
                403,
            )

    # --- DeleteSnapshot -------------------------------------------------------------------

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot in any region, unless an existing image was created from it."""
        self._settle()
        for snaps in self._snapshots.values():
            snap = snaps.get(snapshot_id)
            if snap is None:
                continue
            if self.snapshot_in_use(snap):
                raise SimError(
                    "SnapshotCreatedImage",
                    "The snapshot has been used to create user defined image(s).",
                    403,
                )
            del snaps[snapshot_id]
            return
        raise SimError(
            "InvalidSnapshotId.NotFound", "The specified SnapshotId does not exist.", 404
        )
