"""OSS state: buckets (global by name), objects and multipart uploads. No HTTP here.

Object bytes live in files under ``<data_dir>/oss/``; the model keeps their size and digests.
Bodies are staged by the caller (see ``_storage``) and handed over as :class:`Staged` files,
which the model adopts or deletes. Overwritten and deleted objects' files are unlinked at once
(a reader that already opened one keeps reading it, as POSIX allows).

Choices (documented deviations or guesses):

* CreateBucket of a bucket you already own in the same region answers 409
  ``BucketAlreadyOwnedByYou`` (Amazon S3 outside us-east-1); anywhere else the name is taken
  and the answer is 409 ``BucketAlreadyExists``.
* A LocationConstraint (``cn-hangzhou`` or ``oss-cn-hangzhou``) that names no known region is
  400 ``InvalidLocationConstraint``; a known region other than the endpoint's is 400
  ``IllegalLocationConstraintException`` (both Amazon S3 codes).
* A bucket used through another region's endpoint is 403 ``PermanentRedirect`` with the
  bucket's native endpoint (``oss-<region>.aliyuncs.com``) in ``Endpoint``, as OSS answers.
* ETags are OSS-style upper-case hex MD5 (multipart: MD5 of the part MD5s, then ``-N``).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from typing import Any

from aliasync.sim._errors import SimError
from aliasync.sim.oss._buckets import BucketStore
from aliasync.sim.oss._records import (
    FOREIGN_OWNER,
    MAX_PART_NUMBER,
    MIN_PART_SIZE,
    ObjectInfo,
    OssError,
    Part,
    StoredObject,
    Upload,
    etag_matches,
    no_such_bucket,
    valid_bucket_name,
)
from aliasync.sim.oss._storage import Staged, remove

__all__ = [
    "FOREIGN_OWNER",
    "MAX_PART_NUMBER",
    "MIN_PART_SIZE",
    "ObjectInfo",
    "OssError",
    "OssModel",
    "StoredObject",
    "no_such_bucket",
    "valid_bucket_name",
]


class OssModel(BucketStore):
    """The OSS state: buckets and objects (``BucketStore``), multipart uploads, introspection."""

    # --- multipart -----------------------------------------------------------------------

    def create_upload(
        self,
        region: str,
        bucket_name: str,
        key: str,
        headers: dict[str, str],
        metadata: dict[str, str],
    ) -> Upload:
        bucket = self.bucket(region, bucket_name)
        self.check_key(key)
        upload = Upload(
            secrets.token_hex(16).upper(), bucket_name, key, self.now(), headers, metadata
        )
        bucket.uploads[upload.upload_id] = upload
        return upload

    def upload(self, region: str, bucket_name: str, key: str, upload_id: str) -> Upload:
        upload = self.bucket(region, bucket_name).uploads.get(upload_id)
        if upload is None or upload.key != key or upload.completing:
            raise OssError(
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the upload "
                "may have been aborted or completed.",
                404,
                extra={"UploadId": upload_id},
            )
        return upload

    def put_part(
        self,
        region: str,
        bucket_name: str,
        key: str,
        upload_id: str,
        number: int,
        staged: Staged,
    ) -> Part:
        try:
            upload = self.upload(region, bucket_name, key, upload_id)
        except SimError:
            remove(staged.path)
            raise
        part = Part(number, staged.size, staged.md5, staged.md5.upper(), staged.path, self.now())
        old = upload.parts.get(number)
        if old is not None:
            remove(old.path)
        upload.parts[number] = part
        return part

    def begin_complete(
        self,
        region: str,
        bucket_name: str,
        key: str,
        upload_id: str,
        requested: list[tuple[int, str]],
    ) -> tuple[Upload, list[Part]]:
        """Validate the part list; the upload is then locked until :meth:`finish_complete`."""
        upload = self.upload(region, bucket_name, key, upload_id)
        numbers = [n for n, _ in requested]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise OssError(
                "InvalidPartOrder",
                "The list of parts was not in ascending order. The parts list must be specified "
                "in order by part number.",
                400,
            )
        parts: list[Part] = []
        for number, etag in requested:
            part = upload.parts.get(number)
            if part is None or not etag_matches(etag, part.etag):
                raise OssError(
                    "InvalidPart",
                    "One or more of the specified parts could not be found. The part might not "
                    "have been uploaded, or the specified entity tag might not have matched the "
                    "part's entity tag.",
                    400,
                    extra={"PartNumber": str(number), "ETag": etag},
                )
            parts.append(part)
        for part in parts[:-1]:
            if part.size < MIN_PART_SIZE:
                raise OssError(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed object size.",
                    400,
                    extra={
                        "PartNumber": str(part.number),
                        "ProposedSize": str(part.size),
                        "MinSizeAllowed": str(MIN_PART_SIZE),
                    },
                )
        upload.completing = True
        return upload, parts

    def finish_complete(
        self, region: str, upload: Upload, parts: list[Part], staged: Staged | None
    ) -> StoredObject | None:
        """Store the assembled object (``staged``), or unlock the upload if assembly failed."""
        if staged is None:
            upload.completing = False
            return None
        bucket = self._buckets[upload.bucket]  # a bucket with an upload cannot be deleted
        del bucket.uploads[upload.upload_id]
        for part in upload.parts.values():
            remove(part.path)
        digest = hashlib.md5(b"".join(bytes.fromhex(p.md5) for p in parts)).hexdigest()
        etag = f"{digest.upper()}-{len(parts)}"
        return self._store(bucket, upload.key, staged, etag, upload.headers, upload.metadata)

    def abort_upload(self, region: str, bucket_name: str, key: str, upload_id: str) -> None:
        upload = self.upload(region, bucket_name, key, upload_id)
        del self._buckets[bucket_name].uploads[upload_id]
        for part in upload.parts.values():
            remove(part.path)

    def list_uploads(
        self,
        region: str,
        bucket_name: str,
        prefix: str,
        key_marker: str,
        id_marker: str,
        max_uploads: int,
    ) -> tuple[list[Upload], bool]:
        bucket = self.bucket(region, bucket_name)
        found = sorted(
            (u for u in bucket.uploads.values() if u.key.startswith(prefix) and not u.completing),
            key=lambda u: (u.key, u.initiated, u.upload_id),
        )
        if key_marker:
            found = [
                u
                for u in found
                if u.key > key_marker
                or (id_marker and u.key == key_marker and u.upload_id > id_marker)
            ]
        return found[:max_uploads], len(found) > max_uploads

    def list_parts(
        self,
        region: str,
        bucket_name: str,
        key: str,
        upload_id: str,
        marker: int,
        max_parts: int,
    ) -> tuple[Upload, list[Part], bool]:
        upload = self.upload(region, bucket_name, key, upload_id)
        parts = [upload.parts[n] for n in sorted(upload.parts) if n > marker]
        return upload, parts[:max_parts], len(parts) > max_parts

    # --- what other services and tests use ----------------------------------------------

    def object_info(self, region: str, bucket: str, key: str) -> ObjectInfo | None:
        """The object ``key`` of the account's bucket in ``region``, or None."""
        found = self._buckets.get(bucket)
        if found is None or found.region != region or found.owner != self._ctx.account_id:
            return None
        obj = found.objects.get(key)
        return None if obj is None else obj.info()

    def bucket_exists(self, region: str, bucket: str) -> bool:
        """True if the account owns ``bucket`` and it lives in ``region``."""
        found = self._buckets.get(bucket)
        return (
            found is not None and found.region == region and found.owner == (self._ctx.account_id)
        )

    def buckets(self) -> list[dict[str, Any]]:
        """Every bucket (any owner): name, region, created_at (virtual seconds), owner."""
        return [
            {"name": b.name, "region": b.region, "created_at": b.created_at, "owner": b.owner}
            for b in sorted(self._buckets.values(), key=lambda b: b.name)
        ]

    def open_uploads(self) -> list[dict[str, Any]]:
        """Multipart uploads neither completed nor aborted."""
        return [
            {
                "region": b.region,
                "bucket": b.name,
                "key": u.key,
                "upload_id": u.upload_id,
                "initiated": u.initiated,
                "parts": len(u.parts),
            }
            for b in sorted(self._buckets.values(), key=lambda b: b.name)
            for u in b.uploads.values()
        ]

    def snapshot(self) -> dict[str, Any]:
        """``{"buckets": {region: {name: {objects: {key: {size, sha256}}, uploads}}}, ...}``."""
        regions: dict[str, dict[str, Any]] = {}
        for b in sorted(self._buckets.values(), key=lambda b: b.name):
            regions.setdefault(b.region, {})[b.name] = {
                "owner": b.owner,
                "created_at": b.created_at,
                "objects": {
                    k: {"size": b.objects[k].size, "sha256": b.objects[k].sha256} for k in b.keys
                },
                "uploads": [
                    {"key": u.key, "upload_id": u.upload_id, "parts": sorted(u.parts)}
                    for u in b.uploads.values()
                ],
            }
        return {"buckets": regions, "open_uploads": len(self.open_uploads())}
