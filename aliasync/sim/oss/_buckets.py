"""Buckets and objects of the OSS model (multipart uploads are added by ``_models``)."""

from __future__ import annotations

import bisect
import os
import secrets
import shutil
import time
from typing import TYPE_CHECKING

from aliasync.sim._errors import SimError
from aliasync.sim.oss._records import (
    FOREIGN_OWNER,
    MAX_BUCKETS_PER_REGION,
    MAX_KEY_BYTES,
    Bucket,
    LifecycleRule,
    Listing,
    OssError,
    StoredObject,
    no_such_bucket,
    valid_bucket_name,
)
from aliasync.sim.oss._storage import Staged, remove

# CopyObject copies objects under 1 GB; larger ones need UploadPartCopy ([D21] CopyObject).
MAX_COPY_SIZE = 2**30

if TYPE_CHECKING:
    from aliasync.sim._context import SimContext


class BucketStore:
    """All buckets of the emulated cloud, keyed by their globally unique name, and objects."""

    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        self._buckets: dict[str, Bucket] = {}
        self._dir = os.path.join(ctx.data_dir, "oss")
        # Dates in answers are real wall-clock times (consistent with the Date header and
        # request signatures); the virtual instants are kept for introspection.
        self._epoch = time.time() - ctx.clock.now() / ctx.clock.time_scale

    # --- time and files ------------------------------------------------------------------

    def now(self) -> float:
        return self._ctx.clock.now()

    def wall(self, virtual: float) -> float:
        """The wall-clock epoch seconds at which the emulator's clock read ``virtual``."""
        return self._epoch + virtual / self._ctx.clock.time_scale

    def new_path(self) -> str:
        """A fresh file name under the data directory for a body about to be staged."""
        os.makedirs(self._dir, exist_ok=True)
        return os.path.join(self._dir, secrets.token_hex(16))

    # --- buckets -------------------------------------------------------------------------

    def bucket(self, region: str | None, name: str) -> Bucket:
        """An own bucket addressed through ``region``'s endpoint (None: any), or the error."""
        if not valid_bucket_name(name):
            raise OssError(
                "InvalidBucketName",
                "The specified bucket is not valid.",
                400,
                extra={"BucketName": name},
            )
        bucket = self._buckets.get(name)
        if bucket is None:
            raise no_such_bucket(name)
        if bucket.owner != self._ctx.account_id:
            raise OssError("AccessDenied", "You have no right to access this bucket.", 403)
        if region is not None and bucket.region != region:
            raise OssError(
                "PermanentRedirect",
                "The bucket you are attempting to access must be addressed using the specified "
                "endpoint. Please send all future requests to this endpoint.",
                403,
                extra={"Bucket": name, "Endpoint": f"oss-{bucket.region}.aliyuncs.com"},
            )
        return bucket

    def create_bucket(self, region: str, name: str, location: str | None) -> Bucket:
        if not valid_bucket_name(name):
            raise OssError(
                "InvalidBucketName",
                "The specified bucket is not valid.",
                400,
                extra={"BucketName": name},
            )
        info = self._ctx.regions.get(region)
        if info is not None and not info.new_buckets:
            raise OssError(
                "ForbidCreateNewBucket", "Creating new buckets is not allowed in this region.", 403
            )
        if location is not None:
            wanted = location.removeprefix("oss-")
            if wanted not in self._ctx.regions:
                raise OssError(
                    "InvalidLocationConstraint",
                    "The specified location-constraint is not valid.",
                    400,
                    extra={"LocationConstraint": location},
                )
            if wanted != region:
                raise OssError(
                    "IllegalLocationConstraintException",
                    f"The {location} location constraint is incompatible for the region "
                    "specific endpoint this request was sent to.",
                    400,
                )
        existing = self._buckets.get(name)
        if existing is not None:
            if existing.owner == self._ctx.account_id and existing.region == region:
                raise OssError(
                    "BucketAlreadyOwnedByYou",
                    "Your previous request to create the named bucket succeeded and you already "
                    "own it.",
                    409,
                    extra={"BucketName": name},
                )
            raise OssError(
                "BucketAlreadyExists",
                "The requested bucket name is not available. The bucket namespace is shared by "
                "all users of the system. Please select a different name and try again.",
                409,
                extra={"BucketName": name},
            )
        owned = sum(
            1
            for b in self._buckets.values()
            if b.region == region and b.owner == self._ctx.account_id
        )
        if owned >= MAX_BUCKETS_PER_REGION:
            raise OssError(
                "TooManyBuckets",
                "You have attempted to create more buckets than allowed.",
                400,
                extra={"BucketName": name},
            )
        bucket = Bucket(name, region, self._ctx.account_id, self.now())
        self._buckets[name] = bucket
        return bucket

    def set_lifecycle(self, region: str, name: str, rules: tuple[LifecycleRule, ...]) -> None:
        """Replace the bucket's lifecycle rules (an empty tuple removes them)."""
        self.bucket(region, name).lifecycle = rules

    def lifecycle(self, region: str, name: str) -> tuple[LifecycleRule, ...]:
        rules = self.bucket(region, name).lifecycle
        if not rules:
            raise OssError(
                "NoSuchLifecycle",
                "No Row found in Lifecycle Table.",
                404,
                extra={"BucketName": name},
            )
        return rules

    def backdate_bucket(self, name: str, seconds: float) -> None:
        """Testing: make a bucket ``seconds`` (virtual) older, as if created that long ago."""
        bucket = self._buckets[name]
        bucket.created_at -= seconds

    def add_foreign_bucket(self, region: str, name: str) -> None:
        """Introspection/testing: a bucket another account owns (its name is taken)."""
        self._buckets[name] = Bucket(name, region, FOREIGN_OWNER, self.now())

    def delete_bucket(self, region: str, name: str) -> None:
        bucket = self.bucket(region, name)
        if bucket.objects or bucket.uploads:
            raise OssError(
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty.",
                409,
                extra={"BucketName": name},
            )
        del self._buckets[name]

    def list_buckets(self, prefix: str = "", region: str | None = None) -> list[Bucket]:
        """The account's buckets in every region, sorted by name."""
        return sorted(
            (
                b
                for b in self._buckets.values()
                if b.owner == self._ctx.account_id
                and b.name.startswith(prefix)
                and (region is None or b.region == region)
            ),
            key=lambda b: b.name,
        )

    # --- objects -------------------------------------------------------------------------

    def check_key(self, key: str) -> None:
        if len(key.encode()) > MAX_KEY_BYTES:
            raise OssError(
                "KeyTooLongError", "Your key is too long.", 400, extra={"Key": key[:100]}
            )

    def _store(
        self,
        bucket: Bucket,
        key: str,
        staged: Staged,
        etag: str,
        headers: dict[str, str],
        metadata: dict[str, str],
    ) -> StoredObject:
        obj = StoredObject(
            key,
            staged.size,
            staged.md5,
            staged.sha256,
            etag,
            staged.path,
            self.now(),
            headers,
            metadata,
        )
        old = bucket.objects.get(key)
        if old is None:
            bisect.insort(bucket.keys, key)
        elif old.path != staged.path:
            remove(old.path)
        bucket.objects[key] = obj
        return obj

    def put_object(
        self,
        region: str,
        bucket_name: str,
        key: str,
        staged: Staged,
        headers: dict[str, str],
        metadata: dict[str, str],
    ) -> StoredObject:
        """Adopt a staged body as ``key`` (the staged file is deleted if this fails)."""
        try:
            bucket = self.bucket(region, bucket_name)
            self.check_key(key)
        except SimError:
            remove(staged.path)
            raise
        return self._store(bucket, key, staged, staged.md5.upper(), headers, metadata)

    def copy_object(
        self,
        region: str,
        source: tuple[str, str],
        target: tuple[str, str],
        replace: tuple[dict[str, str], dict[str, str]] | None,
    ) -> StoredObject:
        """Copy ``source`` (bucket, key) to ``target`` within ``region``; the bytes are shared.

        ``replace``: new (headers, metadata), or None to keep the source's.
        """
        obj = self.get_object(region, *source)
        bucket = self.bucket(region, target[0])
        self.check_key(target[1])
        if obj.size >= MAX_COPY_SIZE:
            raise OssError(
                "InvalidArgument",
                "The source object is too large to copy: use UploadPartCopy.",
                400,
            )
        path = self.new_path()
        try:
            os.link(obj.path, path)  # objects are never rewritten in place: sharing is safe
        except OSError:
            shutil.copyfile(obj.path, path)
        staged = Staged(path, obj.size, obj.md5, obj.sha256, 0, "")
        headers, metadata = replace if replace is not None else (obj.headers, obj.metadata)
        return self._store(bucket, target[1], staged, obj.etag, dict(headers), dict(metadata))

    def get_object(self, region: str, bucket_name: str, key: str) -> StoredObject:
        obj = self.bucket(region, bucket_name).objects.get(key)
        if obj is None:
            raise OssError(
                "NoSuchKey", "The specified key does not exist.", 404, extra={"Key": key}
            )
        return obj

    def delete_object(self, region: str, bucket_name: str, key: str) -> None:
        """Delete ``key``; deleting a missing key succeeds (as in S3)."""
        bucket = self.bucket(region, bucket_name)
        obj = bucket.objects.pop(key, None)
        if obj is not None:
            del bucket.keys[bisect.bisect_left(bucket.keys, key)]
            remove(obj.path)

    def list_objects(
        self,
        region: str,
        bucket_name: str,
        prefix: str,
        delimiter: str,
        after: str,
        max_keys: int,
    ) -> Listing:
        """Keys after ``after`` (a marker, start-after or continuation point) under ``prefix``."""
        bucket = self.bucket(region, bucket_name)
        keys = bucket.keys
        i = max(bisect.bisect_right(keys, after) if after else 0, bisect.bisect_left(keys, prefix))
        objects: list[StoredObject] = []
        prefixes: list[str] = []
        last: str | None = None
        truncated = False
        while i < len(keys):
            key = keys[i]
            i += 1
            if not key.startswith(prefix):
                break
            common = None
            if delimiter:
                j = key.find(delimiter, len(prefix))
                if j >= 0:
                    common = key[: j + len(delimiter)]
                    if common in (last, after):
                        continue
            if len(objects) + len(prefixes) >= max_keys:
                truncated = True
                break
            if common is not None:
                prefixes.append(common)
                last = common
            else:
                objects.append(bucket.objects[key])
                last = key
        return Listing(objects, prefixes, truncated, last if truncated else None)
